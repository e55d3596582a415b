"""Scopes, citation marks, rank fusion, tokenising and Q&A import files."""

from __future__ import annotations

import io

import pytest

from parley.knowledge.index import ExactIndex, USearchIndex, query_terms, tokenize
from parley.knowledge.labels import ATTR_ALL, ATTR_LABELS, Scope, ScopeError, parse_label_options, parse_scope
from parley.knowledge.qa import QAError, fold, table_pairs
from parley.knowledge.search import reciprocal_rank_fusion
from parley.knowledge.service import quote_infos, strip_quote_marks


def test_scope_from_bound_custom_variables_splits_on_bars():
    scope = parse_scope({"dept": "hr| sales ", "UserID": "42"}, None, {"dept": "department"})
    assert scope.filters == {"department": frozenset({"hr", "sales"})}


def test_unbound_variables_and_empty_values_scope_nothing():
    assert not parse_scope({"UserID": "42", "dept": " | "}, [], {"dept": "department"}).restricted


def test_legacy_visitor_labels_scope_too():
    scope = parse_scope({}, [{"name": "region", "values": ["cn", "us"]}], {})
    assert scope.filters == {"region": frozenset({"cn", "us"})}


@pytest.mark.parametrize("labels", ["hr", [{"name": "bad name!", "values": ["x"]}], [{"name": "a", "values": "x"}], [3]])
def test_malformed_visitor_labels_are_refused(labels):
    with pytest.raises(ScopeError):
        parse_scope({}, labels, {})


def test_scope_admits_everyone_items_and_matching_labels_only():
    scope = Scope({"dept": frozenset({"hr"}), "region": frozenset({"cn"})})
    assert scope.admits(ATTR_ALL, {})
    assert scope.admits(ATTR_LABELS, {"dept": {"hr"}, "region": {"cn", "us"}})
    assert not scope.admits(ATTR_LABELS, {"dept": {"hr"}})  # "and": every scoped attribute must match
    assert Scope(scope.filters, "or").admits(ATTR_LABELS, {"dept": {"hr"}})
    assert not scope.admits(ATTR_LABELS, {"dept": {"sales"}, "region": {"cn"}})


def test_cli_label_options():
    assert parse_label_options(["dept=hr|sales", "region=cn"]) == {"dept": ["hr", "sales"], "region": ["cn"]}
    with pytest.raises(ScopeError):
        parse_label_options(["dept"])


def test_quote_infos_point_at_each_mark():
    text = "Refunds take seven days[1]. 病假十天[2]。Unknown [9] stays."
    infos = quote_infos(text, ["a", "b"])
    assert infos == [{"index": 1, "position": text.index("[1]")}, {"index": 2, "position": text.index("[2]")}]


def test_strip_quote_marks_positions_in_the_clean_text():
    clean, infos = strip_quote_marks("退款七天到账[1]。Leave is 15 days[2][1].", ["a", "b"])
    assert clean == "退款七天到账。Leave is 15 days."
    assert infos == [
        {"index": 1, "position": clean.index("。")},
        {"index": 2, "position": clean.index(".")},
        {"index": 1, "position": clean.index(".")},
    ]


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4, 1]])
    assert [key for key, _ in fused][:2] == [1, 3]
    assert {key for key, _ in fused} == {1, 2, 3, 4}


def test_tokenize_cuts_chinese_words_and_drops_stopwords():
    assert "退款" in tokenize("退款多久能到账？")
    assert query_terms("How do I reset the password?") == ["reset", "password"]


def test_usearch_and_exact_indexes_agree_on_a_small_set():
    import numpy as np

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keys = np.arange(1, 501)
    exact, approximate = ExactIndex(32), USearchIndex(32)
    exact.add(keys, vectors)
    approximate.add(keys, vectors)
    # HNSW is approximate (and random unclustered vectors are its hardest case): each indexed
    # vector must find itself first, and recall@5 against exact search must stay high.
    # Measured over repeated builds: recall@5 0.976-1.0, 48-50 of 50 finding themselves first.
    found = selves = 0
    for key, query in zip(keys[:50], vectors[:50]):
        approx_keys = approximate.search(query, 5)[0].tolist()
        selves += approx_keys[0] == key
        found += len(set(exact.search(query, 5)[0].tolist()) & set(approx_keys))
    assert selves >= 45 and found / (50 * 5) >= 0.9
    approximate.remove([int(keys[0])])
    assert int(keys[0]) not in approximate.search(vectors[0], 5)[0].tolist()


def test_fold_ignores_case_width_and_punctuation():
    assert fold("营业时间是什么时候？") == fold("营业时间 是什么时候")
    assert fold("When do you OPEN?") == fold("when do you open")


def test_qa_pairs_from_csv_with_chinese_headers():
    data = "问题,答案,相似问题,标签\n营业时间？,早九晚六,几点开门|几点关门,tier=vip\n".encode()
    (pair,) = table_pairs("qa.csv", data)
    assert (pair.question, pair.answer, pair.similar, pair.labels) == ("营业时间？", "早九晚六", ["几点开门", "几点关门"], {"tier": ["vip"]})


def test_qa_pairs_from_xlsx_without_a_header():
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(("How to pay?", "By card.", "Payment methods?"))
    buffer = io.BytesIO()
    workbook.save(buffer)
    (pair,) = table_pairs("qa.xlsx", buffer.getvalue())
    assert (pair.question, pair.answer, pair.similar) == ("How to pay?", "By card.", ["Payment methods?"])


def test_a_bad_import_row_is_named():
    with pytest.raises(QAError, match="row 3: answer"):
        table_pairs("qa.csv", b"question,answer\nA?,yes\nB?,\n")
    with pytest.raises(QAError, match="csv or .xlsx"):
        table_pairs("qa.json", b"{}")
