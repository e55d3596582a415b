"""Engine events and a turn's stream header as bytes, for a bus shared by several processes.

The bus itself is generic (it stores whatever it is given); a bus that leaves the process
(Redis) takes this codec from the engine. A reply delta, the event that comes by the thousand,
is its JSON string; every other event is a JSON array `[tag, field, ...]` in the fields'
declaration order, so an event costs one orjson call each way.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from parley.engine.events import (
    Failure,
    Final,
    Procedure,
    Progress,
    References,
    ThoughtDelta,
    ThoughtEnd,
    UserEcho,
    WorkflowStatus,
    WorkflowStep,
)
from parley.engine.engine import TurnOwner
from parley.engine.faces import Face
from parley.engine.turn import TurnInfo

_TAGS: dict[type, str] = {
    UserEcho: "echo",
    Progress: "progress",
    ThoughtDelta: "thought",
    ThoughtEnd: "thought_end",
    References: "references",
    WorkflowStatus: "workflow",
    WorkflowStep: "workflow_step",
    Final: "final",
    Failure: "failure",
}
_TYPES = {tag: cls for cls, tag in _TAGS.items()}
_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in _TAGS}
_TUPLES = {  # fields declared as tuples (JSON gives lists back)
    Progress: ("procedures",),
    References: ("items",),
    Final: ("knowledge", "quote_infos"),
}


class UnknownEvent(ValueError):
    """Bytes that no version of this codec wrote."""


def encode_event(event: Any) -> bytes:
    if type(event) is str:
        return orjson.dumps(event)
    cls = type(event)
    tag = _TAGS.get(cls)
    if tag is None:
        raise TypeError(f"not an engine event: {cls.__name__}")
    return orjson.dumps([tag, *[getattr(event, name) for name in _FIELDS[cls]]])


def decode_event(data: bytes) -> Any:
    value = orjson.loads(data)
    if type(value) is str:
        return value
    if not isinstance(value, list) or not value or value[0] not in _TYPES:
        raise UnknownEvent(repr(data[:64]))
    cls = _TYPES[value[0]]
    values = dict(zip(_FIELDS[cls], value[1:]))
    for name in _TUPLES.get(cls, ()):
        values[name] = tuple(values[name])
    if cls is Progress:
        values["procedures"] = tuple(Procedure(**p) for p in values["procedures"])
    return cls(**values)


def encode_header(owner: TurnOwner) -> bytes:
    """A TurnOwner (engine.py): the turn's info, its visitor and face."""
    return orjson.dumps({"info": owner.info, "visitor_id": owner.visitor_id, "face": owner.face})


def decode_header(data: bytes) -> TurnOwner:
    value = orjson.loads(data)
    return TurnOwner(TurnInfo(**value["info"]), value["visitor_id"], Face(value["face"]))


class EngineCodec:
    """What a shared bus needs to store the engine's events and headers."""

    encode_event = staticmethod(encode_event)
    decode_event = staticmethod(decode_event)
    encode_header = staticmethod(encode_header)
    decode_header = staticmethod(decode_header)
