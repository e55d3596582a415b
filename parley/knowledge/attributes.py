"""Attribute labels as entities: ids, display names and similar labels for the labels items carry.

A document or Q&A pair carries plain labels, `{attribute key: [label names]}`, and chat
scoping compares those names (parley.knowledge.labels). ADP's cloud API names labels by id
instead: an attribute (AttrBizId, AttrKey, AttrName) has labels (LabelBizId, LabelName,
SimilarLabels). This module holds that model and the two pure steps that connect it to
the plain one:

- `resolve_refs`: AttrLabels `{AttributeBizId, LabelBizIds}` to plain labels (an unknown id
  is an error, so nothing half-resolved is stored);
- `expand_scope`: a chat scope's requested values, plus the labels that list one of them
  among their similar labels, so a visitor saying "sales" also sees items labelled "销售"
  when "sales" is one of its similar labels.

An attribute's key is fixed when it is created: the (deprecated) AttrKey if given, else
its name when that is a valid attribute key, else `attr_<id>`. Applications bind
custom_variables keys to that key, as they do for plain labels.

The entities themselves (AttributeEntity, LabelEntity, LabelInput) are what the store reads
and writes (parley.store.knowledge_labels); they are re-exported here for the faces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from parley.knowledge.labels import Scope, ScopeError, check_attribute, check_value
from parley.store.knowledge_labels import AttributeEntity, LabelEntity, LabelInput

__all__ = [
    "MAX_ATTRIBUTE_NAME", "MAX_LABELS", "MAX_SIMILAR",
    "AttributeEntity", "LabelEntity", "LabelError", "LabelInput", "LabelNotFound", "LabelRef",
    "attribute_key", "check_attribute_name", "check_label_input", "check_label_set", "expand_scope",
    "resolve_refs", "synonyms",
]

MAX_ATTRIBUTE_NAME = 128
MAX_LABELS = 1000
MAX_SIMILAR = 100


class LabelError(ValueError):
    """An attribute-label request the caller has to correct (bad name, unknown label id)."""


class LabelNotFound(LabelError):
    """The attribute named by id does not exist in this application."""


@dataclass(frozen=True, slots=True)
class LabelRef:
    """AttrLabels' `{Source: 1, AttributeBizId, LabelBizIds}`."""

    attribute_id: int
    label_ids: tuple[int, ...] = field(default_factory=tuple)


def check_attribute_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_ATTRIBUTE_NAME:
        raise LabelError(f"an attribute name must be a non-empty string of at most {MAX_ATTRIBUTE_NAME} characters")
    return name.strip()


def check_label_input(label: LabelInput) -> LabelInput:
    """The label with its name and similar labels checked and cleaned; raises LabelError."""
    try:
        name = check_value(label.name)
        similar = tuple(dict.fromkeys(check_value(s) for s in label.similar))
    except ScopeError as exc:
        raise LabelError(str(exc)) from None
    if len(similar) > MAX_SIMILAR:
        raise LabelError(f"a label has at most {MAX_SIMILAR} similar labels")
    return LabelInput(name, tuple(s for s in similar if s != name), label.id)


def check_label_set(labels: Sequence[LabelInput]) -> None:
    """An attribute's labels after a change: at most MAX_LABELS, names unique."""
    if len(labels) > MAX_LABELS:
        raise LabelError(f"an attribute has at most {MAX_LABELS} labels")
    names = [label.name for label in labels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LabelError(f"label names must be unique within an attribute: {', '.join(duplicates)}")


def attribute_key(requested: str, name: str, attribute_id: int, taken: Iterable[str]) -> str:
    """The key a new attribute gets (see the module docstring)."""
    used = set(taken)
    if requested:
        try:
            key = check_attribute(requested)
        except ScopeError as exc:
            raise LabelError(str(exc)) from None
        if key in used:
            raise LabelError(f"an attribute with key {key!r} already exists")
        return key
    try:
        key = check_attribute(name)
    except ScopeError:
        return f"attr_{attribute_id}"
    return key if key not in used else f"attr_{attribute_id}"


def resolve_refs(attributes: Mapping[int, AttributeEntity], refs: Sequence[LabelRef]) -> dict[str, list[str]]:
    """Plain labels `{attribute key: [label names]}` for AttrLabels refs; raises LabelError for
    an unknown attribute or label id, or an attribute given without labels."""
    resolved: dict[str, list[str]] = {}
    for ref in refs:
        attribute = attributes.get(ref.attribute_id)
        if attribute is None:
            raise LabelError(f"no attribute label {ref.attribute_id} in this application")
        if not ref.label_ids:
            raise LabelError(f"attribute {ref.attribute_id} is given without LabelBizIds")
        names = resolved.setdefault(attribute.key, [])
        for label_id in ref.label_ids:
            label = attribute.label(label_id)
            if label is None:
                raise LabelError(f"attribute {ref.attribute_id} has no label {label_id}")
            if label.name not in names:
                names.append(label.name)
    return resolved


def synonyms(attributes: Iterable[AttributeEntity]) -> dict[str, dict[str, set[str]]]:
    """attribute key -> similar label -> the label names that list it."""
    found: dict[str, dict[str, set[str]]] = {}
    for attribute in attributes:
        for label in attribute.labels:
            for similar in label.similar:
                found.setdefault(attribute.key, {}).setdefault(similar, set()).add(label.name)
    return found


def expand_scope(scope: Scope, by_key: Mapping[str, Mapping[str, set[str]]]) -> Scope:
    """The scope with each requested value's labels added (a value that is a similar label)."""
    if not scope.restricted or not by_key:
        return scope
    filters: dict[str, frozenset[str]] = {}
    for key, values in scope.filters.items():
        table = by_key.get(key, {})
        extra = {name for value in values for name in table.get(value, ())}
        filters[key] = values | frozenset(extra)
    return Scope(filters, scope.condition)
