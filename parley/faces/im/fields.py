"""Reading request fields with IM's rules: names are case-sensitive, types strict, sizes in bytes."""

from __future__ import annotations

from typing import Any

from parley.faces.im.errors import IMError

U32_MAX = 2**32 - 1
MAX_BODY_BYTES = 12 * 1024
ELEMENT_TYPES = {
    "TIMTextElem", "TIMCustomElem", "TIMLocationElem", "TIMFaceElem", "TIMSoundElem",
    "TIMImageElem", "TIMFileElem", "TIMVideoFileElem", "TIMStreamElem",
}


def string(body: dict[str, Any], name: str, code: int, *, required: bool = False, max_bytes: int | None = None,
           too_long_code: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise IMError(code, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise IMError(code, f"{name} must be a string")
    if required and not value:
        raise IMError(code, f"{name} must not be empty")
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise IMError(too_long_code or code, f"{name} is longer than {max_bytes} bytes")
    return value


def integer(body: dict[str, Any], name: str, code: int, *, required: bool = False, low: int = 0,
            high: int = U32_MAX) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise IMError(code, f"{name} is required")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise IMError(code, f"{name} must be an integer from {low} to {high}")
    return value


def message_body(body: dict[str, Any], code: int) -> list[dict[str, Any]]:
    """`MsgBody`: a non-empty array of `{"MsgType", "MsgContent"}` elements."""
    elements = body.get("MsgBody")
    if not isinstance(elements, list) or not elements:
        raise IMError(code, "MsgBody must be a non-empty array of message elements")
    for index, element in enumerate(elements):
        if not isinstance(element, dict):
            raise IMError(code, f"MsgBody[{index}] must be an object")
        kind, content = element.get("MsgType"), element.get("MsgContent")
        if not isinstance(kind, str) or kind not in ELEMENT_TYPES:
            raise IMError(code, f"MsgBody[{index}].MsgType {kind!r} is not a known element type")
        if not isinstance(content, dict):
            raise IMError(code, f"MsgBody[{index}].MsgContent must be an object")
        if kind == "TIMTextElem" and not isinstance(content.get("Text"), str):
            raise IMError(code, f"MsgBody[{index}].MsgContent.Text must be a string")
        if kind == "TIMCustomElem":
            for key in ("Data", "Desc", "Ext", "Sound"):
                if key in content and not isinstance(content[key], str):
                    raise IMError(code, f"MsgBody[{index}].MsgContent.{key} must be a string")
    return elements
