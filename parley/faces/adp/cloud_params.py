"""Cloud API parameters and errors: Tencent's codes for missing, mistyped and invalid values.

Tencent distinguishes `MissingParameter` (absent), `InvalidParameter` (wrong type or form)
and `InvalidParameterValue` (right type, value out of range).
"""

from __future__ import annotations

from typing import Any

from parley.ids import parse_id

UINT64_MAX = (1 << 64) - 1


class CloudApiError(Exception):
    """A call refused with one of Tencent's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Params:
    """An action's JSON parameters, read with Tencent's errors for missing or malformed ones."""

    def __init__(self, data: dict[str, Any], origin: str = "") -> None:
        self.data = data
        self.origin = origin
        """`scheme://host[:port]` the call came to, for URLs an answer hands out."""

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            raise CloudApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")
        return value

    def string(self, name: str, *, required: bool = False, max_len: int | None = None, default: str = "") -> str:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid_type(name, "a string")
        if required and not value:
            raise invalid_value(name, "must not be empty")
        if max_len is not None and len(value) > max_len:
            raise invalid_value(name, f"must be at most {max_len} characters")
        return value

    def integer(
        self, name: str, *, required: bool = False, default: int | None = None,
        minimum: int | None = None, maximum: int | None = None,
    ) -> int | None:
        value = self._get(name, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_type(name, "an integer")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise invalid_value(name, f"must be between {minimum} and {maximum}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_type(name, "a boolean")
        return value

    def biz_id(self, name: str, *, required: bool = True) -> int | None:
        """An id Parley minted, sent as a string of decimal digits (see `biz_id`)."""
        value = self.string(name, required=required)
        if not value:
            return None
        return biz_id(value, name)

    def strings(self, name: str, *, max_items: int = 1000) -> list[str]:
        value = self._get(name, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid_type(name, "an array of strings")
        if len(value) > max_items:
            raise invalid_value(name, f"must have at most {max_items} items")
        return value

    def integer_list(self, name: str, *, max_items: int = 100) -> list[int]:
        value = self._get(name, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise invalid_type(name, "an array of integers")
        if len(value) > max_items:
            raise invalid_value(name, f"must have at most {max_items} items")
        return value

    def object(self, name: str, *, required: bool = False) -> "Params":
        value = self._get(name, required)
        if value is None:
            return Params({})
        if not isinstance(value, dict):
            raise invalid_type(name, "an object")
        return Params(value)

    def objects(self, name: str) -> list["Params"]:
        value = self._get(name, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise invalid_type(name, "an array of objects")
        return [Params(v) for v in value]


def biz_id(value: str, name: str) -> int:
    """A BizId: decimal digits naming an unsigned 64-bit number, as Tencent's ids are.

    Anything else is InvalidParameterValue. A number no Parley id can be (past 63 bits: ids
    are stored as signed 64-bit integers) is well-formed but names nothing: ResourceNotFound.
    """
    if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) > UINT64_MAX:
        raise invalid_value(name, "must be a string of decimal digits naming an unsigned 64-bit number")
    found = parse_id(value)
    if found is None:
        raise CloudApiError("ResourceNotFound", f"Nothing has {name} {value}.")
    return found


def invalid_type(name: str, kind: str) -> CloudApiError:
    return CloudApiError("InvalidParameter", f"The parameter `{name}` must be {kind}.")


def invalid_value(name: str, detail: str) -> CloudApiError:
    return CloudApiError("InvalidParameterValue", f"The value of parameter `{name}` is invalid: {detail}.")
