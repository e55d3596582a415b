from hypothesis import given, settings
from hypothesis import strategies as st

from parley.engine.events import Failure, Final, Procedure, Progress, References, ReplyDelta, ThoughtDelta, ThoughtEnd, UserEcho
from parley.engine.turn import TurnInfo
from parley.faces.adp.v2_render import V2Renderer
from tests.support.sse import DONE, V2Stream, read_v2_by_event_name, read_v2_by_json_type

INFO = TurnInfo(
    turn_id=22, app_id=1, app_name="bot", app_avatar="", session_id="c" * 32, request_id="r-1",
    question_record_id=11, answer_record_id=22, model="m", timestamp=1700000000,
    streaming_enabled=True, streaming_throttle=5,
)
REFERENCE = {"id": "7", "type": 2, "url": "", "name": "wifi", "doc_id": "3", "doc_biz_id": "3", "doc_name": "wifi.txt", "qa_biz_id": "0"}


def run(events, **options) -> V2Stream:
    renderer = V2Renderer(INFO, **{"incremental": True, "throttle": 5, "stream": True, **options})
    raw = b"".join(renderer.render(e) for e in events)
    parsed = read_v2_by_event_name(raw)
    assert parsed == read_v2_by_json_type(raw)
    return V2Stream(200, None, raw, parsed)


def turn(thought_chunks, reply_chunks, final_text=None):
    events = [UserEcho(11, "question", 1700000000), Progress("processing", (Procedure("large_language_model", "processing"),), 1)]
    events += [ThoughtDelta(c, 2) for c in thought_chunks]
    if thought_chunks:
        events.append(ThoughtEnd(3))
    events.append(References((REFERENCE,)))
    events += [ReplyDelta(c) for c in reply_chunks]
    events.append(Progress("success", (Procedure("large_language_model", "success", 3, 4, "m"),), 9))
    text = "".join(reply_chunks) if final_text is None else final_text
    events.append(Final(text, 1, 1700000001, True, quote_infos=({"index": 1, "position": 0},)))
    return events


chunkings = st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=20)


@settings(max_examples=300, deadline=None)
@given(thought=chunkings, reply=chunkings, throttle=st.integers(1, 40), incremental=st.booleans(),
       stream=st.booleans(), replaced=st.one_of(st.none(), st.text(max_size=20)))
def test_a_client_assembles_exactly_the_final_texts(thought, reply, throttle, incremental, stream, replaced):
    result = run(turn(thought, reply, replaced), throttle=throttle, incremental=incremental, stream=stream)
    final = "".join(reply) if replaced is None else replaced
    texts = result.texts()
    assert texts.get("reply", "") == final
    assert texts.get("thought", "") == "".join(thought)
    names = result.names()
    assert names[:2] == ["request_ack", "response.created"] and names[-2:] == ["response.completed", DONE]
    assert names.count("message.added") == names.count("message.done") == (2 if "".join(thought) else 1)
    assert names.count("reference.added") == 1 and names.count("quote_info.added") == 1
    if incremental and replaced is None:
        assert "text.replace" not in names
    if not incremental:
        assert "text.delta" not in names
    completed = result.of("response.completed")[0]["Response"]
    assert completed["Messages"][-1]["Contents"][0]["Text"] == final
    assert completed["StatInfo"]["TotalTokens"] == 7


def test_a_failure_ends_with_a_v2_error_and_the_terminator():
    result = run([UserEcho(11, "q", 1), ReplyDelta("partial answer"), Failure("model_failed", "upstream broke")])
    assert result.names()[-2:] == ["error", DONE]
    error = result.of("error")[0]
    assert error["Error"]["Code"] == 500 and "upstream broke" in error["Error"]["Message"] and error["RecordId"] == "22"


def test_a_socket_renderer_sends_no_terminator():
    renderer = V2Renderer(INFO, incremental=True, throttle=5, stream=True, terminator=False)
    raw = b"".join(renderer.render(e) for e in turn([], ["hello"]))
    assert b"[DONE]" not in raw and renderer.finished
