"""Message bodies: reading text out of them, and the chatbot custom element that TUIKit renders.

A robot's streamed answer is a `TIMCustomElem` whose `Data` is JSON
`{"chatbotPlugin": 2, "src": 2, "chunks": [...], "isFinished": 0|1}`, modified in place as
chunks arrive (`chunks` is cumulative); an error is `src: 23` with `errorInfo`; a user's
interrupt is `src: 22` carrying the `msgKey` of the robot message to stop
(protocols/im.md, section 7).
"""

from __future__ import annotations

import json
from typing import Any

ROBOT_PREFIX = "@RBT#"
CHATBOT_PLUGIN = 2
SRC_STREAM_TEXT = 2
SRC_INTERRUPT = 22
SRC_ERROR = 23

Body = list[dict[str, Any]]


def is_robot_id(user_id: str) -> bool:
    return user_id.startswith(ROBOT_PREFIX)


def text_of(body: Body) -> str:
    """The text a model should read: the message's text elements, joined."""
    parts = [
        element["MsgContent"].get("Text", "")
        for element in body
        if element.get("MsgType") == "TIMTextElem" and isinstance(element.get("MsgContent"), dict)
    ]
    return "\n".join(p for p in parts if isinstance(p, str) and p)


def custom_data(body: Body) -> dict[str, Any] | None:
    """The JSON object in the first custom element's `Data`, if there is one."""
    for element in body:
        if element.get("MsgType") != "TIMCustomElem":
            continue
        content = element.get("MsgContent")
        data = content.get("Data") if isinstance(content, dict) else None
        if not isinstance(data, str):
            return None
        try:
            parsed = json.loads(data)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def interrupted_key(body: Body) -> str | None:
    """The msgKey a user's interrupt message asks to stop, or None if this is no interrupt."""
    data = custom_data(body)
    if data is None or data.get("src") != SRC_INTERRUPT or "chatbotPlugin" not in data:
        return None
    key = data.get("msgKey")
    return key if isinstance(key, str) and key else None


def _custom(data: dict[str, Any]) -> Body:
    return [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": json.dumps(data, ensure_ascii=False), "Desc": "", "Ext": ""}}]


def stream_body(chunks: list[str], finished: bool) -> Body:
    return _custom({"chatbotPlugin": CHATBOT_PLUGIN, "src": SRC_STREAM_TEXT, "chunks": chunks, "isFinished": int(finished)})


def error_body(info: str) -> Body:
    return _custom({"chatbotPlugin": CHATBOT_PLUGIN, "src": SRC_ERROR, "errorInfo": info, "isFinished": 1})


def stream_chunks(body: Body) -> list[str]:
    """The chunks so far of a streaming message's body."""
    data = custom_data(body) or {}
    chunks = data.get("chunks")
    return [c for c in chunks if isinstance(c, str)] if isinstance(chunks, list) else []
