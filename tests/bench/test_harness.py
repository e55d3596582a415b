"""The benchmark harness works end to end on the direct arm (no timing is asserted).

The scripted model server and the load generator run as their own processes, as in
`python -m bench.run`; the test checks the answers were whole and the JSON has its fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, free_port, stop, wait_until_up

SPEC = "bench:tokens=5:delay_ms=2:ttft_ms=5:reasoning=0"


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.model_server", "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/v1/models", process, timeout=15)
        yield url
    finally:
        stop(process)


def loadgen(*args: str) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.loadgen", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, check=True).stdout
    return json.loads(output[output.index("{"):])


def test_model_server_streams_the_scripted_answer_with_usage(model_server: str) -> None:
    body = {"model": SPEC, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{model_server}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "alpha bravo charlie delta echo"
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    whole = httpx.post(f"{model_server}/v1/chat/completions", json={**body, "stream": False}, timeout=10).json()
    assert whole["choices"][0]["message"]["content"] == text


def test_loadgen_turns_against_the_direct_arm(model_server: str) -> None:
    result = loadgen("--kind", "openai", "--url", model_server, "--model", SPEC, "--concurrency", "4", "--turns", "12")
    assert result["mode"] == "turns"
    assert result["turns_ok"] == 12
    assert result["errors"] == {}
    for metric in ("ttfb_ms", "gap_ms", "total_ms"):
        assert {"n", "p50", "p99", "max"} <= result[metric].keys()
    assert result["ttfb_ms"]["n"] == 12
    assert result["gap_ms"]["n"] == 12 * 4  # five packets per answer, four gaps
    assert result["packets_per_turn"] == 5
    assert {"turns_per_s", "client_cpu_s", "concurrency", "bunched_pct", "error_count"} <= result.keys()


def test_loadgen_counts_short_answers_as_errors(model_server: str) -> None:
    # `cut=3`: the model stops after 3 of the 5 tokens, yet ends the stream normally.
    result = loadgen("--kind", "openai", "--url", model_server, "--model", SPEC + ":cut=3",
                     "--concurrency", "1", "--turns", "2")
    assert result["turns_ok"] == 0
    assert result["errors"] == {"short_answer": 2}


def test_loadgen_holds_open_streams(model_server: str, tmp_path: Path) -> None:
    out = tmp_path / "open.json"
    process = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--kind", "openai", "--url", model_server,
         "--model", "bench:tokens=40:delay_ms=50:ttft_ms=5", "--open", "20", "--rate", "200", "--window", "1",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    )
    assert process.stdout.startswith("READY 20 0")
    result = json.loads(out.read_text())
    assert result["mode"] == "open"
    assert result["opened"] == 20 and result["failed"] == 0
    assert result["gap_ms"]["n"] > 0
    assert result["ended_early"] == 0
