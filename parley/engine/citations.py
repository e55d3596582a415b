"""Taking the model's citation marks ([1], 【2】) out of a streamed answer.

ADP clients place their own citation markers at `quote_infos` positions, so the marks
must not stay in the text. A mark can arrive split across chunks ("[1" then "2]"), so a
possible mark at the end of a chunk is held back until the next chunk settles it.
"""

from __future__ import annotations

import re

_MARK = re.compile(r"\[(\d{1,3})\]|【(\d{1,3})】")
_PARTIAL = re.compile(r"(?:\[|【)\d{0,3}$")


class CitationMarks:
    """Feed text chunks; get them back without valid marks. `quotes` says where each stood."""

    __slots__ = ("_sources", "_held", "_length", "quotes")

    def __init__(self, sources: int) -> None:
        self._sources = sources  # marks outside 1..sources are not citations and stay
        self._held = ""
        self._length = 0  # characters given back so far
        self.quotes: list[dict[str, int]] = []

    def feed(self, text: str) -> str:
        buffer = self._held + text
        self._held = ""
        partial = _PARTIAL.search(buffer)
        if partial is not None:
            self._held = buffer[partial.start():]
            buffer = buffer[: partial.start()]
        pieces = []
        cursor = 0
        for match in _MARK.finditer(buffer):
            number = int(match.group(1) or match.group(2))
            if not 1 <= number <= self._sources:
                continue
            piece = buffer[cursor : match.start()]
            pieces.append(piece)
            self._length += len(piece)
            self.quotes.append({"index": number, "position": self._length})
            cursor = match.end()
        rest = buffer[cursor:]
        pieces.append(rest)
        self._length += len(rest)
        return "".join(pieces)

    def flush(self) -> str:
        """What is still held back when the answer ends (an unfinished mark is plain text)."""
        held, self._held = self._held, ""
        self._length += len(held)
        return held
