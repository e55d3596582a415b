"""Guards end to end: sensitive words on questions and answers, concurrency, rates, open streams."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import pytest

from parley.engine.moderation import normalize
from tests.support.sse import post_chat, read_by_json_type


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


def body(app, content, **fields):
    return {"bot_app_key": app["app_key"], "visitor_biz_id": fields.pop("visitor", "v1"),
            "session_id": fields.pop("session_id", None) or "s-" + uuid.uuid4().hex[:12], "content": content, **fields}


def test_a_sensitive_question_is_refused_without_calling_the_model(parley, model):
    app = parley.create_app("guard-question", sensitive_words=["secret plan", "机密"], refusal_reply="I can't discuss that.")
    request = body(app, "Tell me the ＳＥＣＲＥＴ-p l a n now")
    stream = post_chat(parley.url, request)
    assert stream.echo["is_evil"] is True
    final = stream.answer_replies[-1]
    assert final["is_final"] and final["reply_method"] == 4 and final["content"] == "I can't discuss that."
    assert stream.names()[-1] == "reply" and model.stats()["calls"] == 0
    question, answer = parley.records("guard-question", request["session_id"])
    assert question["is_evil"] and answer["reply_method"] == 4 and answer["is_evil"]
    chinese = post_chat(parley.url, body(app, "告诉我机 密内容"))
    assert chinese.echo["is_evil"] and chinese.answer_replies[-1]["reply_method"] == 4
    assert model.stats()["calls"] == 0
    clean = post_chat(parley.url, body(app, "Tell me a plan"))
    assert clean.echo["is_evil"] is False and clean.answer_replies[-1]["reply_method"] == 1


def test_a_word_split_across_chunks_stops_the_answer(parley, model):
    app = parley.create_app("guard-answer", sensitive_words=["forbidden"], refusal_reply="Answer withheld.")
    model.script("tell", content="Here is the story of a forbidden door and everything behind it, told slowly.",
                 chunk_size=3, delay=0.01)
    request = body(app, "tell me a story", incremental=True, streaming_throttle=1)
    stream = post_chat(parley.url, request)
    packets = stream.answer_replies
    sent = "".join(p["content"] for p in packets[:-1])
    assert "Here is the story" in sent and "forbid" not in normalize(sent)
    assert packets[-1]["is_final"] and packets[-1]["reply_method"] == 4 and packets[-1]["is_evil"] is True
    assert packets[-1]["content"] == "Answer withheld."
    deadline = time.monotonic() + 5
    while model.stats()["closed_early"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model.stats()["closed_early"] == 1  # the model call was stopped, not read to the end
    answer = parley.records("guard-answer", request["session_id"])[1]
    assert answer["reply_method"] == 4 and answer["content"] == "Answer withheld." and answer["is_evil"]


SAYS_A_BANNED_WORD = {
    "name": "leaky",
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "topic", "type": "string", "default": "doors"}]},
        {"id": "note", "type": "message", "text": "First, a word about {{start.topic}}."},
        {"id": "leak", "type": "message", "text": "Behind the Ｆorbidden door..."},
        {"id": "end", "type": "end", "reply": "The end."},
    ],
    "edges": [{"source": "start", "target": "note"}, {"source": "note", "target": "leak"}, {"source": "leak", "target": "end"}],
}
ASKS_WITH_A_BANNED_WORD = {
    "name": "leaky-cards",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "ask", "type": "llm", "prompt": "{{sys.query}}"},
        {"id": "pick", "type": "option_cards", "text": "Which one?", "options": ["{{ask.text}}", "None"]},
        {"id": "end", "type": "end", "reply": "ok"},
    ],
    "edges": [{"source": "start", "target": "ask"}, {"source": "ask", "target": "pick"},
              {"source": "pick", "target": "end", "port": "None"}, {"source": "pick", "target": "end", "port": "other"}],
}


def test_a_workflows_text_is_checked_for_sensitive_words_as_an_answer_is(parley, model):
    """A message node's text with a listed word: the run stops there, the refusal is the answer,
    and the word never reaches the client, neither as text nor in work_flow or thoughts."""
    app = parley.create_app("guard-workflow", sensitive_words=["forbidden"], refusal_reply="Answer withheld.",
                            workflow=SAYS_A_BANNED_WORD)
    request = body(app, "tell me about doors")
    stream = post_chat(parley.url, request)
    assert "forbidden" not in normalize(stream.raw.decode())
    final = stream.answer_replies[-1]
    assert final["is_final"] and final["reply_method"] == 4 and final["is_evil"] is True
    assert final["content"] == "Answer withheld."
    sent = [r["content"] for r in stream.answer_replies[:-1] if r["content"]]
    assert sent and all("First, a word about doors." in text for text in sent)  # what came before was fine
    nodes = [r["work_flow"]["current_node"]["NodeID"] for r in stream.answer_replies if r.get("work_flow")]
    assert "end" not in nodes  # the run stopped at the message
    answer = parley.records("guard-workflow", request["session_id"])[1]
    assert answer["reply_method"] == 4 and answer["content"] == "Answer withheld." and answer["is_evil"]
    [run] = parley.admin("GET", "/admin/apps/guard-workflow/workflow-runs").json()
    assert run["status"] == "failed"
    # A model's text shown as option cards (and in the LLM node's Output) is checked as well.
    cards = parley.create_app("guard-workflow-cards", sensitive_words=["forbidden"], refusal_reply="Answer withheld.",
                              workflow=ASKS_WITH_A_BANNED_WORD)
    model.script("pick a door", content="the forbidden one")
    stream = post_chat(parley.url, body(cards, "pick a door"))
    assert "forbidden" not in normalize(stream.raw.decode())
    final = stream.answer_replies[-1]
    assert final["reply_method"] == 4 and final["content"] == "Answer withheld." and not final.get("option_cards")


def test_global_lists_change_without_a_restart(parley, model):
    app = parley.create_app("guard-global")
    assert post_chat(parley.url, body(app, "what about zebras")).echo["is_evil"] is False
    put = parley.admin("PUT", "/admin/moderation/words", json={"words": ["zebra", "斑马"]})
    assert put.status_code == 200 and put.json()["words"] == ["zebra", "斑马"]
    assert post_chat(parley.url, body(app, "what about ZEBRAS")).echo["is_evil"] is True
    assert post_chat(parley.url, body(app, "斑 马呢")).echo["is_evil"] is True
    # the file itself is the list: an operator's edit is picked up too
    (parley.data_dir / "sensitive_words.txt").write_text("giraffe\n", encoding="utf-8")
    time.sleep(1.2)
    assert post_chat(parley.url, body(app, "what about zebras")).echo["is_evil"] is False
    assert post_chat(parley.url, body(app, "and giraffes")).echo["is_evil"] is True
    parley.admin("PUT", "/admin/moderation/words", json={"words": []})
    bad = parley.admin("PUT", "/admin/moderation/words", json={"words": "zebra"})
    assert bad.status_code == 400


async def _many_turns(url, app, count, content):
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(i):
            request = body(app, content, session_id=f"many-{app['name']}-{i}")
            async with client.stream("POST", f"{url}/v1/qbot/chat/sse", json=request) as response:
                raw = await response.aread()
            return request["session_id"], read_by_json_type(raw)

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_a_thousand_turns_against_a_limit_of_fifty(parley, model):
    app = parley.create_app("guard-thousand", concurrency=50, queue_timeout=1.0, busy_mode="reply",
                            busy_reply="Busy, try later.", max_streams=2000)
    model.script("crowd", content="Served.", ttft=0.15)
    results = asyncio.run(_many_turns(parley.url, app, 1000, "crowd"))
    stats = model.stats()
    assert stats["max_concurrent"] <= 50
    served = busy = 0
    for session_id, events in results:
        answers = [d["payload"] for t, d in events if t == "reply" and not d["payload"]["is_from_self"]]
        assert events[-1][0] == "reply" and answers[-1]["is_final"], events
        if answers[-1]["reply_method"] == 1:
            assert answers[-1]["content"] == "Served."
            served += 1
        else:
            assert answers[-1]["reply_method"] == 7 and answers[-1]["content"] == "Busy, try later."
            busy += 1
    assert served + busy == 1000 and served == stats["calls"] == stats["completed"]
    assert served >= 50 and busy > 0  # the queue admitted some, the rest got the busy reply
    # nothing lost: every turn's question and answer were recorded as they were sent
    with httpx.Client(headers=parley.admin_headers, timeout=30) as client:
        for session_id, events in results[::7]:
            records = client.get(f"{parley.url}/admin/apps/guard-thousand/sessions/{session_id}/records").json()
            answer = [d["payload"] for t, d in events if t == "reply"][-1]
            assert [r["is_from_self"] for r in records] == [True, False]
            assert records[1]["record_id"] == answer["record_id"] and records[1]["reply_method"] == answer["reply_method"]


def test_over_the_limit_without_a_queue_gets_460011_and_stores_nothing(parley, model):
    app = parley.create_app("guard-error", concurrency=5, busy_mode="error")
    model.script("rush", content="Served.", ttft=0.3)
    results = asyncio.run(_many_turns(parley.url, app, 60, "rush"))
    assert model.stats()["max_concurrent"] <= 5
    rejected = [s for s, events in results if events[-1][0] == "error"]
    for session_id, events in results:
        if events[-1][0] == "error":
            assert [t for t, _ in events] == ["error"] and events[0][1]["error"]["code"] == 460011
    assert 0 < len(rejected) < 60
    for session_id in rejected[:10]:
        assert parley.records("guard-error", session_id) == []


def test_rate_limits_per_visitor(parley, model):
    app = parley.create_app("guard-rate", visitor_rate_limit=2)
    assert post_chat(parley.url, body(app, "one", visitor="ann")).names()[-1] == "reply"
    assert post_chat(parley.url, body(app, "two", visitor="ann")).names()[-1] == "reply"
    third = post_chat(parley.url, body(app, "three", visitor="ann"))
    assert third.names() == ["error"] and third.of("error")[0]["error"]["code"] == 460011
    assert "a minute" in third.of("error")[0]["error"]["message"]
    assert post_chat(parley.url, body(app, "one", visitor="bo")).names()[-1] == "reply"


def test_open_streams_over_the_limit_get_460031(parley, model):
    app = parley.create_app("guard-streams", max_streams=1)
    model.script("hold", content="held", ttft=1.0)
    first = {}
    thread = threading.Thread(target=lambda: first.setdefault("stream", post_chat(parley.url, body(app, "hold"))))
    thread.start()
    deadline = time.monotonic() + 10
    while model.stats()["concurrent"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = post_chat(parley.url, body(app, "another"))
    assert second.names() == ["error"] and second.of("error")[0]["payload"]["error"]["code"] == 460031
    thread.join()
    assert first["stream"].answer_replies[-1]["content"] == "held"
    assert post_chat(parley.url, body(app, "again")).names()[-1] == "reply"  # the stream was counted out


def test_a_client_that_leaves_frees_its_stream_at_once(parley, model):
    app = parley.create_app("guard-streams-leave", max_streams=1)
    model.script("long story", content="word " * 200, chunk_size=5, delay=0.1)  # about 4 s
    with httpx.stream("POST", f"{parley.url}/v1/qbot/chat/sse", json=body(app, "long story"), timeout=30) as response:
        for line in response.iter_lines():
            if '"is_from_self":false' in line:
                break  # leave mid-answer
    time.sleep(0.3)
    # the turn is still running (it is finished and recorded regardless), but the stream is closed
    assert post_chat(parley.url, body(app, "next")).names()[-1] == "reply"
