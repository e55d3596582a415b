"""Several Parley processes as one server: resume on another instance, stop from another
instance, an instance killed mid-answer.

`pair` gives the two instances a test talks to: on the single-process default (one process on
SQLite with the in-process bus, both "instances" the same) and on a shared deployment (two
processes on loopback sharing PostgreSQL and Redis). The stop tests run on both; the resume tests
here on the shared one, as test_resume.py runs the same checks on the single process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.test_cloudbase import Bot
from tests.e2e.test_resume import FACES, TEXT, assert_resumes, cloudbase_text, data_of, event_id, read_events
from tests.support.sse import event_blocks
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley

LEASE = 1.0
"""The shared instances' turn lease (seconds): short, so that a dead instance's answer is closed quickly."""


def shared_config(model: ScriptedModel) -> str:
    return f"bus_lease = {LEASE}\nanswer_checkpoint_interval = 0.2\n" + default_config(model)


@dataclass
class Shared:
    """Two instances on one PostgreSQL database and one Redis, and how to start more."""

    a: ParleyServer
    b: ParleyServer
    args: list[str]


@pytest.fixture(scope="module")
def shared(scripted_model, postgres, redis_server, tmp_path_factory) -> Iterator[Shared]:
    args = ["--no-demo", "--database-url", postgres.new_database(), "--bus-url", redis_server.new_url()]
    a = start_parley(tmp_path_factory.mktemp("instance-a"), shared_config(scripted_model), args)
    try:
        b = start_parley(tmp_path_factory.mktemp("instance-b"), shared_config(scripted_model), args)
    except BaseException:
        a.close()
        raise
    yield Shared(a, b, args)
    a.close()
    b.close()


@pytest.fixture(params=["single", "shared"])
def pair(request) -> tuple[ParleyServer, ParleyServer]:
    """(A, B): where a turn starts and where the client comes back."""
    if request.param == "single":
        server = request.getfixturevalue("parley")
        return server, server
    shared = request.getfixturevalue("shared")
    return shared.a, shared.b


def session() -> str:
    return str(uuid.uuid4())


# Resuming on the single process: the same assert_resumes, in test_resume.py.


@pytest.mark.parametrize("face", FACES, ids=lambda f: f.name)
def test_a_dropped_adp_stream_resumes_on_another_instance(shared, model, face):
    a, b = shared.a, shared.b
    app = a.create_app("many-resume")
    model.script("resume me", content=TEXT, chunk_size=2, delay=0.03)
    body = face.body(app, "v-many", session())
    assert_resumes(face.url(a), body, {}, face.text, model, resume_url=face.url(b))
    assert len(b.records("many-resume", body.get("session_id") or body["ConversationId"])) == 2


def test_a_dropped_cloudbase_stream_resumes_on_another_instance(shared, model):
    a, b = shared.a, shared.b
    bot = Bot(a, "many-resume-cb")
    model.script("resume me", content=TEXT, chunk_size=2, delay=0.03)
    url = bot.url("/send-message")
    assert_resumes(url, {"msg": "resume me"}, bot.headers(), cloudbase_text, model, resume_url=url.replace(a.url, b.url))


FACES_PAST_THE_END = [FACES[0], FACES[2]]  # v1 (one event per write) and v2 (several)


def without_id(block: str) -> str:
    return block.split("\n", 1)[1]


@pytest.mark.parametrize("face", FACES_PAST_THE_END, ids=lambda f: f.name)
def test_a_client_that_read_past_the_stream_s_end_still_gets_the_end(pair, model, face):
    """What a client holds after an instance died before writing its last events to the bus:
    a Last-Event-ID past the end of the turn's stream. It gets the stream's end, numbered after it."""
    a, b = pair
    app = a.create_app("many-past-end")
    model.script("resume me", content=TEXT, chunk_size=8, delay=0.01)
    body = face.body(app, "v-past", session())
    first = read_events(face.url(a), body, {}, stop_after=3)  # left early: the stream is kept for a resume
    turn = event_id(first[0]).split("-")[0]
    eventually(lambda: [r["status"] for r in b.records("many-past-end", body.get("session_id") or body["ConversationId"])
                        if not r["is_from_self"]] == ["success"])
    whole = read_events(face.url(b), body, {"Last-Event-ID": f"{turn}-0"})
    rest = read_events(face.url(b), body, {"Last-Event-ID": f"{turn}-999"})
    assert rest and [event_id(block) for block in rest] == [f"{turn}-{n}" for n in range(1000, 1000 + len(rest))]
    assert [without_id(block) for block in rest] == [without_id(block) for block in whole[-len(rest):]]


def test_a_cloudbase_client_that_read_past_the_stream_s_end_still_gets_the_end(pair, model):
    a, b = pair
    bot = Bot(a, "many-past-end-cb")
    model.script("resume me", content=TEXT, chunk_size=8, delay=0.01)
    url = bot.url("/send-message")
    first = read_events(url, {"msg": "resume me"}, bot.headers(), stop_after=3)
    turn = event_id(first[0]).split("-")[0]
    url = url.replace(a.url, b.url)
    time.sleep(1.5)  # the answer (a dozen chunks 10 ms apart) is over
    rest = read_events(url, {"msg": "resume me"}, {**bot.headers(), "Last-Event-ID": f"{turn}-999"})
    assert [event_id(block) for block in rest] == [f"{turn}-1000", f"{turn}-1001"]
    assert data_of(rest[-1]) == "[DONE]" and data_of(rest[0])["finish_reason"] == "stop", rest


def stop(server: ParleyServer, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v1/qbot/chat/stop", json=body, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json", response.text
    return response.json()


def eventually(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def test_an_answer_is_stopped_from_another_instance_and_the_model_call_closed(pair, model):
    a, b = pair
    app = a.create_app("many-stop")
    model.script("stop me", content=["word "] * 600, delay=0.05)  # half a minute unless stopped
    chat = {"bot_app_key": app["app_key"], "visitor_biz_id": "v-stop", "session_id": session(), "content": "stop me",
            "incremental": True}
    answer: dict[str, Any] | None = None
    replies = []
    with httpx.stream("POST", f"{a.url}/v1/qbot/chat/sse", json=chat, timeout=60) as response:
        for block in event_blocks(response):
            if "event:reply" not in block:
                continue
            payload = data_of(block)["payload"]
            if payload["is_from_self"]:
                continue
            replies.append(payload)
            if len(replies) == 3:
                answer = payload
                ask = {key: chat[key] for key in ("bot_app_key", "visitor_biz_id", "session_id")}
                assert stop(b, {**ask, "visitor_biz_id": "v-other", "record_id": answer["record_id"]})["error"]["code"] == 460006
                stopped = stop(b, {**ask, "record_id": answer["record_id"], "request_id": "r-stop"})
                assert stopped["type"] == "stop", stopped
                assert stopped["payload"]["record_id"] == answer["record_id"] and stopped["request_id"] == "r-stop"
    assert answer is not None and replies[-1]["is_final"], replies[-1]
    assert len(replies) < 100  # it stopped, rather than running to its end
    eventually(lambda: model.stats()["closed_early"] == 1)  # the upstream call was closed
    assert model.stats()["completed"] == 0
    stored = [r for r in b.records("many-stop", chat["session_id"]) if not r["is_from_self"]]
    assert [r["status"] for r in stored] == ["stopped"] and stored[0]["content"].startswith("word")
    # Stopped (or finished) answers cannot be stopped again.
    again = stop(b, {**ask, "record_id": answer["record_id"]})
    assert again["error"]["code"] == 460006 and answer["record_id"] in again["error"]["message"]


def test_the_stop_call_refuses_bad_requests_in_the_adp_error_shape(parley, model):
    app = parley.create_app("stop-refusals")
    ask = {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": "s-refusals"}
    assert stop(parley, {**ask, "record_id": "123"})["error"]["code"] == 460006  # no such answer
    assert stop(parley, {**ask, "bot_app_key": "nope", "record_id": "123"})["error"]["code"] == 4505004
    for bad in ({**ask}, {**ask, "record_id": "12a"}, {**ask, "record_id": True}, {**ask, "record_id": "1" * 21},
                {**ask, "session_id": "!", "record_id": "1"}, {"record_id": "1"}):
        error = stop(parley, bad)["error"]
        assert error["code"] == 400 and error["message"].startswith("Request parameter error"), (bad, error)
    response = httpx.post(f"{parley.url}/v1/qbot/chat/stop", content=b"{not json", timeout=30)
    assert response.status_code == 200 and response.json()["error"]["code"] == 400


def test_an_instance_killed_mid_answer_is_closed_by_another_and_the_stream_ends(shared, model, tmp_path):
    victim = start_parley(tmp_path, shared_config(model), shared.args)
    try:
        app = victim.create_app("many-crash")
        model.script("crash me", content=TEXT * 4, chunk_size=2, delay=0.04)
        chat = {"bot_app_key": app["app_key"], "visitor_biz_id": "v-crash", "session_id": session(),
                "content": "crash me", "incremental": True}
        url = "/v1/qbot/chat/sse"
        first = read_events(victim.url + url, chat, {}, stop_after=40)  # over a second: checkpoints were saved
    finally:
        victim.process.kill()  # SIGKILL: nothing is closed, written or flushed on the way out
        victim.process.wait()
    rest = read_events(shared.b.url + url, chat, {"Last-Event-ID": event_id(first[-1])})
    whole = first + rest
    turn = event_id(first[0]).split("-")[0]
    assert [event_id(block) for block in whole] == [f"{turn}-{n}" for n in range(1, len(whole) + 1)]
    end = whole[-1]
    assert end.split("\n")[1] == "event:error", end
    error = data_of(end)["error"]
    assert error["code"] == 500 and "interrupted" in error["message"], error
    sent = "".join(data_of(b)["payload"]["content"] for b in whole
                   if "event:reply" in b and not data_of(b)["payload"]["is_from_self"])
    records = shared.b.records("many-crash", chat["session_id"])
    answer = next(r for r in records if not r["is_from_self"])
    assert answer["status"] == "interrupted" and answer["content"], answer
    # What was sent and what was saved are both the answer's beginning (either may hold a few
    # characters more than the other: saves are periodic, and the last events before the kill
    # may have reached the client but not the bus).
    assert (TEXT * 4).startswith(sent) and (TEXT * 4).startswith(answer["content"]), (sent, answer["content"])
    assert len(sent) > 40 and len(answer["content"]) > 20  # over a second of answer, saved every 0.2 s
    assert answer["record_id"] == turn
    # Every instance ends the turn alike: a replay from the start on A ends with the same error.
    replay = read_events(shared.a.url + url, chat, {"Last-Event-ID": f"{turn}-0"})
    assert without_id(replay[-1]) == without_id(end)
