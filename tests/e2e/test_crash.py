"""Nothing acknowledged is lost: `kill -9` with turns in flight and another process holding
the database's write lock, then a restart; on SQLite and on PostgreSQL.

The echo of a question (its `record_id`) is the acknowledgement that it is stored; answers
are checkpointed while they stream and closed as interrupted: on SQLite at the next start, on
PostgreSQL (where another live process may be writing) by any process once the dead one's id
node is free (engine/reaper.py). A question that cannot be stored gets an error event and no echo.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_cloudapi import CLOUD_API_CONFIG, call, make_client
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_chat

SLOW_ANSWER = "".join(f"{i:04d} " for i in range(600))
"""3,000 characters, 5 per chunk 100 ms apart: a minute, longer than the test waits for anything."""
FINISHED = {"success", "stopped", "failed", "interrupted"}


def crash_config(model: ScriptedModel, **settings: Any) -> str:
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n" + default_config(model) + CLOUD_API_CONFIG


class AdpClient(threading.Thread):
    """One ADP SSE client reading its stream as it comes: the echo's record id, the answer's
    record id and the answer text seen so far (non-incremental: each packet has it all)."""

    def __init__(self, url: str, app_key: str, session_id: str, content: str) -> None:
        super().__init__(daemon=True)
        self.url, self.session_id = url, session_id
        self.body = {"bot_app_key": app_key, "visitor_biz_id": "crash-visitor", "session_id": session_id,
                     "content": content, "streaming_throttle": 1}
        self.echo_id: str | None = None
        self.answer_id: str | None = None
        self.seen = ""
        self.events: list[str] = []

    def run(self) -> None:
        try:
            with httpx.stream("POST", f"{self.url}/v1/qbot/chat/sse", json=self.body, timeout=120) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self._read(json.loads(line[5:]))
        except httpx.HTTPError:
            pass  # the server was killed under us

    def _read(self, data: dict[str, Any]) -> None:
        self.events.append(data["type"])
        if data["type"] != "reply":
            return
        payload = data["payload"]
        if payload["is_from_self"]:
            self.echo_id = payload["record_id"]
        else:
            self.answer_id = payload["record_id"]
            self.seen = payload["content"]


class CloudBaseClient(threading.Thread):
    """A CloudBase `send-message` stream in its default conversation: the text seen so far."""

    def __init__(self, url: str, bot_id: str, key: str, message: str) -> None:
        super().__init__(daemon=True)
        self.url, self.bot_id, self.key, self.message = url, bot_id, key, message
        self.seen = ""

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"}
        try:
            with httpx.stream("POST", f"{self.url}/v1/aibot/bots/{self.bot_id}/send-message", headers=headers,
                              json={"msg": self.message, "history": []}, timeout=120) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        self.seen += json.loads(line[len("data: "):]).get("content", "")
        except httpx.HTTPError:
            pass

    def records(self, url: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{url}/v1/aibot/bots/{self.bot_id}/records", params={"sort": "asc"},
                             headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
        response.raise_for_status()
        return response.json()["recordList"]


class WriteLock:
    """Another process holding the write lock until released: SQLite's (BEGIN IMMEDIATE), or on
    PostgreSQL the records table's (readers pass, writers of records wait)."""

    def __init__(self, database: Database) -> None:
        if database.url is None:
            code = (
                "import sqlite3, sys\n"
                f"c = sqlite3.connect({str(database.sqlite_file)!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n"
                "c.execute('ROLLBACK')\n"
            )
        else:
            code = (
                "import asyncio, sys, asyncpg\n"
                "async def hold():\n"
                f"    c = await asyncpg.connect({database.url.replace('+asyncpg', '')!r})\n"
                "    await c.execute('BEGIN; LOCK TABLE records IN EXCLUSIVE MODE')\n"
                "    print('locked', flush=True)\n"
                "    await asyncio.to_thread(sys.stdin.read)\n"
                "    await c.execute('ROLLBACK')\n"
                "asyncio.run(hold())\n"
            )
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)


class Database:
    """Where a test's Parley keeps its data: SQLite in its data directory, or an empty PostgreSQL database."""

    def __init__(self, tmp: Path, url: str | None) -> None:
        self.url = url
        self.sqlite_file = tmp / "data" / "parley.db"
        self.args = ["--no-demo"] if url is None else ["--no-demo", "--database-url", url]

    def check_integrity(self) -> None:
        if self.url is None:
            assert sqlite3.connect(self.sqlite_file).execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp: Path) -> Database:
    if request.param == "sqlite":
        return Database(tmp, None)
    return Database(tmp, request.getfixturevalue("postgres").new_database())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Waits for a condition (bounded, so that a broken server fails instead of hanging)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def answer_of(records: list[dict[str, Any]], question_id: str) -> list[dict[str, Any]]:
    return [r for r in records if not r["is_from_self"] and r["related_record_id"] == question_id]


def start(tmp: Path, database: Database, model: ScriptedModel, **settings: Any) -> tuple[ParleyServer, dict[str, Any]]:
    server = start_parley(tmp, crash_config(model, **settings), database.args)
    assert server.data_dir == database.sqlite_file.parent
    app = server.create_app("crash", concurrency=100)
    return server, app


def test_kill_9_with_a_write_lock_held_loses_no_acknowledged_question_and_keeps_partial_answers(model, tmp, database):
    model.script("crash-slow", content=SLOW_ANSWER, chunk_size=5, delay=0.1)
    settings = {"answer_checkpoint_interval": 0.2, "answer_checkpoint_chars": 40}
    server, app = start(tmp, database, model, **settings)
    locker: WriteLock | None = None
    clients: list[AdpClient] = []
    try:
        # Answers streaming on a free database: each is checkpointed as it grows.
        streaming = [AdpClient(server.url, app["app_key"], f"a-{i}-{uuid.uuid4().hex[:6]}", f"crash-slow a{i}") for i in range(6)]
        clients += streaming
        for client in streaming:
            client.start()
        key = server.admin("POST", "/admin/apps/crash/cloudbase/keys", json={"kind": "api"}).json()
        cloudbase = CloudBaseClient(server.url, key["botId"], key["key"], "crash-slow cloudbase")
        cloudbase.start()
        wait_for(
            lambda: all(c.echo_id and len(c.seen) >= 100 for c in streaming) and len(cloudbase.seen) >= 100,
            "the first answers to stream",
        )
        wait_for(
            lambda: all(
                any(r["content"] for r in answer_of(server.records("crash", c.session_id), c.echo_id or ""))
                for c in streaming
            )
            and any(r["role"] == "assistant" and r["content"] for r in cloudbase.records(server.url)),
            "a checkpoint of every streaming answer",
            timeout=30,
        )
        # Another process takes the write lock; new questions wait for it while the model answers.
        locker = WriteLock(database)
        waiting = [AdpClient(server.url, app["app_key"], f"b-{i}-{uuid.uuid4().hex[:6]}", f"crash-slow b{i}") for i in range(6)]
        clients += waiting
        calls_before = model.stats()["calls"]
        for client in waiting:
            client.start()
        wait_for(lambda: model.stats()["calls"] >= calls_before + len(waiting), "the model calls of the waiting turns")
        time.sleep(0.5)  # lets anything the server sent reach the clients
        server.process.kill()  # kill -9
        server.process.wait()
    finally:
        if locker is not None:
            locker.release()
        server.close()
    for client in [*clients, cloudbase]:
        client.join(timeout=30)

    database.check_integrity()
    restarted = start_parley(tmp, crash_config(model, **settings), database.args)
    try:
        # Closed before the restarted process serves (SQLite), or soon after by its reaper (PostgreSQL).
        wait_for(
            lambda: not any(r["status"] == "streaming" for c in clients for r in restarted.records("crash", c.session_id)),
            "the answers left streaming to be closed", timeout=30,
        )
        for client in clients:
            records = restarted.records("crash", client.session_id)
            questions = [r for r in records if r["is_from_self"]]
            if client.echo_id is not None:  # acknowledged: it must be stored
                assert [q["record_id"] for q in questions] == [client.echo_id], (client.session_id, records)
            for question in questions:
                answers = answer_of(records, question["record_id"])
                assert len(answers) == 1, records
                answer = answers[0]
                assert answer["status"] in FINISHED, answer
                assert SLOW_ANSWER.startswith(answer["content"]), answer["content"]
                if answer["status"] == "interrupted":
                    assert answer["error_message"].startswith("interrupted"), answer
                # What the client saw and what was saved are both prefixes of one answer.
                assert client.seen.startswith(answer["content"]) or answer["content"].startswith(client.seen)
            assert not [r for r in records if r["status"] == "streaming"], records
        for client in streaming:
            answer = answer_of(restarted.records("crash", client.session_id), client.echo_id or "")[0]
            assert answer["status"] == "interrupted" and answer["content"], answer
            assert answer["record_id"] == client.answer_id
        # The same through GetMsgRecord (ADP's cloud API) and CloudBase's records.
        client = streaming[0]
        question, answer = call(make_client(restarted), "GetMsgRecord", {
            "Type": 5, "Count": 10, "SessionId": client.session_id, "BotAppKey": app["app_key"]})["Records"]
        assert question["RecordId"] == client.echo_id and answer["RecordId"] == client.answer_id
        assert answer["TokenStat"]["StatusSummary"] == "failed" and answer["Content"]
        assert SLOW_ANSWER.startswith(answer["Content"])
        asked, answered = cloudbase.records(restarted.url)
        assert (asked["role"], asked["content"]) == ("user", "crash-slow cloudbase")
        assert (answered["role"], answered["status"]) == ("assistant", "interrupted")
        assert answered["content"] and SLOW_ANSWER.startswith(answered["content"])
    finally:
        restarted.close()


def test_a_question_that_cannot_be_stored_gets_an_error_and_no_echo(model, tmp, database):
    model.script("not stored", content="an answer nobody may see")
    server, app = start(tmp, database, model, database_busy_timeout=0.5)
    session = "s-" + uuid.uuid4().hex[:10]
    locker = WriteLock(database)  # held past the write timeout
    try:
        stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": session,
                                        "content": "not stored, please", "request_id": "r-lost"})
    finally:
        locker.release()
    try:
        assert stream.status == 200
        assert stream.names() == ["error"], stream.raw
        error = stream.of("error")[0]
        # another writer held the lock past the busy timeout: ADP's "try again later" refusal
        assert error["error"]["code"] == 460011 and error["request_id"] == "r-lost"
        assert "could not be stored" in error["error"]["message"]
        assert server.records("crash", session) == []
        # The database is free again: the next question is stored and echoed as usual.
        again = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": session,
                                       "content": "not stored, again?"})
        assert again.echo["record_id"] and again.names()[-1] == "reply", again.raw
        assert [r["is_from_self"] for r in server.records("crash", session)] == [True, False]
    finally:
        server.close()
