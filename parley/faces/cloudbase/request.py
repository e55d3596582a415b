"""Reading CloudBase requests: JSON bodies, query strings, and the checks on each field.

`@cloudbase/ai` appends GET parameters as `key=value&...` without URL-encoding them and
writes a missing value as `undefined`; the query reader keeps `+` literal, decodes any
percent-escapes as UTF-8 and treats `undefined` and `null` as absent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson

from parley.channels.cloudbase import FeedbackInput, HistoryItem
from parley.faces.cloudbase.errors import INVALID_PARAM, FaceError
from parley.ids import parse_id

ABSENT = ("", "undefined", "null")
HISTORY_ROLES = ("user", "assistant", "system")
MAX_HISTORY = 100
MAX_FILES = 20
FILE_SCHEMES = ("cloud://", "https://", "http://")


def invalid(message: str) -> FaceError:
    return FaceError(INVALID_PARAM, message)


def json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("the body must be a JSON object")
    return data


def query_of(raw: bytes) -> dict[str, str]:
    """The query's parameters (the first of repeated ones), absent values left out."""
    params: dict[str, str] = {}
    for part in raw.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        name = unquote(key.decode("utf-8", "replace"))
        text = unquote(value.decode("utf-8", "replace"))
        if name and name not in params and text not in ABSENT:
            params[name] = text
    return params


def string(data: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise invalid(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    if len(value) > limit:
        raise invalid(f"{name} must be at most {limit} characters")
    return value


def boolean(data: dict[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise invalid(f"{name} must be true or false")


def integer(data: dict[str, Any], name: str, default: int, low: int, high: int | None = None) -> int:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        raise invalid(f"{name} must be an integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise invalid(f"{name} must be an integer") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise invalid(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid(f"{name} must be {bounds}")
    return value


def history(data: dict[str, Any]) -> list[HistoryItem]:
    value = data.get("history")
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("history must be an array of {role, content}")
    if len(value) > MAX_HISTORY:
        raise invalid(f"history may hold at most {MAX_HISTORY} items")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid(f"history[{index}] must be an object with role and content")
        role, content = item.get("role"), item.get("content")
        if role not in HISTORY_ROLES:
            raise invalid(f"history[{index}].role must be one of {', '.join(HISTORY_ROLES)}")
        if not isinstance(content, str):
            raise invalid(f"history[{index}].content must be a string")
        items.append(HistoryItem(role, content))
    return items


def files(data: dict[str, Any]) -> list[str]:
    value = data.get("files")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise invalid(f"files must be an array of at most {MAX_FILES} file ids or URLs")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.startswith(FILE_SCHEMES) or len(item) > 2048:
            raise invalid(f"files[{index}] must be a cloud:// file id or an http(s):// URL")
    return value


def feedback(data: dict[str, Any]) -> FeedbackInput:
    record_id = parse_id(string(data, "recordId", 32, required=True))
    if record_id is None:
        raise invalid("recordId must be a record id from the stream's record_id")
    kind = string(data, "type", 16, required=True)
    if kind not in ("upvote", "downvote"):
        raise invalid('type must be "upvote" or "downvote"')
    tags = data.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or len(tags) > 20 or not all(isinstance(t, str) and len(t) <= 64 for t in tags):
        raise invalid("tags must be an array of at most 20 strings of up to 64 characters")
    return FeedbackInput(
        record_id=record_id,
        type=kind,
        rating=integer(data, "rating", 0, 0, 10),
        comment=string(data, "comment", 2000),
        tags=tags,
        input=string(data, "input", 20000),
        ai_answer=string(data, "aiAnswer", 20000),
    )


def timestamp_ms(data: dict[str, str], name: str) -> int | None:
    """A `from`/`to` bound: Unix seconds or milliseconds (values below 10^11 are seconds); 0 is no bound."""
    value = integer(data, name, 0, 0, 10**14)
    if value == 0:
        return None
    return value * 1000 if value < 10**11 else value
