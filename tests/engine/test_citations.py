from hypothesis import given
from hypothesis import strategies as st

from parley.engine.citations import CitationMarks


def run(chunks, sources=3):
    marks = CitationMarks(sources)
    text = "".join(marks.feed(c) for c in chunks) + marks.flush()
    return text, marks.quotes


def test_marks_are_removed_and_their_positions_kept():
    text, quotes = run(["Paris is the capital[1]. It is lar", "ge【2】 and old[", "3]."])
    assert text == "Paris is the capital. It is large and old."
    assert quotes == [{"index": 1, "position": 20}, {"index": 2, "position": 33}, {"index": 3, "position": 41}]


def test_brackets_that_are_not_citations_stay():
    text, quotes = run(["see [7] and [x] and [", "2 items"])
    assert text == "see [7] and [x] and [2 items" and quotes == []


@given(st.lists(st.sampled_from(["The ", "answer", "[1]", "[2]", "【3】", " is ", "[", "1", "]", "42", "."]), max_size=30),
       st.lists(st.integers(0, 200), max_size=10))
def test_any_chunking_gives_the_same_result(pieces, cuts):
    whole = "".join(pieces)
    points = sorted({min(c, len(whole)) for c in cuts})
    chunks, last = [], 0
    for p in points + [len(whole)]:
        chunks.append(whole[last:p])
        last = p
    assert run(chunks) == run([whole])
    text, quotes = run([whole])
    assert all(0 <= q["position"] <= len(text) for q in quotes)
