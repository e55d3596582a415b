"""The ADP SSE endpoint, end to end: a real Parley process, the scripted model over real HTTP."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support.sse import post_chat


def new_session() -> str:
    return "s-" + uuid.uuid4().hex[:12]


def ask(parley, app, content="hello", **fields):
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": fields.pop("visitor", "v1"),
            "session_id": fields.pop("session_id", None) or new_session(), "content": content, **fields}
    return post_chat(parley.url, body)


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


@pytest.fixture(scope="module")
def app(parley):
    return parley.create_app("sse-basic", system_role="You are terse.", history_depth=3)


def test_the_stream_follows_the_canonical_order(parley, app, model):
    model.script("order please", content="The answer is forty-two.", usage={"prompt_tokens": 11, "completion_tokens": 7})
    stream = ask(parley, app, "order please", request_id="req-123")
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache" and stream.headers["x-accel-buffering"] == "no"

    names = stream.names()
    echo = stream.echo
    assert names[0] == "reply" and echo["is_from_self"] and echo["content"] == "order please" and echo["is_evil"] is False
    assert names[1] == "token_stat" and stream.of("token_stat")[0]["payload"]["status_summary"] == "processing"
    answers = stream.answer_replies
    assert len(answers) > 1 and answers[-1]["is_final"] and not any(a["is_final"] for a in answers[:-1])
    assert {a["record_id"] for a in answers} == {answers[0]["record_id"]} != {echo["record_id"]}
    assert all(a["related_record_id"] == echo["record_id"] for a in answers)
    assert answers[-1]["content"] == "The answer is forty-two." and answers[-1]["reply_method"] == 1
    # the final token_stat, with the model's real usage, comes right before the final reply, which is last
    assert names[-2:] == ["token_stat", "reply"]
    final_stat = stream.of("token_stat")[-1]["payload"]
    assert final_stat["status_summary"] == "success" and final_stat["token_count"] == 18
    assert final_stat["procedures"][0]["input_count"] == 11 and final_stat["procedures"][0]["output_count"] == 7
    # every event echoes the request id; ids are decimal-digit strings (the Go SDK decodes them as uint64)
    assert all(data["payload"]["request_id"] == "req-123" for _, data in stream.events)
    assert all(data["payload"]["record_id"].isdigit() for _, data in stream.events)
    assert stream.raw.endswith(b"\n\n") and stream.raw.count(b"event:") == len(stream.events)


def test_incremental_packets_add_up_and_whole_packets_grow(parley, app, model):
    text = "Streaming answers arrive in small packets, each a little longer than the last."
    model.script("stream it", content=text, chunk_size=2)
    incremental = [a["content"] for a in ask(parley, app, "stream it", incremental=True).answer_replies]
    whole = [a["content"] for a in ask(parley, app, "stream it", incremental=False).answer_replies]
    assert "".join(incremental) == text and len(incremental) > 3
    assert whole[-1] == text and all(b.startswith(a) for a, b in zip(whole, whole[1:]))


def test_streaming_throttle_sets_the_packet_size(parley, app, model):
    text = "x" * 100
    model.script("throttle", content=text, chunk_size=1)
    small = ask(parley, app, "throttle", incremental=True, streaming_throttle=2).answer_replies
    large = ask(parley, app, "throttle", incremental=True, streaming_throttle=30).answer_replies
    default = ask(parley, app, "throttle", incremental=True).answer_replies  # the application's setting: 5
    assert all(len(p["content"]) == 2 for p in small[:-1]) and len(small) >= 50
    assert all(len(p["content"]) == 30 for p in large[:-1]) and len(large) == 4
    assert all(len(p["content"]) == 5 for p in default[:-1])


def test_stream_disable_sends_a_single_final_reply(parley, app, model):
    model.script("no stream", content="All at once, please.", chunk_size=1)
    stream = ask(parley, app, "no stream", stream="disable")
    assert [a["content"] for a in stream.answer_replies] == ["All at once, please."]
    assert stream.answer_replies[0]["is_final"] and stream.names()[-1] == "reply"


def test_reasoning_content_becomes_thought_events_before_the_answer(parley, app, model):
    model.script("think hard", reasoning="First, consider the question. Then answer.", content="Done.", chunk_size=4)
    stream = ask(parley, app, "think hard", model_name="Deepseek/deepseek-r1-0528", incremental=True)
    thoughts = stream.of("thought")
    assert thoughts, stream.names()
    procedures = [t["payload"]["procedures"][0] for t in thoughts]
    assert "".join(p["debugging"]["content"] for p in procedures) == "First, consider the question. Then answer."
    assert procedures[-1]["status"] == "success" and all(p["name"] == "thought" for p in procedures)
    names = stream.names()
    assert names.index("thought") < max(i for i, n in enumerate(names) if n == "reply")
    first_answer = next(i for i, (n, d) in enumerate(stream.events) if n == "reply" and not d["payload"]["is_from_self"])
    assert max(i for i, n in enumerate(names) if n == "thought") < first_answer
    assert "".join(a["content"] for a in stream.answer_replies) == "Done."


def test_think_tags_from_the_text_become_thoughts(parley, app, model):
    model.script("tagged", reasoning="hidden reasoning", content="Visible answer.", think_tags=True, chunk_size=3)
    stream = ask(parley, app, "tagged", incremental=False)
    assert stream.of("thought")[-1]["payload"]["procedures"][0]["debugging"]["content"] == "hidden reasoning"
    assert stream.answer_replies[-1]["content"] == "Visible answer."


def test_history_carries_across_turns_and_model_switches(parley, app, model):
    session = new_session()
    ask(parley, app, "my name is Ada", session_id=session)
    ask(parley, app, "what is my name?", session_id=session, model_name="Deepseek/deepseek-r1-0528")
    sent = model.stats()["requests"][-1]
    assert sent["model"] == "deepseek-r1"
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][1]["content"] == "my name is Ada"
    assert sent["messages"][2]["content"] == "Echo: my name is Ada"


def test_history_depth_bounds_the_context(parley, model):
    app = parley.create_app("sse-depth-1", history_depth=1)
    session = new_session()
    for question in ("one", "two", "three"):
        ask(parley, app, question, session_id=session)
    contents = [m["content"] for m in model.stats()["requests"][-1]["messages"]]
    assert contents == ["two", "Echo: two", "three"]


def test_system_role_override_and_custom_variables(parley, model):
    app = parley.create_app("sse-role", system_role="You help {{user}} with {{topic}}.")
    ask(parley, app, "hi", custom_variables={"user": "Ann", "topic": "taxes"})
    assert model.stats()["requests"][-1]["messages"][0] == {"role": "system", "content": "You help Ann with taxes."}
    ask(parley, app, "hi", system_role="Override for {{user}}.", custom_variables={"user": "Bo"})
    assert model.stats()["requests"][-1]["messages"][0] == {"role": "system", "content": "Override for Bo."}


def test_draft_edits_reach_visitors_only_when_published(parley, model):
    app = parley.create_app("sse-release", system_role="Version one.")
    parley.create_app("sse-release", publish=False, system_role="Version two.")
    ask(parley, app, "hi")
    assert model.stats()["requests"][-1]["messages"][0]["content"] == "Version one."
    assert parley.admin("POST", "/admin/apps/sse-release/publish").status_code == 200
    ask(parley, app, "hi")
    assert model.stats()["requests"][-1]["messages"][0]["content"] == "Version two."


def test_records_are_stored_with_their_details(parley, app, model):
    model.script("store me", content="Stored answer.", usage={"prompt_tokens": 5, "completion_tokens": 2})
    session = new_session()
    stream = ask(parley, app, "store me", session_id=session, request_id="rq-1")
    question, answer = parley.records("sse-basic", session)
    assert question["record_id"] == stream.echo["record_id"] and question["is_from_self"] and question["content"] == "store me"
    assert answer["record_id"] == stream.answer_replies[-1]["record_id"]
    assert answer["related_record_id"] == question["record_id"]
    assert answer["status"] == "success" and answer["reply_method"] == 1 and answer["model"] == "scripted"
    assert answer["content"] == "Stored answer." and answer["request_id"] == "rq-1"
    assert answer["token_stat"]["token_count"] == 7 and answer["finished_at"] >= answer["created_at"]


def test_keep_alive_comments_flow_while_the_model_is_silent(parley, app, model):
    model.script("slow start", content="Finally.", ttft=1.2)
    stream = ask(parley, app, "slow start")
    head = stream.raw.split(b"event:reply", 2)
    assert b": keep-alive\n\n" in head[1]  # between the echo and the first answer packet
    assert stream.answer_replies[-1]["content"] == "Finally."


def test_a_client_that_leaves_loses_nothing(parley, app, model):
    text = "A long answer that keeps streaming after the client has gone away."
    model.script("leave early", content=text, chunk_size=2, delay=0.02)
    session = new_session()
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v1", "session_id": session, "content": "leave early"}
    with httpx.stream("POST", f"{parley.url}/v1/qbot/chat/sse", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and '"is_from_self":false' in line:
                break  # one answer packet, then hang up
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        records = parley.records("sse-basic", session)
        if len(records) == 2 and records[1]["status"] != "streaming":  # saved in progress until it ends
            break
        time.sleep(0.1)
    assert records[1]["status"] == "success" and records[1]["content"] == text
    assert model.stats()["closed_early"] == 0


@pytest.mark.parametrize(
    "script, code, stored_status",
    [
        ({"status": 500}, 500, "failed"),
        ({"content": "Half an ans" + "wer that breaks", "drop_after": 3}, 500, "failed"),
        ({"content": "never finished", "hang_after": 1}, 460020, "failed"),
    ],
    ids=["upstream-error", "dropped-stream", "timeout"],
)
def test_model_failures_end_the_stream_with_an_error(parley, model, script, code, stored_status):
    app = parley.create_app("sse-failures", model="scripted-fast-timeout")
    model.script("fail", **script)
    session = new_session()
    stream = ask(parley, app, "fail", session_id=session, request_id="r-fail")
    assert stream.names()[0] == "reply" and stream.names()[-1] == "error"
    error = stream.of("error")[0]
    assert error["error"]["code"] == code == error["payload"]["error"]["code"]
    assert error["request_id"] == "r-fail"
    assert not any(a["is_final"] for a in stream.answer_replies)
    records = parley.records("sse-failures", session)
    assert [r["status"] for r in records] == ["success", stored_status]
