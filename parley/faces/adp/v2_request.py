"""Validation of the ADP v2 chat request (`POST /adp/v2/chat`, v2 bodies on `/v1/qbot/chat/sse`, and
the v2 WebSocket `request` event).

v2 fields are PascalCase and the question is a list of `Contents` (text, image, file,
custom_variables) instead of v1's `content` string. They map onto the same TurnRequest as v1,
so that v1 and v2 turns share sessions (ConversationId is v1's session_id), history and records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from parley.engine.faces import Face
from parley.engine.turn import TurnRequest
from parley.faces.adp.request import (
    SWITCH_VALUES,
    BadRequest,
    ChatRequest,
    bool_field,
    int32_field,
    record_id_field,
    resumed_chat,
    search_switch,
    string_field,
)
from parley.faces.resume import ResumePoint

CONVERSATION_ID = re.compile(r"^[a-zA-Z0-9_-]{32,64}$")
TEXT_TYPES = ("text", "json_text")
CONTENT_TYPES = ("text", "json_text", "image", "file", "custom_variables")
NO_DOCUMENT = ("", "0")
"""DocId values that name no parsed document (adp-chat-client sends "0" for images)."""


@dataclass(slots=True)
class V2Chat:
    """A validated v2 request: the engine's part, and the question's contents as the echo shows them."""

    chat: ChatRequest
    contents: list[dict[str, Any]] | None = field(default_factory=list)
    """None: the echo shows the recorded question's text (a resumed turn whose request gave no Contents)."""


def looks_like_v2(data: dict[str, Any]) -> bool:
    """Whether a body posted to the v1 path is a v2 request: PascalCase v2 keys and no v1 ones.

    A handful of dict lookups, so the v1 path pays nothing measurable for it.
    """
    if "bot_app_key" in data or "session_id" in data:
        return False
    return "ConversationId" in data or "Contents" in data or "AppKey" in data or "VisitorId" in data


def looks_like_v2_bytes(body: bytes) -> bool:
    """The same guess for a body that is not even JSON, so that its error is in the shape the client reads."""
    return b'"ConversationId"' in body or b'"Contents"' in body


def validate_v2(data: dict[str, Any], *, app_key: str | None = None, visitor_id: str | None = None) -> V2Chat:
    """Checks a v2 body, or (with `app_key` and `visitor_id` from a token) a WebSocket `Request`."""
    request_id = string_field(data, "RequestId", 255)
    conversation_id = _conversation_id(data)
    if app_key is None:
        app_key = string_field(data, "AppKey", 128, required=True, non_empty=True)
    if visitor_id is None:
        visitor_id = string_field(data, "VisitorId", 64, required=True, non_empty=True)
    texts, file_infos, variables, echo = _contents(data.get("Contents"))
    content = "\n".join(text for text in texts if text)
    if not content and not file_infos:
        raise BadRequest("Contents must carry a text, an image or a file")
    throttle = int32_field(data, "StreamingThrottle")
    incremental = bool_field(data, "Incremental")
    bool_field(data, "EnableMultiIntent")  # accepted and checked; Parley has one intent per turn
    system_role = string_field(data, "SystemRole", None)
    model_name = string_field(data, "ModelName", 128) or None
    workflow_status = _switch(data, "WorkflowStatus")
    search_network = _switch(data, "SearchNetwork")
    chat = ChatRequest(
        turn=TurnRequest(
            app_key=app_key,
            visitor_id=visitor_id,
            session_id=conversation_id,
            face=Face.ADP,
            content=content,
            request_id=request_id,
            model_name=model_name,
            system_role=system_role or None,
            custom_variables=variables,
            file_infos=file_infos,
            workflow_enabled=workflow_status != "disable",
            search=search_switch(search_network),
        ),
        incremental=incremental,
        streaming_throttle=throttle,
        stream=_switch(data, "Stream"),
        search_network=search_network,
        workflow_status=workflow_status,
    )
    return V2Chat(chat, echo)


def validate_v2_resume(data: dict[str, Any], *, app_key: str, visitor_id: str) -> tuple[V2Chat, ResumePoint]:
    """Checks a v2 WebSocket `resume`: `RecordId` (the answer's), `Offset` (events already received),
    `ConversationId`, and the request fields that shape the events (`Incremental`,
    `StreamingThrottle`, `Stream`; `Contents` only for the echo, which otherwise shows the recorded
    question). The conversation and the token's visitor must be the turn's: the engine checks them."""
    turn_id = record_id_field(data, "RecordId")
    offset = int32_field(data, "Offset")
    conversation_id = _conversation_id(data)
    echo = _contents(data["Contents"])[3] if data.get("Contents") is not None else None
    chat = resumed_chat(app_key, visitor_id, conversation_id, string_field(data, "RequestId", 255),
                        bool_field(data, "Incremental"), int32_field(data, "StreamingThrottle"), _switch(data, "Stream"))
    return V2Chat(chat, echo), ResumePoint(turn_id, offset)


def _conversation_id(data: dict[str, Any]) -> str:
    conversation_id = string_field(data, "ConversationId", 64, required=True)
    if not CONVERSATION_ID.match(conversation_id):
        raise BadRequest("ConversationId must match ^[a-zA-Z0-9_-]{32,64}$")
    return conversation_id


def request_id_of(data: dict[str, Any]) -> str:
    """The RequestId of a rejected body, when it is usable, so that the error can echo it."""
    value = data.get("RequestId")
    return value if isinstance(value, str) and len(value) <= 255 else ""


def _switch(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if value not in SWITCH_VALUES:
        raise BadRequest(f'{name} must be "", "enable" or "disable"')
    return value


def _contents(value: Any) -> tuple[list[str], list[dict[str, Any]], dict[str, str], list[dict[str, Any]]]:
    """(texts, file infos, custom variables, the contents to echo) of a `Contents` array.

    An image becomes a Markdown image link in the question (how v1 sends images); a file becomes a
    v1 file info, whose DocId names a document parsed by docParse (none when it is "0" or empty).
    """
    if not isinstance(value, list) or not value:
        raise BadRequest("Contents must be a non-empty array")
    texts: list[str] = []
    files: list[dict[str, Any]] = []
    variables: dict[str, str] = {}
    echo: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"Contents[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object")
        kind = item.get("Type")
        if kind not in CONTENT_TYPES:
            raise BadRequest(f"{where}.Type must be one of {', '.join(CONTENT_TYPES)}")
        if kind in TEXT_TYPES:
            text = item.get("Text")
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise BadRequest(f"{where}.Text must be a string")
            texts.append(text)
            echo.append({"Type": "text", "Text": text})
        elif kind == "image":
            image = item.get("Image")
            url = image.get("Url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url:
                raise BadRequest(f"{where}.Image.Url must be a non-empty string")
            texts.append(f"![]({url})")
            echo.append({"Type": "image", "Image": {"Url": url}})
        elif kind == "file":
            info, shown = _file(item.get("File"), where)
            files.append(info)
            echo.append({"Type": "file", "File": shown})
        else:
            found = item.get("CustomVariables")
            if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
                raise BadRequest(f"{where}.CustomVariables must be an object of strings")
            variables.update(found)
    return texts, files, variables, echo


def _file(value: Any, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}.File must be an object")
    shown: dict[str, Any] = {}
    for name in ("FileName", "FileUrl", "FileType"):
        item = value.get(name, "")
        if not isinstance(item, str):
            raise BadRequest(f"{where}.File.{name} must be a string")
        shown[name] = item
    size = value.get("FileSize", "0")
    if isinstance(size, bool) or not isinstance(size, (str, int)):
        raise BadRequest(f"{where}.File.FileSize must be a string or an integer")
    shown["FileSize"] = str(size)
    doc_id = value.get("DocBizId", value.get("DocId", ""))
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        raise BadRequest(f"{where}.File.DocId must be a string")
    if doc_id:
        shown["DocId"] = doc_id
    if not shown["FileUrl"] and doc_id in NO_DOCUMENT:
        raise BadRequest(f"{where}.File needs a FileUrl or the DocId that docParse gave")
    info = {
        "file_name": shown["FileName"],
        "file_size": shown["FileSize"],
        "file_url": shown["FileUrl"],
        "file_type": shown["FileType"],
        "doc_id": "" if doc_id in NO_DOCUMENT else doc_id,
    }
    return info, shown
