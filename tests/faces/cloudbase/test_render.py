"""CloudBase chunk rendering, heartbeats and query reading, without a server."""

from __future__ import annotations

import asyncio
import json

import pytest

from parley.engine.events import Failure, Final, Procedure, Progress, ReplyDelta, ThoughtDelta, UserEcho
from parley.faces.cloudbase.errors import FaceError
from parley.faces.cloudbase.render import DONE, HEARTBEAT, ChunkRenderer
from parley.faces.cloudbase.request import query_of, timestamp_ms
from parley.faces.cloudbase.stream import with_heartbeats


def chunks(data: bytes) -> list[dict]:
    return [json.loads(block[len(b"data: "):]) for block in data.split(b"\n\n") if block.startswith(b"data: {")]


def test_deltas_then_a_stop_chunk_with_the_recorded_usage():
    renderer = ChunkRenderer("42", "m", "v1", 1700000000)
    out = b"".join(
        renderer.render(e)
        for e in [
            UserEcho(1, "q", 1700000000),
            Progress("processing", (Procedure("large_language_model", "processing", 9, 0, "m"),), 1),
            ThoughtDelta("hmm", 5),
            ReplyDelta("Hello"),
            ReplyDelta(" world"),
            Progress("success", (Procedure("large_language_model", "success", 9, 7, "m"),), 10),
            Final("Hello world", 1, 1700000001, True),
        ]
    )
    got = chunks(out)
    assert [(c["type"], c["content"], c["reasoning_content"], c["finish_reason"]) for c in got] == [
        ("thinking", "", "hmm", "continue"),
        ("text", "Hello", "", "continue"),
        ("text", " world", "", "continue"),
        ("text", "", "", "stop"),
    ]
    assert got[-1]["usage"] == {"promptTokens": 9, "completionTokens": 7, "totalTokens": 16}
    assert {c["record_id"] for c in got} == {"42"} and {c["created"] for c in got} == {1700000000}
    assert renderer.finished


@pytest.mark.parametrize(
    ("reported", "final_completion"),
    [((3, 1), 6), ((2, 40), 40)],  # a real count under the running estimate does not lower it; one over it is used
    ids=["model-counts-fewer", "model-counts-more"],
)
def test_prompt_tokens_stay_fixed_and_completion_tokens_never_go_down(reported, final_completion):
    renderer = ChunkRenderer("1", "m", "", 0)
    events = [Progress("processing", (Procedure("large_language_model", "processing", 25, 0, "m"),), 1)]
    events += [ReplyDelta("four") for _ in range(6)]  # one token each by the estimate
    events += [Progress("success", (Procedure("large_language_model", "success", *reported, "m"),), 9),
               Final("four" * 6, 1, 0, True)]
    got = chunks(b"".join(renderer.render(e) for e in events))
    assert {c["usage"]["promptTokens"] for c in got} == {25}
    completion = [c["usage"]["completionTokens"] for c in got]
    assert completion == sorted(completion) and completion[-1] == final_completion
    assert all(c["usage"]["totalTokens"] == 25 + c["usage"]["completionTokens"] for c in got)


def test_counts_the_model_reports_mid_stream_are_used_as_they_come():
    renderer = ChunkRenderer("1", "m", "", 0)
    renderer.render(Progress("processing", (Procedure("large_language_model", "processing", 25, 0, "m"),), 1))
    renderer.render(ReplyDelta("a"))
    renderer.render(Progress("processing", (Procedure("large_language_model", "processing", 21, 12, "m"),), 2))
    (chunk,) = chunks(renderer.render(ReplyDelta("b")))
    assert chunk["usage"] == {"promptTokens": 25, "completionTokens": 12, "totalTokens": 37}


def test_a_final_text_longer_than_the_streamed_one_sends_the_rest_first():
    renderer = ChunkRenderer("1", "m", "", 0)
    renderer.render(ReplyDelta("Hel"))
    got = chunks(renderer.render(Final("Hello", 1, 0, True)))
    assert [(c["content"], c["finish_reason"]) for c in got] == [("lo", "continue"), ("", "stop")]
    fresh = ChunkRenderer("1", "m", "", 0)
    got = chunks(fresh.render(Final("From a Q&A pair", 5, 0, False)))
    assert [(c["content"], c["finish_reason"]) for c in got] == [("From a Q&A pair", "continue"), ("", "stop")]


def test_an_answer_replaced_for_sensitive_content_ends_with_content_filter():
    renderer = ChunkRenderer("1", "m", "", 0)
    renderer.render(ReplyDelta("bad wo"))
    got = chunks(renderer.render(Final("Sorry, I cannot answer that.", 4, 0, False, is_evil=True)))
    assert [(c["type"], c["content"], c["finish_reason"]) for c in got] == [
        ("text", "Sorry, I cannot answer that.", "continue"), ("finish", "", "content_filter"),
    ]


def test_a_failure_is_an_error_chunk():
    renderer = ChunkRenderer("1", "m", "", 0)
    (chunk,) = chunks(renderer.render(Failure("model_timeout", "no answer in time")))
    assert chunk["finish_reason"] == "error" and chunk["type"] == "finish"
    assert chunk["error"]["code"] == "AGENT_REQUEST_LLM_ERROR"
    assert "no answer in time" in chunk["error"]["message"]
    assert renderer.finished


def test_query_strings_are_read_as_the_sdk_writes_them():
    assert query_of(b"name=C++ bot&x=%E4%BD%A0&a=undefined&b=null&c=&name=second") == {"name": "C++ bot", "x": "你"}
    assert timestamp_ms({"from": "1700000000"}, "from") == 1700000000000
    assert timestamp_ms({"from": "1700000000123"}, "from") == 1700000000123
    assert timestamp_ms({"from": "0"}, "from") is None
    with pytest.raises(FaceError):
        timestamp_ms({"from": "-1"}, "from")


async def test_heartbeats_come_first_and_on_the_beat_while_the_source_is_silent():
    async def source():
        yield b"data: 1\n\n"
        await asyncio.sleep(0.35)
        yield DONE

    out = [frame async for frame in with_heartbeats(source(), 0.1)]
    assert out[0] == HEARTBEAT
    assert out[-1] == DONE
    between = out[out.index(b"data: 1\n\n") + 1 : -1]
    assert between and set(between) == {HEARTBEAT}


async def test_closing_the_stream_stops_its_source():
    closed = asyncio.Event()

    async def source():
        try:
            yield b"data: 1\n\n"
            await asyncio.sleep(3600)
        finally:
            closed.set()

    stream = with_heartbeats(source(), 10)
    assert await anext(stream) == HEARTBEAT
    assert await anext(stream) == b"data: 1\n\n"
    await stream.aclose()
    assert closed.is_set()


def test_knowledge_comes_first_and_names_its_sources_from_then_on():
    from parley.engine.events import References

    renderer = ChunkRenderer("42", "m", "v1", 1700000000)
    refs = (
        {"id": "1", "type": 2, "doc_name": "wifi.txt", "name": "wifi"},
        {"id": "2", "type": 2, "doc_name": "wifi.txt", "name": "wifi"},
        {"id": "3", "type": 1, "doc_name": "", "name": "How do I contact support?"},
    )
    out = b"".join(
        renderer.render(e)
        for e in [
            Progress("processing", (Procedure("knowledge", "processing"),), 0),
            References(refs),
            Progress("processing", (Procedure("large_language_model", "processing", 30, 0, "m"),), 1),
            ReplyDelta("Hi"),
            Final("Hi", 1, 1700000001, True),
        ]
    )
    got = chunks(out)
    assert [c["type"] for c in got] == ["knowledge", "text", "text"]
    assert all(c["knowledge_base"] == ["wifi.txt", "How do I contact support?"] for c in got)
    assert {c["usage"]["promptTokens"] for c in got} == {30}  # the prompt's estimate, the same in every chunk
