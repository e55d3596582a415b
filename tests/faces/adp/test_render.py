import json

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.engine.events import (
    Failure, Final, Procedure, Progress, ReplyDelta, ThoughtDelta, ThoughtEnd, UserEcho, WorkflowStep,
)
from parley.engine.turn import TurnInfo
from parley.faces.adp.render import AdpRenderer
from tests.support.sse import read_by_event_name, read_by_json_type

INFO = TurnInfo(
    turn_id=22, app_id=1, app_name="bot", app_avatar="", session_id="s-1", request_id="r-1",
    question_record_id=11, answer_record_id=22, model="m", timestamp=1700000000,
    streaming_enabled=True, streaming_throttle=5,
)


def run(events, **options):
    renderer = AdpRenderer(INFO, **{"incremental": False, "throttle": 5, "stream": True, **options})
    raw = b"".join(renderer.render(e) for e in events)
    parsed = read_by_event_name(raw)
    assert parsed == read_by_json_type(raw)
    return raw, parsed


def answer_events(chunks):
    text = "".join(chunks)
    return [
        UserEcho(11, "question", 1700000000),
        Progress("processing", (Procedure("large_language_model", "processing"),), 1),
        *[ReplyDelta(c) for c in chunks],
        Progress("success", (Procedure("large_language_model", "success", 3, 4, "m"),), 9),
        Final(text, 1, 1700000001, True),
    ]


def replies(parsed):
    return [d["payload"] for n, d in parsed if n == "reply" and not d["payload"]["is_from_self"]]


chunkings = st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(chunks=chunkings, throttle=st.integers(min_value=1, max_value=40))
def test_incremental_packets_concatenate_to_the_final_text(chunks, throttle):
    _, parsed = run(answer_events(chunks), incremental=True, throttle=throttle)
    packets = replies(parsed)
    assert "".join(p["content"] for p in packets) == "".join(chunks)
    assert packets[-1]["is_final"] and not any(p["is_final"] for p in packets[:-1])


@settings(max_examples=300, deadline=None)
@given(chunks=chunkings, throttle=st.integers(min_value=1, max_value=40))
def test_whole_text_packets_grow_and_end_with_the_whole_answer(chunks, throttle):
    _, parsed = run(answer_events(chunks), incremental=False, throttle=throttle)
    packets = replies(parsed)
    contents = [p["content"] for p in packets]
    assert contents[-1] == "".join(chunks)
    assert all(later.startswith(earlier) for earlier, later in zip(contents, contents[1:]))


@settings(max_examples=200, deadline=None)
@given(chunks=chunkings, throttle=st.integers(min_value=1, max_value=40))
def test_a_packet_waits_for_the_throttle(chunks, throttle):
    _, parsed = run(answer_events(chunks), incremental=True, throttle=throttle)
    non_final = [p["content"] for p in replies(parsed) if not p["is_final"]]
    assert all(len(content) >= throttle for content in non_final)
    # and nothing is held back longer than needed: each packet goes out with the delta that crossed the throttle
    assert all(len(content) < throttle + 12 for content in non_final)


def test_the_wire_format_has_no_space_after_colons_and_one_data_line():
    raw, _ = run(answer_events(["Hel", "lo ", "world"]))
    for block in raw.decode().strip().split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event:") and lines[1].startswith("data:{")
        assert json.loads(lines[1][5:])["type"] == lines[0][6:]


def test_the_echo_and_answer_fields_match_the_protocol():
    _, parsed = run(answer_events(["Hello"]))
    echo = parsed[0][1]["payload"]
    assert echo["is_from_self"] and echo["can_rating"] is False and echo["record_id"] == "11" and echo["is_evil"] is False
    final = replies(parsed)[-1]
    assert final["record_id"] == "22" and final["related_record_id"] == "11" and final["reply_method"] == 1
    assert final["request_id"] == "r-1" and final["session_id"] == "s-1" and final["timestamp"] == 1700000001
    stat = [d["payload"] for n, d in parsed if n == "token_stat"][-1]
    assert stat["status_summary"] == "success" and stat["token_count"] == 7
    assert stat["procedures"][0]["input_count"] == 3 and stat["procedures"][0]["output_count"] == 4


def test_streaming_disabled_sends_one_final_reply():
    _, parsed = run(answer_events(["a" * 10, "b" * 10]), stream=False)
    assert [p["content"] for p in replies(parsed)] == ["a" * 10 + "b" * 10]


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=20), throttle=st.integers(1, 20), incremental=st.booleans())
def test_thoughts_render_whole_or_incremental(chunks, throttle, incremental):
    events = [ThoughtDelta(c, i) for i, c in enumerate(chunks)] + [ThoughtEnd(99)]
    _, parsed = run(events, incremental=incremental, throttle=throttle)
    contents = [d["payload"]["procedures"][0]["debugging"]["content"] for n, d in parsed if n == "thought"]
    statuses = [d["payload"]["procedures"][0]["status"] for n, d in parsed if n == "thought"]
    if incremental:
        assert "".join(contents) == "".join(chunks)
    else:
        assert contents[-1] == "".join(chunks)
    assert statuses[-1] == "success"


def test_a_failure_is_an_error_event_in_both_shapes():
    _, parsed = run([ReplyDelta("partial answer"), Failure("model_timeout", "no answer in time")])
    name, data = parsed[-1]
    assert name == "error"
    assert data["error"]["code"] == 460020 == data["payload"]["error"]["code"]
    assert data["request_id"] == "r-1" and "no answer in time" in data["error"]["message"]


def test_workflow_steps_are_thoughts_with_every_node_so_far():
    _, parsed = run([
        WorkflowStep("menu", "start", "Start", "processing", 0, 1),
        WorkflowStep("menu", "start", "Start", "success", 2, 3),
        WorkflowStep("menu", "pick", "Pick", "waiting", 1, 5, "Tea or coffee?"),
        WorkflowStep("menu", "pick", "Pick", "failed", 4, 9, "timed out after 1 s"),
    ])
    thoughts = [d["payload"] for n, d in parsed if n == "thought"]
    assert len(thoughts) == 4 and all(t["is_workflow"] and t["workflow_name"] == "menu" for t in thoughts)
    assert [[(p["index"], p["node_name"], p["status"]) for p in t["procedures"]] for t in thoughts] == [
        [(0, "Start", "processing")],
        [(0, "Start", "success")],
        [(0, "Start", "success"), (1, "Pick", "processing")],
        [(0, "Start", "success"), (1, "Pick", "failed")],
    ]
    assert thoughts[2]["procedures"][1]["debugging"]["content"] == "Pick: waiting for the user: Tea or coffee?"
    assert thoughts[3]["procedures"][1]["debugging"]["content"] == "Pick: failed (4 ms): timed out after 1 s"
    assert thoughts[3]["elapsed"] == 9 and thoughts[3]["procedures"][1]["elapsed"] == 4
