from hypothesis import given
from hypothesis import strategies as st

from parley.models.thinking import ThinkTagSplitter


def split_at(text, cuts):
    points = sorted({min(c, len(text)) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(text[last:p])
        last = p
    pieces.append(text[last:])
    return [p for p in pieces if p]


def run(pieces):
    splitter = ThinkTagSplitter()
    reasoning, answer = "", ""
    for piece in pieces:
        r, a = splitter.feed(piece)
        reasoning, answer = reasoning + r, answer + a
    r, a = splitter.flush()
    return reasoning + r, answer + a


safe_text = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40)


@given(thought=safe_text, answer=safe_text, cuts=st.lists(st.integers(0, 120), max_size=12))
def test_a_think_block_is_separated_however_the_stream_is_cut(thought, answer, cuts):
    text = f"<think>{thought}</think>\n{answer}"
    # Models put one or two line breaks after </think>; all of them go, so an answer cannot
    # begin with a line break of its own.
    assert run(split_at(text, cuts)) == (thought, answer.lstrip("\n"))


@given(answer=safe_text, cuts=st.lists(st.integers(0, 60), max_size=8))
def test_text_without_a_leading_think_block_passes_through(answer, cuts):
    text = "The answer: " + answer + " <think>not reasoning</think>"
    assert run(split_at(text, cuts)) == ("", text)


def test_an_unclosed_think_block_is_all_reasoning():
    assert run(["<thi", "nk>still going"]) == ("still going", "")


def test_a_lone_angle_bracket_is_not_swallowed():
    assert run(["<", "b>bold</b>"]) == ("", "<b>bold</b>")
