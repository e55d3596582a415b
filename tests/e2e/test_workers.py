"""`parley serve --workers N`: N processes on one port, on PostgreSQL and Redis; refused without them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from tests.support.processes import ROOT, default_config, free_port, start_parley

STORY = "Two workers share one port, and each answers its share of the turns from beginning to end."


def healthz(url: str) -> dict:
    """/healthz over a connection of its own, so that any worker may answer."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"{url}/healthz", headers={"Connection": "close"}).json()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_on_postgresql_and_redis_serve_turns_from_every_process(model, postgres, bus_url, tmp_path):
    server = start_parley(tmp_path, default_config(model),
                          ["--no-demo", "--workers", "2", "--database-url", postgres.new_database(), "--bus-url", bus_url])
    try:
        app = server.create_app("workers")
        model.script("worker story", content=STORY, chunk_size=2, delay=0.05)
        answers: dict[str, str] = {}

        def ask(session: str) -> None:
            body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": session,
                    "content": "worker story", "incremental": True}
            with httpx.Client(timeout=60) as client, client.stream("POST", f"{server.url}/v1/qbot/chat/sse", json=body) as response:
                text = ""
                for line in response.iter_lines():
                    if line.startswith("data:") and '"is_from_self":false' in line:
                        text += httpx.Response(200, content=line[5:]).json()["payload"]["content"]
                answers[session] = text

        sessions = [f"s-{uuid.uuid4().hex[:12]}" for _ in range(12)]
        threads = [threading.Thread(target=ask, args=(session,)) for session in sessions]
        for thread in threads:
            thread.start()
        busy: dict[int, int] = {}  # pid -> the most turns it had in progress at once
        while any(thread.is_alive() for thread in threads):
            health = healthz(server.url)
            busy[health["pid"]] = max(busy.get(health["pid"], 0), health["turns_in_progress"])
        for thread in threads:
            thread.join()
        assert len(busy) == 2 and all(turns > 0 for turns in busy.values()), busy  # both workers ran turns
        assert answers == {session: STORY for session in sessions}
        assert model.stats()["calls"] == len(sessions)
        for session in sessions:  # both workers stored in the one database
            assert [r["content"] for r in server.records("workers", session)] == ["worker story", STORY]

        # Long-polling cannot reach the same worker twice on a shared port: WebSocket only, refused clearly.
        polling = httpx.get(f"{server.url}/v1/qbot/chat/conn/?EIO=4&transport=polling", timeout=10)
        assert (polling.status_code, polling.json()) == (400, "Invalid transport")

        # A worker that dies is replaced, and the port keeps answering.
        first = sorted(busy)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while not ({healthz(server.url)["pid"] for _ in range(10)} - set(first)):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        workers = {healthz(server.url)["pid"] for _ in range(30)}
        assert first[0] not in workers and len(workers) == 2
    finally:
        server.close()
    assert server.process.returncode == 0, server.log()
    for pid in workers:  # stopping the supervisor stopped its workers
        assert not alive(pid)


@pytest.mark.parametrize("database, bus, missing", [
    (None, None, ["--database-url", "--bus-url"]),
    (None, "redis://127.0.0.1:1/0", ["--database-url"]),
    ("postgresql+asyncpg://nobody@127.0.0.1:1/parley", None, ["--bus-url"]),
], ids=["sqlite-no-bus", "sqlite", "no-bus"])
def test_more_than_one_worker_is_refused_without_a_shared_database_and_bus(tmp_path, database, bus, missing):
    argv = [sys.executable, "-m", "parley", "serve", "--data-dir", str(tmp_path), "--port", str(free_port()),
            "--no-demo", "--workers", "2"]
    argv += ["--database-url", database] if database else []
    argv += ["--bus-url", bus] if bus else []
    env = {**os.environ, "COLUMNS": "400"}
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("--workers 2 needs"), message
    for option in ("--database-url", "--bus-url"):
        assert (option in message) == (option in missing), message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "parley.db").exists()  # nothing was started or created


def test_workers_that_cannot_start_stop_the_supervisor(postgres, bus_url, tmp_path):
    """A worker that fails before it serves (here: its port is taken by another program) would fail
    the same way again: the supervisor stops the others and exits with an error, not a restart loop."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "parley", "serve", "--data-dir", str(tmp_path), "--port", str(port), "--no-demo",
                "--workers", "2", "--database-url", postgres.new_database(), "--bus-url", bus_url]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "before it was ready: stopping" in output, output
