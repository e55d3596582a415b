"""What an online search provider gives the engine: titled links with a snippet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True, frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str = ""


class SearchError(Exception):
    """The provider could not answer (unreachable, an HTTP error, a malformed answer)."""


class SearchProvider(Protocol):
    """One search backend. `search` returns at most `count` results, best first; it raises
    SearchError when the backend fails (the caller enforces the overall time limit)."""

    async def search(self, query: str, count: int) -> list[SearchResult]: ...

    async def aclose(self) -> None: ...
