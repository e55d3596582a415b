"""Engine events and stream headers survive the trip through bytes that a shared bus makes."""

import pytest

from parley.engine.codec import EngineCodec, UnknownEvent
from parley.engine.engine import TurnOwner
import typing

from parley.engine.events import (
    Event, Failure, Final, Procedure, Progress, References, ThoughtDelta, ThoughtEnd, UserEcho, WorkflowStatus,
    WorkflowStep,
)
from parley.engine.faces import Face
from parley.engine.turn import TurnInfo

EVENTS = [
    "a reply delta, 中文 too",
    "",
    UserEcho(12, "question?", 1700000000, True, [{"file_name": "a.pdf", "doc_id": "9"}]),
    Progress("processing", (Procedure("knowledge", "success", 3, 4, "", 5), Procedure("large_language_model", "processing", 10, 0, "m", 7)), 99),
    ThoughtDelta("hmm", 12),
    ThoughtEnd(40),
    References(({"id": "1", "name": "doc", "type": 2, "url": ""},)),
    Final("the answer", 1, 1700000001, True, "stop", False, ({"doc": 1},), ({"index": 1, "position": 3},)),
    Final("menu", 16, 1700000002, True, "stop", False, work_flow={"workflow_name": "menu", "option_cards": ["a", "b"]}),
    WorkflowStatus({"workflow_name": "menu", "current_node": {"NodeID": "start", "NodeType": 1, "Status": 2}}),
    WorkflowStep("menu", "pick", "Pick one", "waiting", 3, 120, "Tea or coffee?"),
    Progress("success", (Procedure("workflow", "success", elapsed_ms=9), Procedure("workflow", "success", 5, 1, "m", 4, node="Ask")), 9),
    Failure("model_failed", "upstream said no"),
]


def test_every_kind_of_engine_event_is_covered():
    """A new event type the codec does not know would fail only on the shared bus, mid-turn."""
    assert set(typing.get_args(Event)) == {type(event) for event in EVENTS}


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_comes_back_equal_and_of_its_type(event):
    data = EngineCodec.encode_event(event)
    back = EngineCodec.decode_event(data)
    assert back == event and type(back) is type(event)


def test_the_header_comes_back_equal():
    info = TurnInfo(1, 2, "app", "", "s-1", "r-1", 3, 1, "scripted", 1700000000, True, 4)
    owner = TurnOwner(info, "visitor", Face.CLOUDBASE)
    back = EngineCodec.decode_header(EngineCodec.encode_header(owner))
    assert back == owner and back.face is Face.CLOUDBASE


def test_what_no_codec_wrote_is_refused():
    with pytest.raises(UnknownEvent):
        EngineCodec.decode_event(b'["no such event", 1]')
    with pytest.raises(TypeError):
        EngineCodec.encode_event(object())
