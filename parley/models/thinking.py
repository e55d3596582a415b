"""Separating a leading `<think>...</think>` block from the answer in a text stream.

Local and some hosted models (Qwen, DeepSeek-R1 distills behind plain servers) put their
reasoning in the text itself. The tags can arrive split across chunks, so the splitter
holds back the few characters that could still turn out to be a tag.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class ThinkTagSplitter:
    """Feed text chunks; get back (reasoning, answer) pieces."""

    __slots__ = ("_state", "_held")

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> closed -> answer
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "answer":
            return "", text
        if self._state == "closed":  # drop the line break that follows </think>
            text = text.lstrip("\n")
            if text:
                self._state = "answer"
            return "", text
        buffer = self._held + text
        self._held = ""
        if self._state == "start":
            stripped = buffer.lstrip()
            if stripped.startswith(OPEN):
                self._state = "thinking"
                buffer = stripped[len(OPEN):]
            elif OPEN.startswith(stripped):
                self._held = buffer  # could still become "<think>"
                return "", ""
            else:
                self._state = "answer"
                return "", buffer
        end = buffer.find(CLOSE)
        if end >= 0:
            self._state = "closed"
            return buffer[:end], self.feed(buffer[end + len(CLOSE):])[1]
        keep = _partial_suffix(buffer, CLOSE)
        if keep:
            self._held = buffer[-keep:]
            buffer = buffer[:-keep]
        return buffer, ""

    def flush(self) -> tuple[str, str]:
        """What is still held back when the stream ends."""
        held, self._held = self._held, ""
        if self._state == "thinking":
            return held, ""
        return "", held


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
