"""Attribute labels to plain labels, and similar labels widening a chat scope (pure functions)."""

from __future__ import annotations

import pytest

from parley.knowledge.attributes import (
    AttributeEntity,
    LabelEntity,
    LabelError,
    LabelInput,
    LabelRef,
    attribute_key,
    check_label_input,
    check_label_set,
    expand_scope,
    resolve_refs,
    synonyms,
)
from parley.knowledge.labels import ATTR_LABELS, Scope
from parley.knowledge.qa import QAError, SimilarEdit

DEPARTMENT = AttributeEntity(
    10, 1, "dept", "Department",
    (LabelEntity(11, "hr", ("people", "personnel")), LabelEntity(12, "it"), LabelEntity(13, "销售", ("sales",))),
)
REGION = AttributeEntity(20, 1, "attr_20", "销售 区域", (LabelEntity(21, "north"),))
ATTRIBUTES = {a.id: a for a in (DEPARTMENT, REGION)}


def test_refs_resolve_to_attribute_keys_and_label_names():
    refs = [LabelRef(10, (11, 13)), LabelRef(20, (21,)), LabelRef(10, (11,))]
    assert resolve_refs(ATTRIBUTES, refs) == {"dept": ["hr", "销售"], "attr_20": ["north"]}


@pytest.mark.parametrize(
    "refs",
    [[LabelRef(99, (11,))], [LabelRef(10, (21,))], [LabelRef(10, (11,)), LabelRef(20, (999,))], [LabelRef(10, ())]],
    ids=["unknown attribute", "label of another attribute", "one bad label among good ones", "no labels"],
)
def test_an_unknown_or_missing_id_is_refused_as_a_whole(refs):
    with pytest.raises(LabelError):
        resolve_refs(ATTRIBUTES, refs)


def test_a_similar_label_in_the_scope_admits_items_with_its_standard_label():
    scope = expand_scope(Scope({"dept": frozenset({"sales"})}), synonyms(ATTRIBUTES.values()))
    assert scope.filters["dept"] == {"sales", "销售"}
    assert scope.admits(ATTR_LABELS, {"dept": {"销售"}})
    assert not scope.admits(ATTR_LABELS, {"dept": {"hr"}})


def test_expansion_keeps_unrelated_scopes_and_the_condition():
    table = synonyms(ATTRIBUTES.values())
    scope = Scope({"dept": frozenset({"it"}), "other": frozenset({"people"})}, "or")
    expanded = expand_scope(scope, table)
    assert expanded.filters == {"dept": {"it"}, "other": {"people"}} and expanded.condition == "or"
    assert expand_scope(Scope(), table) == Scope()


def test_attribute_keys_come_from_the_key_the_name_or_the_id():
    assert attribute_key("", "department", 5, []) == "department"
    assert attribute_key("", "销售区域", 5, []) == "销售区域"
    assert attribute_key("", "has spaces", 5, []) == "attr_5"
    assert attribute_key("", "department", 5, ["department"]) == "attr_5"
    assert attribute_key("dept", "Department", 5, []) == "dept"
    with pytest.raises(LabelError):
        attribute_key("dept", "Department", 5, ["dept"])
    with pytest.raises(LabelError):
        attribute_key("bad key!", "Department", 5, [])


def test_label_inputs_are_cleaned_and_checked():
    assert check_label_input(LabelInput(" hr ", ("people", "people", "hr"))) == LabelInput("hr", ("people",))
    for bad in (LabelInput(""), LabelInput("a|b"), LabelInput("x" * 129), LabelInput("ok", ("",))):
        with pytest.raises(LabelError):
            check_label_input(bad)
    with pytest.raises(LabelError):
        check_label_set([LabelInput("hr"), LabelInput("it"), LabelInput("hr")])


def test_similar_question_edits_apply_by_id_or_text():
    current = [(1, "is there delivery?"), (2, "do you ship?"), (3, "shipping?")]
    edit = SimilarEdit(add=["can you send it?"], update={2: "do you ship abroad?"}, delete=[1, "shipping?"])
    assert edit.apply(current) == ["do you ship abroad?", "can you send it?"]
    with pytest.raises(QAError):
        SimilarEdit(update={9: "x"}).apply(current)
