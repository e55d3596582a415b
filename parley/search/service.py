"""The search service the engine asks once per turn when search is on.

It never raises: a provider that fails, times out or finds nothing gives an outcome that
says so, and the turn goes on without search.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from parley.search.base import SearchError, SearchResult
from parley.search.registry import SearchRegistry

log = logging.getLogger(__name__)

WEB_TYPE = 4
"""ADP's reference type for an online search result."""

INSTRUCTIONS = (
    "Web search results for the question follow. Each starts with its number in brackets; after "
    "a sentence that uses a result, cite it with that number, like [{first}]. Prefer them to what "
    "you remember when they differ, and say so when they do not answer the question."
)


@dataclass(slots=True, frozen=True)
class SearchOutcome:
    provider: str
    results: tuple[SearchResult, ...] = ()
    first_number: int = 1
    """The [n] of the first result: search results are numbered after the knowledge passages."""
    elapsed_ms: int = 0
    error: str = ""
    """Why there are no results when the provider failed (empty when it answered)."""

    @property
    def note(self) -> str:
        """What the search_engine procedure says."""
        if self.error:
            return f"search failed, answered without it: {self.error}"
        if not self.results:
            return "search found nothing, answered without it"
        return f"{len(self.results)} results from {self.provider}"

    def numbered(self, first_number: int) -> SearchOutcome:
        return SearchOutcome(self.provider, self.results, first_number, self.elapsed_ms, self.error)

    def instructions(self) -> str:
        """A system-prompt addition with the numbered results (empty without results)."""
        if not self.results:
            return ""
        blocks = [
            f"[{n}] {r.title} ({r.url})" + (f"\n{r.snippet}" if r.snippet else "")
            for n, r in enumerate(self.results, self.first_number)
        ]
        return INSTRUCTIONS.format(first=self.first_number) + "\n\n" + "\n\n".join(blocks)

    def references(self) -> list[dict[str, Any]]:
        """The `reference` event's items: type 4, `id` the result's number, as ADP shows them."""
        return [
            {"id": str(n), "type": WEB_TYPE, "url": r.url, "name": r.title,
             "doc_id": "0", "doc_biz_id": "0", "doc_name": "", "qa_biz_id": "0"}
            for n, r in enumerate(self.results, self.first_number)
        ]


class WebSearch:
    def __init__(self, registry: SearchRegistry) -> None:
        self.registry = registry

    def knows(self, provider: str | None) -> bool:
        name = provider or self.registry.default_name
        return name is not None and self.registry.config(name) is not None

    async def search(self, provider: str | None, query: str, count: int) -> SearchOutcome:
        name = provider or self.registry.default_name
        config = self.registry.config(name) if name else None
        if config is None:
            return SearchOutcome(name or "", error="no search provider is configured" if not name else f"no search provider named {name!r}")
        started = time.monotonic()
        try:
            async with asyncio.timeout(config.timeout):
                results = await self.registry.get(config.name).search(query, count)
        except TimeoutError:
            error = f"{config.name} sent nothing within {config.timeout:g} s"
        except SearchError as exc:
            error = str(exc)
        except Exception as exc:  # a plugin's bug must not fail the turn
            log.exception("search provider %s failed", config.name)
            error = f"{config.name} failed: {type(exc).__name__}"
        else:
            elapsed = int((time.monotonic() - started) * 1000)
            return SearchOutcome(config.name, tuple(results[:count]), elapsed_ms=elapsed)
        log.warning("search: %s", error)
        return SearchOutcome(config.name, elapsed_ms=int((time.monotonic() - started) * 1000), error=error)

    async def aclose(self) -> None:
        await self.registry.aclose()
