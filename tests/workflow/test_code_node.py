"""The code node: user code runs in a separate, limited process, never in the server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.workflow.definition import parse_workflow
from parley.workflow.sandbox import HTTPSandbox, LocalProcessSandbox
from tests.workflow.conftest import Driver, LoopbackServer


def code_workflow(code: str, timeout: float = 5, outputs: dict | None = None, inputs: dict | None = None):
    return parse_workflow({
        "name": "code",
        "nodes": [
            {"id": "start", "type": "start", "inputs": [{"name": "x", "type": "integer", "default": 2}]},
            {"id": "run", "type": "code", "code": code, "timeout": timeout,
             "inputs": inputs if inputs is not None else {"x": "{{start.x}}"}, "outputs": outputs or {"result": "any"}},
            {"id": "end", "type": "end", "reply": "{{run.result}}"},
        ],
        "edges": [{"source": "start", "target": "run"}, {"source": "run", "target": "end"}],
    })


@pytest.fixture
def sandboxed(driver: Driver) -> Driver:
    driver.runner.runtime.sandbox = LocalProcessSandbox(memory_mb=256)
    return driver


async def test_code_runs_and_returns_its_outputs(sandboxed: Driver) -> None:
    code = "import json, math\ndef main(x):\n    print('working')\n    return {'result': math.factorial(x) * 10}"
    outcome = await sandboxed.run(code_workflow(code, outputs={"result": "integer"}), inputs={"x": "5"})
    assert outcome.last().reply == "1200"
    node = outcome.node("run")
    assert node["NodeType"] == 7 and node["TaskOutput"] == "working\n" and node["Input"] == '{"x":5}'


@pytest.mark.parametrize(("code", "message"), [
    ("def main(x):\n    while True:\n        pass", "code: the program was stopped: CPU limit (2 s) reached"),
    ("import time\ndef main(x):\n    time.sleep(60)", "code: stopped after 1.5 s (wall-clock limit)"),
])
async def test_a_program_that_never_ends_is_stopped(sandboxed: Driver, code: str, message: str) -> None:
    outcome = await sandboxed.run(code_workflow(code, timeout=1.5))
    assert outcome.state.status == "failed"
    node = outcome.node("run")
    assert node["Status"] == 3
    # CPU time and wall-clock time race on a busy machine: either limit may stop the spin
    assert node["FailMessage"] in (message, "code: stopped after 1.5 s (wall-clock limit)")


async def test_writing_outside_the_working_folder_is_refused(sandboxed: Driver, tmp_path: Path) -> None:
    target = Path("/tmp") / f"parley-escape-{uuid.uuid4().hex}"
    code = (
        "def main(x):\n"
        "    open('inside.txt', 'w').write('fine')\n"
        "    kept = open('inside.txt').read()\n"
        f"    open({str(target)!r}, 'w').write('escaped')\n"
        "    return {'result': kept}"
    )
    outcome = await sandboxed.run(code_workflow(code))
    assert outcome.state.status == "failed"
    assert f"writing outside the working folder is not allowed: {target}" in outcome.node("run")["FailMessage"]
    assert not target.exists()


@pytest.mark.parametrize(("code", "words"), [
    ("import os\ndef main(x):\n    os.system('true')", "os.system is not allowed in the sandbox"),
    ("import os\ndef main(x):\n    os.remove('/etc/hostname')", "os.remove outside the working folder is not allowed"),
    ("import socket\ndef main(x):\n    socket.create_connection(('127.0.0.1', 22))", "socket"),
    ("import ctypes\ndef main(x):\n    return {}", "ctypes"),
    ("def main(x):\n    return {'result': bytearray(1_000_000_000)}", "MemoryError"),
    ("def main(x):\n    return [x]", "main() must return a dict, not list"),
    ("def helper(x):\n    return {}", "the code must define main(...)"),
    ("def main(x):\n    raise ValueError('bad input')", "ValueError: bad input"),
])
async def test_what_user_code_may_not_do(sandboxed: Driver, code: str, words: str) -> None:
    outcome = await sandboxed.run(code_workflow(code))
    assert outcome.state.status == "failed"
    assert words in outcome.node("run")["FailMessage"], outcome.node("run")["FailMessage"]


async def test_no_network_even_to_a_listening_loopback_server(sandboxed: Driver) -> None:
    hits: list[str] = []

    async def hit(request: Request) -> JSONResponse:
        hits.append(request.url.path)
        return JSONResponse({})

    async with LoopbackServer(Starlette(routes=[Route("/", hit)])) as server:
        code = f"import urllib.request\ndef main(x):\n    return {{'result': urllib.request.urlopen({server.url!r}).status}}"
        outcome = await sandboxed.run(code_workflow(code))
    assert outcome.state.status == "failed" and hits == []


async def test_the_environment_is_empty_and_the_user_is_nobody(sandboxed: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_SECRET_FOR_TEST", "s3cret")
    code = "import os\ndef main(x):\n    return {'result': {'env': sorted(os.environ), 'uid': os.getuid(), 'cwd': os.listdir('.')}}"
    outcome = await sandboxed.run(code_workflow(code))
    result = outcome.state.values["run"]["result"]
    assert "PARLEY_SECRET_FOR_TEST" not in result["env"] and "PATH" not in result["env"] and "HOME" not in result["env"]
    assert result["cwd"] == []
    if os.geteuid() == 0:
        assert result["uid"] == 65534


async def test_code_nodes_are_off_unless_the_operator_enables_them(driver: Driver) -> None:
    outcome = await driver.run(code_workflow("def main(x):\n    return {'result': 1}"))
    assert outcome.node("run")["FailMessage"].startswith("code nodes are disabled on this server")


async def test_declared_outputs_are_checked(sandboxed: Driver) -> None:
    outcome = await sandboxed.run(code_workflow("def main(x):\n    return {'result': 'text'}", outputs={"result": "integer"}))
    assert outcome.node("run")["FailMessage"] == "code: output 'result' must be integer, got str"


async def test_an_external_sandbox_service(driver: Driver) -> None:
    """HTTPSandbox speaks the sandbox-service API shape; the service here (an outside part)
    runs the program it is sent with the local sandbox's process limits."""
    local = LocalProcessSandbox()
    received: list[dict] = []

    async def run(request: Request) -> JSONResponse:
        body = await request.json()
        received.append({"key": request.headers.get("x-api-key"), **body})
        program = "import sys, io\n_buf = io.StringIO()\n_real = sys.stdout\nsys.stdout = _buf\n" + body["code"]
        program += "\nsys.stdout = _real\ndef main():\n    return {'stdout': _buf.getvalue()}\n"
        try:
            result = await local.run(program, {}, timeout=5)
        except Exception as exc:
            return JSONResponse({"code": 0, "message": "success", "data": {"stdout": "", "error": str(exc)}})
        return JSONResponse({"code": 0, "message": "success", "data": {"stdout": result.outputs["stdout"], "error": ""}})

    async with LoopbackServer(Starlette(routes=[Route("/v1/sandbox/run", run, methods=["POST"])])) as server:
        driver.runner.runtime.sandbox = HTTPSandbox(server.url, api_key="k1")
        ok = await driver.run(code_workflow("def main(x):\n    return {'result': x * 21}"), inputs={"x": 2})
        bad = await driver.run(code_workflow("def main(x):\n    raise KeyError('nope')"))
    assert ok.last().reply == "42"
    assert received[0]["key"] == "k1" and received[0]["language"] == "python3" and received[0]["enable_network"] is False
    assert "KeyError" in bad.node("run")["FailMessage"]
