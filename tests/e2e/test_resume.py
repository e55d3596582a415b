"""Resuming a stream from Last-Event-ID, on every SSE face: ADP v1, ADP v2 (both paths), CloudBase.

Each test reads part of a slow answer, drops the connection, sends the same request again
with the last id it got, and checks that the two parts are the turn's whole stream: ids
numbered 1..n without a gap or a repeat, equal to the stream replayed from the start
(`<turn>-0`), the answer's text whole, and the model called once (no second turn).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.test_cloudbase import Bot
from tests.support.sse import event_blocks

TEXT = "Resumed streams carry on from the next event, with nothing repeated and nothing missing at all."


def read_events(url: str, body: dict[str, Any], headers: dict[str, str], stop_after: int | None = None) -> list[str]:
    """The stream's numbered events (blocks starting with `id:`), or its first `stop_after` of them,
    after which the connection is dropped. Comments (keep-alives, heartbeats) are left out; an
    unnumbered event (a refusal) is kept too."""
    events: list[str] = []
    with httpx.stream("POST", url, json=body, headers={"Accept": "text/event-stream", **headers}, timeout=60) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            return [response.read().decode()]
        for block in event_blocks(response):
            events.append(block)
            if stop_after is not None and len(events) == stop_after:
                return events  # leaving the block closes the connection mid-stream
    return events


def event_id(block: str) -> str:
    first = block.split("\n", 1)[0]
    assert first.startswith("id:"), block
    return first[3:]


def data_of(block: str) -> Any:
    line = next(line for line in block.split("\n") if line.startswith("data:"))
    payload = line[5:].strip()
    return payload if payload == "[DONE]" else json.loads(payload)


@dataclass
class Face:
    """How to ask a face for a turn, and the answer's text as its client assembles it."""

    name: str
    url: Callable[[Any], str]
    body: Callable[[Any, str, str], dict[str, Any]]  # (app, visitor, session) -> body
    headers: Callable[[Any, str], dict[str, str]]  # (app, visitor) -> headers
    text: Callable[[list[str]], str]


def v1_incremental_text(blocks: list[str]) -> str:
    return "".join(data_of(b)["payload"]["content"] for b in blocks
                   if "event:reply" in b and not data_of(b)["payload"]["is_from_self"])


def v1_whole_text(blocks: list[str]) -> str:
    answers = [data_of(b)["payload"]["content"] for b in blocks
               if "event:reply" in b and not data_of(b)["payload"]["is_from_self"]]
    assert len(answers) > 3 and all(b.startswith(a) for a, b in zip(answers, answers[1:]))  # each packet the whole so far
    return answers[-1]


def v2_text(blocks: list[str]) -> str:
    data = [data_of(b) for b in blocks]
    assert data[-1] == "[DONE]"
    kinds = {d["Message"]["MessageId"]: d["Message"]["Type"] for d in data if isinstance(d, dict) and d["Type"] == "message.added"}
    text = ""
    for d in data[:-1]:
        if d["Type"] == "text.delta" and kinds[d["MessageId"]] == "reply":
            text += d["Text"]
        elif d["Type"] == "text.replace" and kinds[d["MessageId"]] == "reply":
            text = d["Text"]
    return text


def cloudbase_text(blocks: list[str]) -> str:
    data = [data_of(b) for b in blocks]
    assert data[-1] == "[DONE]"
    return "".join(d.get("content", "") for d in data[:-1])


def v1_body(incremental: bool) -> Callable[[Any, str, str], dict[str, Any]]:
    return lambda app, visitor, session: {
        "bot_app_key": app["app_key"], "visitor_biz_id": visitor, "session_id": session, "content": "resume me",
        "incremental": incremental, "streaming_throttle": 4,
    }


def v2_body(incremental: bool) -> Callable[[Any, str, str], dict[str, Any]]:
    return lambda app, visitor, session: {
        "ConversationId": session, "AppKey": app["app_key"], "VisitorId": visitor,
        "Contents": [{"Type": "text", "Text": "resume me"}], "Incremental": incremental, "StreamingThrottle": 4,
    }


def no_headers(app: Any, visitor: str) -> dict[str, str]:
    return {}


FACES = [
    Face("v1-incremental", lambda s: f"{s.url}/v1/qbot/chat/sse", v1_body(True), no_headers, v1_incremental_text),
    Face("v1-whole", lambda s: f"{s.url}/v1/qbot/chat/sse", v1_body(False), no_headers, v1_whole_text),
    Face("v2-incremental", lambda s: f"{s.url}/adp/v2/chat", v2_body(True), no_headers, v2_text),
    Face("v2-whole-on-v1-path", lambda s: f"{s.url}/v1/qbot/chat/sse", v2_body(False), no_headers, v2_text),
]


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


@pytest.fixture(scope="module")
def app(parley):
    return parley.create_app("resume", history_depth=2)


def session() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize("face", FACES, ids=lambda f: f.name)
def test_a_dropped_adp_stream_resumes_from_the_next_event(parley, app, model, face):
    model.script("resume me", content=TEXT, chunk_size=2, delay=0.03)
    url, body, headers = face.url(parley), face.body(app, "v-resume", session()), face.headers(app, "v-resume")
    assert_resumes(url, body, headers, face.text, model)
    assert len(parley.records("resume", body.get("session_id") or body["ConversationId"])) == 2  # one question, one answer


def test_a_dropped_cloudbase_stream_resumes_from_the_next_event(parley, model):
    bot = Bot(parley, "resume-cb")
    model.script("resume me", content=TEXT, chunk_size=2, delay=0.03)
    assert_resumes(bot.url("/send-message"), {"msg": "resume me"}, bot.headers(), cloudbase_text, model)


def assert_resumes(
    url: str, body: dict[str, Any], headers: dict[str, str], text: Callable[[list[str]], str], model,
    resume_url: str | None = None,
) -> None:
    """Reads part of the turn at `url`, then the rest (and the replays) at `resume_url` (another
    instance's same call; by default the same)."""
    first = read_events(url, body, headers, stop_after=5)
    url = resume_url or url
    turn = event_id(first[0]).split("-")[0]
    rest = read_events(url, body, {**headers, "Last-Event-ID": event_id(first[-1])})
    whole = first + rest
    assert [event_id(b) for b in whole] == [f"{turn}-{n}" for n in range(1, len(whole) + 1)]
    assert len(rest) > 5  # the turn was still streaming when the connection dropped
    assert text(whole) == TEXT
    assert model.stats()["calls"] == 1  # no second turn
    # The turn's stream read from the start (after id 0) is the same, event for event, ids and all.
    assert read_events(url, body, {**headers, "Last-Event-ID": f"{turn}-0"}) == whole
    # Resuming after any event gives exactly the rest.
    assert read_events(url, body, {**headers, "Last-Event-ID": f"{turn}-7"}) == whole[7:]


def v1_error(blocks: list[str]) -> tuple[int, str]:
    assert len(blocks) == 1 and blocks[0].startswith("event:error"), blocks
    error = data_of(blocks[0])["error"]
    return error["code"], error["message"]


def v2_error(blocks: list[str]) -> tuple[int, str]:
    assert len(blocks) == 2 and blocks[0].startswith("event:error") and data_of(blocks[1]) == "[DONE]", blocks
    error = data_of(blocks[0])["Error"]
    return error["Code"], error["Message"]


@pytest.mark.parametrize("face, error", [(FACES[0], v1_error), (FACES[2], v2_error)], ids=["v1", "v2"])
def test_adp_resume_is_refused_for_another_visitor_session_or_a_turn_no_longer_kept(parley, app, model, face, error):
    model.script("resume me", content=TEXT, chunk_size=2, delay=0.03)
    url, mine = face.url(parley), session()
    first = read_events(url, face.body(app, "v-owner", mine), {}, stop_after=3)
    last = event_id(first[-1])

    def resume(visitor: str, conversation: str, last_id: str) -> tuple[int, str]:
        return error(read_events(url, face.body(app, visitor, conversation), {"Last-Event-ID": last_id}))

    assert resume("v-thief", mine, last)[0] == 460010  # another visitor naming the same session
    assert resume("v-owner", session(), last)[0] == 460010  # the owner, but another session
    code, message = resume("v-owner", mine, "not-an-id")
    assert code == 400 and "Last-Event-ID" in message
    code, message = resume("v-owner", mine, "12345-3")  # never given (or expired)
    assert code == 400 and "no longer" in message
    assert model.stats()["calls"] == 1

    # A turn read to its end is compacted: its ids are no longer resumable.
    done_session = session()
    whole = read_events(url, face.body(app, "v-owner", done_session), {})
    code, message = resume("v-owner", done_session, event_id(whole[-2]))
    assert code == 400 and "no longer" in message


def test_cloudbase_resume_is_refused_for_another_visitor_or_a_bad_id(parley, model):
    bot = Bot(parley, "resume-cb-refusals")
    model.script("resume me", content=TEXT, chunk_size=2, delay=0.03)
    url = bot.url("/send-message")
    first = read_events(url, {"msg": "resume me"}, bot.headers(), stop_after=3)
    visitor = bot.new_key("publishable")

    def refused(key: str, last_id: str) -> dict[str, Any]:
        response = httpx.post(url, json={"msg": "resume me"}, headers={**bot.headers(key), "Last-Event-ID": last_id}, timeout=30)
        assert response.headers["content-type"].startswith("application/json"), response.text
        return {"status": response.status_code, **response.json()}

    other = refused(visitor, event_id(first[-1]))
    assert (other["status"], other["code"]) == (403, "PERMISSION_DENIED")
    malformed = refused(bot.key, "1-2-3")
    assert (malformed["status"], malformed["code"]) == (400, "AGENT_INVALID_PARAM") and "Last-Event-ID" in malformed["message"]
    unknown = refused(bot.key, "98765-1")
    assert (unknown["status"], unknown["code"]) == (400, "AGENT_INVALID_PARAM") and "no longer" in unknown["message"]
    assert model.stats()["calls"] == 1
