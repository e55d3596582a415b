"""`{{node_id.field}}` references: finding them, and filling them from a run's values.

A string that is exactly one reference evaluates to the referenced value itself (a list
stays a list); a reference inside longer text is replaced by the value's text (strings as
they are, nothing for a missing value, JSON for the rest). `sys.*` names the system values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

REFERENCE = re.compile(r"\{\{\s*([A-Za-z0-9_][A-Za-z0-9_-]*)\.([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*\}\}")
SYSTEM = "sys"
SYSTEM_FIELDS = {
    "query": "the user's question (for a resumed run: the answer that resumed it)",
    "history": "earlier turns of the conversation: a list of {role, content}",
    "visitor": "the visitor's id",
    "session": "the session's id",
    "turn": "how many questions the session had before this one",
    "run_id": "this workflow run's id",
}

Values = Mapping[str, Mapping[str, Any]]
"""node id (or `sys`) -> that node's outputs."""


def references_in(value: Any) -> Iterator[tuple[str, str]]:
    """Every (node id, field path) referenced anywhere inside `value`."""
    if isinstance(value, str):
        if "{{" in value:
            for match in REFERENCE.finditer(value):
                yield match.group(1), match.group(2)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from references_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from references_in(item)


def single_reference(value: Any) -> tuple[str, str] | None:
    """The reference when `value` is exactly one `{{node.field}}`."""
    if isinstance(value, str):
        match = REFERENCE.fullmatch(value.strip())
        if match:
            return match.group(1), match.group(2)
    return None


def lookup(values: Values, node: str, path: str) -> Any:
    """The value at `node.path` (`path` may go into objects and lists: `field.key.0`); None if absent."""
    current: Any = values.get(node)
    for key in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(key)
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return None
    return current


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def render(value: Any, values: Values) -> Any:
    """`value` with its references filled in (recursively through objects and lists)."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        single = REFERENCE.fullmatch(value.strip())
        if single:
            return lookup(values, single.group(1), single.group(2))
        return REFERENCE.sub(lambda m: as_text(lookup(values, m.group(1), m.group(2))), value)
    if isinstance(value, Mapping):
        return {key: render(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, values) for item in value]
    return value


def render_text(value: Any, values: Values) -> str:
    """`value` rendered, as text."""
    return as_text(render(value, values)) if isinstance(value, str) and "{{" in value else as_text(value)
