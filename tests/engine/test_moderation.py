from hypothesis import given, settings
from hypothesis import strategies as st

from parley.engine.moderation import AnswerGuard, WordListModerator, WordMatcher, normalize, write_words


def test_normalisation_folds_width_case_and_dropped_characters():
    assert normalize("ＢＡＤ  Word!") == "badword"
    assert normalize("坏 · 词") == "坏词"
    assert normalize("b\u200bad") == "bad"  # a zero-width space slipped in


def test_words_are_found_however_they_are_disguised():
    matcher = WordMatcher({"bad word": "global", "违禁品": "app"})
    for text in ("a BAD-word here", "Ｂａｄ　ｗｏｒｄ", "b.a.d w o r d", "买违 禁 品吗"):
        assert matcher.first(normalize(text)) is not None, text
    assert matcher.first(normalize("a badge worded well")) is None


def guarded(words, chunks):
    guard = AnswerGuard(WordMatcher({w: "app" for w in words}))
    sent = ""
    for chunk in chunks:
        safe, hit = guard.feed(chunk)
        sent += safe
        if hit:
            return sent, hit
    return sent + guard.flush(), None


def cut(text, points):
    points = sorted({min(p, len(text)) for p in points})
    pieces, last = [], 0
    for p in points + [len(text)]:
        pieces.append(text[last:p])
        last = p
    return [p for p in pieces if p]


clean = st.text(alphabet="abcdefghij klm,.", max_size=60)


@settings(max_examples=300, deadline=None)
@given(before=clean, after=clean, points=st.lists(st.integers(0, 140), max_size=15))
def test_a_word_split_across_chunks_is_caught_and_never_sent(before, after, points):
    text = before + " forbidden " + after
    sent, hit = guarded(["forbidden"], cut(text, points))
    assert hit is not None and hit.word == "forbidden"
    assert "forbidden" not in normalize(sent)  # not even the whole word's letters went out


@settings(max_examples=300, deadline=None)
@given(text=clean, points=st.lists(st.integers(0, 70), max_size=15))
def test_clean_text_passes_through_unchanged(text, points):
    sent, hit = guarded(["forbidden", "zz"], cut(text, points))
    assert hit is None and sent == text


def test_lists_reload_when_their_file_changes(tmp_path):
    path = tmp_path / "words.txt"
    write_words(path, ["alpha"])
    moderator = WordListModerator([path], reload_interval=0)
    assert moderator.check((), "ALPHA!") and not moderator.check((), "beta")
    write_words(path, ["# a comment", "beta"])
    assert moderator.check((), "b e t a") and not moderator.check((), "alpha")
    assert moderator.check(("gamma",), "Gamma").source == "app"
