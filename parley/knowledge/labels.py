"""Labels and the visitor's retrieval scope.

Documents and Q&A pairs either apply to everyone (`attr_range` ALL) or carry labels:
attributes with values, such as `department: hr|sales`. An application binds
`custom_variables` keys to attributes; a request's values for those keys (several joined
with `|`) scope retrieval, and so does the legacy `visitor_labels` list. An item is in scope
when it applies to everyone, or when its labels hold one of the requested values for every
scoped attribute (condition "and", the default) or for any of them (condition "or").
A request that scopes nothing sees the whole knowledge base.

`Scope` and the `attr_range` values are the store's (parley.store.knowledge_scope: its
queries filter by them); they are re-exported here with the parsing that makes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from parley.store.knowledge_scope import ATTR_ALL, ATTR_LABELS, EVERYTHING, Scope

__all__ = [
    "ATTR_ALL", "ATTR_LABELS", "EVERYTHING", "MAX_VALUE_LENGTH", "Scope", "ScopeError",
    "check_attribute", "check_value", "parse_label_options", "parse_labels", "parse_scope",
]

_ATTRIBUTE = re.compile(r"^[\w.\-]{1,64}$")
MAX_VALUE_LENGTH = 128


class ScopeError(ValueError):
    """Malformed labels or scope (ADP 460024, invalid label)."""


def _values(raw: str) -> frozenset[str]:
    return frozenset(v.strip() for v in raw.split("|") if v.strip())


def check_attribute(name: Any) -> str:
    if not isinstance(name, str) or not _ATTRIBUTE.match(name):
        raise ScopeError(f"label attribute {name!r} must be 1-64 letters, digits, '_', '-' or '.'")
    return name


def check_value(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_LENGTH or "|" in value:
        raise ScopeError(f"label value {value!r} must be a non-empty string of at most {MAX_VALUE_LENGTH} characters without '|'")
    return value.strip()


def parse_scope(
    custom_variables: Mapping[str, Any] | None,
    visitor_labels: Any,
    bindings: Mapping[str, str],
    condition: Literal["and", "or"] = "and",
) -> Scope:
    """The scope a request asks for.

    `bindings` maps custom_variables keys to attributes; unbound keys are not about
    knowledge (workflow parameters, role prompt variables) and are ignored. Raises
    ScopeError for a malformed `visitor_labels`.
    """
    filters: dict[str, set[str]] = {}
    for key, attribute in bindings.items():
        raw = (custom_variables or {}).get(key)
        if isinstance(raw, str) and (values := _values(raw)):
            filters.setdefault(attribute, set()).update(values)
    if visitor_labels:
        if not isinstance(visitor_labels, list):
            raise ScopeError("visitor_labels must be a list of {name, values}")
        for label in visitor_labels:
            if not isinstance(label, dict) or not isinstance(label.get("values", []), list):
                raise ScopeError("each visitor_labels item must be {\"name\": str, \"values\": [str]}")
            attribute = check_attribute(label.get("name"))
            values = {check_value(v) for v in label.get("values") or []}
            if values:
                filters.setdefault(attribute, set()).update(values)
    return Scope({a: frozenset(v) for a, v in filters.items()}, condition)


def parse_labels(data: Any) -> dict[str, list[str]]:
    """Labels given to a document or Q&A pair: {attribute: [values]} or {attribute: "a|b"}."""
    if data in (None, {}, []):
        return {}
    if not isinstance(data, dict):
        raise ScopeError("labels must be an object of attribute: [values]")
    labels: dict[str, list[str]] = {}
    for attribute, values in data.items():
        check_attribute(attribute)
        if isinstance(values, str):
            values = [v for v in values.split("|") if v.strip()]
        if not isinstance(values, list) or not values:
            raise ScopeError(f"label {attribute!r} needs at least one value")
        labels[attribute] = sorted({check_value(v) for v in values})
    return labels


def parse_label_options(options: list[str]) -> dict[str, list[str]]:
    """`attribute=v1|v2` strings (the CLI's --label) to labels."""
    data: dict[str, str] = {}
    for option in options:
        attribute, sep, values = option.partition("=")
        if not sep:
            raise ScopeError(f"--label {option!r}: expected ATTRIBUTE=VALUE[|VALUE...]")
        data[attribute.strip()] = (data.get(attribute.strip(), "") + "|" + values).strip("|")
    return parse_labels(data)
