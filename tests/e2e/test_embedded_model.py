"""The README's first command, in miniature: `parley serve` with no configuration runs the
embedded SmolLM2 model and the demo application, and the curl command it prints streams a
real answer."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.support.processes import ROOT, free_port, stop
from tests.support.sse import read_by_event_name, read_by_json_type

pytestmark = pytest.mark.local_model


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_printed_curl_command_streams_an_answer_from_the_embedded_model(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PYTHONPATH"] = str(ROOT)  # runs from an empty folder, as a new user would
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env, text=True,
        )
    try:
        deadline = time.monotonic() + 120
        command = None
        while time.monotonic() < deadline and command is None:
            assert process.poll() is None, log_path.read_text()
            match = re.search(r"^curl -N .*$", log_path.read_text(), re.MULTILINE)
            if match and "Uvicorn running" in log_path.read_text():
                command = match.group(0)
            time.sleep(0.2)
        assert command, log_path.read_text()
        assert "AppKey" in log_path.read_text()
        result = subprocess.run(shlex.split(command) + ["-sS"], capture_output=True, timeout=180)
        assert result.returncode == 0, result.stderr
        events = read_by_event_name(result.stdout)
        assert events == read_by_json_type(result.stdout)
        names = [name for name, _ in events]
        assert names[0] == "reply" and names[-1] == "reply", names
        answers = [data["payload"] for name, data in events if name == "reply" and not data["payload"]["is_from_self"]]
        assert answers[-1]["is_final"] and answers[-1]["reply_method"] == 1
        assert "".join(a["content"] for a in answers).strip()  # incremental: the packets add up to a real answer
        stat = [data["payload"] for name, data in events if name == "token_stat"][-1]
        assert stat["status_summary"] == "success" and stat["procedures"][0]["output_count"] > 0
    finally:
        stop(process)
