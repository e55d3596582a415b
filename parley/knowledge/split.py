"""Sections to segments: pieces small enough to embed and to quote, cut at natural breaks.

A segment is an exact slice of its section's text, so its character offsets point at the
right text of the document (offsets are into `ParsedDocument.text`). Breaks are tried in
order: paragraphs (lines), then sentences (Chinese and Western punctuation), then a hard
cut for text with no break at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from parley.knowledge.parse import ParsedDocument, Section

DEFAULT_MAX_CHARS = 600

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.:])(?=\s)")


@dataclass(frozen=True, slots=True)
class Segment:
    ordinal: int
    text: str
    start: int
    end: int
    page: int | None
    sheet: str | None
    headings: tuple[str, ...]

    @property
    def heading_path(self) -> str:
        return " > ".join(self.headings)


def _spans(text: str, max_chars: int) -> Iterator[tuple[int, int]]:
    """Non-empty (start, end) spans of `text`, each at most `max_chars`, cut at the best break."""
    position = 0
    for line in text.split("\n"):
        start, end = position, position + len(line)
        position = end + 1
        if not line.strip():
            continue
        if end - start <= max_chars:
            yield start, end
            continue
        cursor = start
        for match in _SENTENCE_END.finditer(line):
            cut = start + match.start()
            if cut <= cursor:
                continue
            yield from _hard(cursor, cut, max_chars)
            cursor = cut
        if cursor < end:
            yield from _hard(cursor, end, max_chars)


def _hard(start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    while end - start > max_chars:
        yield start, start + max_chars
        start += max_chars
    if end > start:
        yield start, end


def split_section(section: Section, max_chars: int) -> Iterator[tuple[int, int]]:
    """Packs the section's spans greedily into segments of at most `max_chars`."""
    text = section.text
    current: tuple[int, int] | None = None
    for start, end in _spans(text, max_chars):
        if not text[start:end].strip():
            continue
        if current is None:
            current = (start, end)
        elif end - current[0] <= max_chars:
            current = (current[0], end)
        else:
            yield current
            current = (start, end)
    if current is not None:
        yield current


def split_document(document: ParsedDocument, max_chars: int = DEFAULT_MAX_CHARS) -> list[Segment]:
    segments: list[Segment] = []
    for section in document.sections:
        for start, end in split_section(section, max_chars):
            raw = section.text[start:end]
            lead = len(raw) - len(raw.lstrip())
            stripped = raw.strip()
            if not stripped:
                continue
            begin = section.offset + start + lead
            segments.append(
                Segment(
                    ordinal=len(segments),
                    text=stripped,
                    start=begin,
                    end=begin + len(stripped),
                    page=section.page,
                    sheet=section.sheet,
                    headings=section.headings,
                )
            )
    return segments
