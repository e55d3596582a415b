"""Sensitive-content checks on questions and on answers as they stream.

Words and text are compared after normalisation: NFKC (full-width to half-width),
case folding, and dropping punctuation, spaces, symbols and invisible characters, so
that "Ｂ a-D" matches "bad". Matching uses an Aho-Corasick automaton (pyahocorasick)
over the global lists and the application's own words.

Global lists are text files, one word per line (`#` starts a comment); they are re-read
when they change, without a restart.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import ahocorasick

log = logging.getLogger(__name__)

_DROPPED = ("P", "Z", "S", "C")  # punctuation, separators, symbols, control and format characters


@lru_cache(maxsize=65536)
def normalize_char(ch: str) -> str:
    """What one character contributes to the normalised text ("" when it is dropped)."""
    folded = unicodedata.normalize("NFKC", ch).casefold()
    return "".join(c for c in folded if not unicodedata.category(c).startswith(_DROPPED))


def normalize(text: str) -> str:
    return "".join(normalize_char(ch) for ch in text)


@dataclass(frozen=True, slots=True)
class Hit:
    word: str
    """The listed word, as written in its list."""
    source: str
    """Which list: `global` or `app`."""


class WordMatcher:
    """Finds listed words in normalised text."""

    def __init__(self, words: dict[str, str]) -> None:
        """`words` maps each word to its source list."""
        self._automaton = ahocorasick.Automaton()
        self.longest = 0
        for word, source in words.items():
            key = normalize(word)
            if key:
                self._automaton.add_word(key, Hit(word, source))
                self.longest = max(self.longest, len(key))
        self.empty = self.longest == 0
        if not self.empty:
            self._automaton.make_automaton()

    def first(self, normalized: str, ends_after: int = 0) -> Hit | None:
        """The first hit ending at or after index `ends_after` of `normalized`."""
        if self.empty:
            return None
        for end, hit in self._automaton.iter(normalized):
            if end >= ends_after:
                return hit
        return None


class AnswerGuard:
    """Checks an answer as it streams and releases only text that cannot start a hit.

    A word can arrive split across chunks, so the last `longest - 1` normalised characters
    (and the original text they came from) are held back until more text shows whether they
    begin a listed word.
    """

    __slots__ = ("_matcher", "_keep", "_text", "_released", "_tail", "_tail_src")

    def __init__(self, matcher: WordMatcher) -> None:
        self._matcher = matcher
        self._keep = max(matcher.longest - 1, 0)
        self._text = ""  # original text received, from the first unreleased character on
        self._released = 0  # original characters released before _text starts
        self._tail = ""  # the last normalised characters...
        self._tail_src: list[int] = []  # ...and the original offset each came from

    def feed(self, text: str) -> tuple[str, Hit | None]:
        """Returns the text now safe to send, or the hit that forbids the answer."""
        if self._matcher.empty:
            return text, None
        base = self._released + len(self._text)
        self._text += text
        checked = len(self._tail)
        for offset, ch in enumerate(text):
            for c in normalize_char(ch):
                self._tail += c
                self._tail_src.append(base + offset)
        hit = self._matcher.first(self._tail, ends_after=checked)
        if hit is not None:
            return "", hit
        if len(self._tail) > self._keep:
            cut = len(self._tail) - self._keep
            release_to = self._tail_src[cut] if cut < len(self._tail_src) else base + len(text)
            self._tail, self._tail_src = self._tail[cut:], self._tail_src[cut:]
        else:
            release_to = self._released
        if self._keep == 0:
            release_to = base + len(text)
        safe = self._text[: release_to - self._released]
        self._text = self._text[release_to - self._released :]
        self._released = release_to
        return safe, None

    def check(self, text: str) -> Hit | None:
        """The first hit in a whole piece of text (a workflow's message, say), leaving the
        streamed answer's state alone."""
        return self._matcher.first(normalize(text))

    def flush(self) -> str:
        """The held-back text, when the answer ends without a hit."""
        rest, self._text = self._text, ""
        self._released += len(rest)
        self._tail, self._tail_src = "", []
        return rest


class Moderator(Protocol):
    """A sensitive-content check; the word lists below are the built-in one."""

    def check(self, app_words: tuple[str, ...], text: str) -> Hit | None: ...

    def guard(self, app_words: tuple[str, ...]) -> AnswerGuard: ...

    def global_words(self) -> list[str]: ...

    def replace_global_words(self, words: list[str]) -> None: ...


class WordListModerator:
    """Global word-list files plus each application's own words."""

    def __init__(self, files: list[Path], reload_interval: float = 1.0) -> None:
        self._files = files
        self._reload_interval = reload_interval
        self._checked_at = 0.0
        self._stamps: tuple[float | None, ...] = ()
        self._global: dict[str, str] = {}
        self._matchers: dict[tuple[str, ...], WordMatcher] = {}
        self._refresh(force=True)

    def check(self, app_words: tuple[str, ...], text: str) -> Hit | None:
        return self._matcher(app_words).first(normalize(text))

    def guard(self, app_words: tuple[str, ...]) -> AnswerGuard:
        return AnswerGuard(self._matcher(app_words))

    def global_words(self) -> list[str]:
        self._refresh()
        return sorted(self._global)

    def replace_global_words(self, words: list[str]) -> None:
        """Rewrites the first list file (the data directory's) and applies it at once."""
        write_words(self._files[0], words)
        self._refresh(force=True)

    def _matcher(self, app_words: tuple[str, ...]) -> WordMatcher:
        self._refresh()
        matcher = self._matchers.get(app_words)
        if matcher is None:
            words = dict(self._global)
            words.update((w, "app") for w in app_words)
            if len(self._matchers) > 256:  # applications' lists change with releases; keep the cache small
                self._matchers.clear()
            matcher = self._matchers[app_words] = WordMatcher(words)
        return matcher

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < self._reload_interval:
            return
        self._checked_at = now
        stamps = tuple(_mtime(path) for path in self._files)
        if stamps == self._stamps and not force:
            return
        self._stamps = stamps
        words: dict[str, str] = {}
        for path in self._files:
            for word in _read_words(path):
                words[word] = "global"
        if words != self._global or force:
            self._global = words
            self._matchers.clear()
            log.info("sensitive words loaded: %d global", len(words))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _read_words(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def write_words(path: Path, words: list[str]) -> None:
    """Replaces a word-list file atomically (the moderator picks it up on its next check)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(f"{w.strip()}\n" for w in words if w.strip()), encoding="utf-8")
    temporary.replace(path)
