"""Validation of the ADP chat request (`POST /v1/qbot/chat/sse` and the WebSocket `send`).

Every field is checked for type, length and pattern; unknown fields are accepted and
ignored, as third-party clients send several undocumented ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from parley.engine.faces import Face
from parley.engine.turn import TurnRequest
from parley.faces.resume import ResumePoint

SESSION_ID = re.compile(r"^[a-zA-Z0-9_-]{2,64}$")
SWITCH_VALUES = ("", "enable", "disable")
INT32_MAX = 2**31 - 1
RECORD_ID = re.compile(r"^[0-9]{1,20}$")
FILE_INFO_FIELDS = ("file_name", "file_size", "file_url", "file_type", "doc_id")


class BadRequest(Exception):
    """A request field is missing or malformed (ADP code 400)."""


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request: the engine's part plus how the answer is to be rendered."""

    turn: TurnRequest
    incremental: bool = False
    streaming_throttle: int = 0
    stream: str = ""
    search_network: str = ""
    workflow_status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def validate_chat(data: dict[str, Any], *, app_key: str | None = None, visitor_id: str | None = None) -> ChatRequest:
    """Checks an SSE request body, or (with `app_key` and `visitor_id` from a token) a WebSocket `send`."""
    request_id = string_field(data, "request_id", 255)
    session_id = string_field(data, "session_id", 64, required=True)
    if not SESSION_ID.match(session_id):
        raise BadRequest("session_id must match ^[a-zA-Z0-9_-]{2,64}$")
    if app_key is None:
        app_key = string_field(data, "bot_app_key", 128, required=True, non_empty=True)
    if visitor_id is None:
        visitor_id = string_field(data, "visitor_biz_id", 64, required=True, non_empty=True)
    file_infos = _file_infos(data.get("file_infos"))
    search_network = _switch(data, "search_network")
    content = string_field(data, "content", None, required=not file_infos)
    if not content and not file_infos:
        raise BadRequest("content must not be empty when no file_infos are given")
    throttle = int32_field(data, "streaming_throttle")
    incremental = bool_field(data, "incremental")
    system_role = string_field(data, "system_role", None)
    model_name = string_field(data, "model_name", 128) or None
    string_field(data, "tcadp_user_id", 255)
    for name in ("tool_ouputs",):
        if data.get(name) is not None and not isinstance(data[name], list):
            raise BadRequest(f"{name} must be an array")
    if data.get("agent_config") is not None and not isinstance(data["agent_config"], dict):
        raise BadRequest("agent_config must be an object")
    workflow_status = _switch(data, "workflow_status")
    return ChatRequest(
        turn=TurnRequest(
            app_key=app_key,
            visitor_id=visitor_id,
            session_id=session_id,
            face=Face.ADP,
            content=content,
            request_id=request_id,
            model_name=model_name,
            system_role=system_role or None,
            custom_variables=_custom_variables(data.get("custom_variables")),
            file_infos=file_infos,
            visitor_labels=_visitor_labels(data.get("visitor_labels")),
            workflow_enabled=workflow_status != "disable",
            search=search_switch(search_network),
        ),
        incremental=incremental,
        streaming_throttle=throttle,
        stream=_switch(data, "stream"),
        search_network=search_network,
        workflow_status=workflow_status,
    )


def validate_resume(data: dict[str, Any], *, app_key: str, visitor_id: str) -> tuple[ChatRequest, ResumePoint]:
    """Checks a WebSocket `resume`: `record_id` (the answer's), `offset` (events already received),
    `session_id`, and the `send` fields that shape the events (`incremental`, `streaming_throttle`,
    `stream`), so that the events replayed are those the first connection got. The session and
    the token's visitor must be the turn's: the engine checks them."""
    turn_id = record_id_field(data, "record_id")
    offset = int32_field(data, "offset")
    session_id = string_field(data, "session_id", 64, required=True)
    if not SESSION_ID.match(session_id):
        raise BadRequest("session_id must match ^[a-zA-Z0-9_-]{2,64}$")
    chat = resumed_chat(app_key, visitor_id, session_id, string_field(data, "request_id", 255),
                        bool_field(data, "incremental"), int32_field(data, "streaming_throttle"), _switch(data, "stream"))
    return chat, ResumePoint(turn_id, offset)


def resumed_chat(
    app_key: str, visitor_id: str, session_id: str, request_id: str, incremental: bool, throttle: int, stream: str
) -> ChatRequest:
    """The request a resumed turn's events are rendered for: no question (no turn starts), only whose
    turn it must be and how its events are shaped."""
    turn = TurnRequest(app_key=app_key, visitor_id=visitor_id, session_id=session_id, face=Face.ADP, content="",
                       request_id=request_id)
    return ChatRequest(turn=turn, incremental=incremental, streaming_throttle=throttle, stream=stream)


def record_id_field(data: dict[str, Any], name: str) -> int:
    """A required record id: a string of digits, as every event carries it (an integer is accepted too)."""
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not RECORD_ID.match(value):
        raise BadRequest(f"{name} is required: the answer's record id, a string of digits")
    return int(value)


def string_field(
    data: dict[str, Any], name: str, limit: int | None, *, required: bool = False, non_empty: bool = False
) -> str:
    """A string field: absent is "" unless `required`; `non_empty` refuses "" as well."""
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if limit is not None and len(value) > limit:
        raise BadRequest(f"{name} must be at most {limit} characters")
    if non_empty and not value:
        raise BadRequest(f"{name} must not be empty")
    return value


def int32_field(data: dict[str, Any], name: str) -> int:
    """A non-negative int32 field (a JSON integer, not a boolean); absent is 0."""
    value = data.get(name)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32_MAX:
        raise BadRequest(f"{name} must be a non-negative int32")
    return value


def bool_field(data: dict[str, Any], name: str) -> bool:
    """A boolean field; absent is False."""
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean")
    return value


def _switch(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if value not in SWITCH_VALUES:
        raise BadRequest(f'{name} must be "", "enable" or "disable"')
    return value


def search_switch(value: str) -> bool | None:
    """`search_network` as the engine takes it: "enable" on, "disable" off, "" the application's setting."""
    return {"enable": True, "disable": False}.get(value)


def _custom_variables(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("custom_variables must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise BadRequest(f"custom_variables.{key} must be a string")
    return value


def _visitor_labels(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("visitor_labels must be an array")
    for label in value:
        if (
            not isinstance(label, dict)
            or not isinstance(label.get("name"), str)
            or not isinstance(label.get("values", []), list)
            or not all(isinstance(v, str) for v in label.get("values", []))
        ):
            raise BadRequest("visitor_labels items must be {name: string, values: [string]}")
    return value


def _file_infos(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("file_infos must be an array")
    for info in value:
        if not isinstance(info, dict):
            raise BadRequest("file_infos items must be objects")
        for name in FILE_INFO_FIELDS:
            if not isinstance(info.get(name), str):
                raise BadRequest(f"file_infos[].{name} must be a string")
    return value
