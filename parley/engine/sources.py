"""What the engine needs from the services that feed a turn: attached documents, the
knowledge base, online search and the question's images. Small interfaces, so the engine never depends on how they are stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class AttachedDocument(Protocol):
    file_name: str
    text: str


class DocumentSource(Protocol):
    """Real-time documents a visitor attaches to a question (ADP file_infos)."""

    async def for_turn(
        self, app_id: int, session_id: str, file_infos: list[dict[str, Any]]
    ) -> Sequence[AttachedDocument]:
        """The parsed documents; raises ValueError (or a subclass) naming what is wrong."""


class KnowledgeSource(Protocol):
    """An application's knowledge base, asked once per turn."""

    def scope(self, custom_variables: Mapping[str, Any] | None, visitor_labels: Any, settings: Any) -> Any:
        """The request's retrieval scope; raises ValueError (or a subclass) for malformed labels."""

    async def has_knowledge(self, app_id: int) -> bool:
        """Whether there is anything to consult (cheap: it is asked on every turn)."""

    async def resolve(self, app_id: int, question: str, scope: Any, settings: Any) -> Any:
        """A resolution: `kind` ("qa", "passages" or "nothing"), `qa` (with `answer`),
        `unknown`, `elapsed_ms`, `input_tokens`, `instructions()`, `references()`,
        `knowledge()` (see parley.knowledge.service.Resolution)."""


class SearchSource(Protocol):
    """Online search (parley.search.service.WebSearch), asked once per turn when search is on."""

    async def search(self, provider: str | None, query: str, count: int) -> Any:
        """An outcome that never raises: `results`, `elapsed_ms`, `error`, `note`,
        `numbered(first)`, `instructions()`, `references()` (see parley.search.service.SearchOutcome)."""


class FetchedImage(Protocol):
    mime: str
    data: bytes


class ImageSource(Protocol):
    """The images of a question (parley.knowledge.images.ImageFetcher)."""

    async def fetch_all(self, app_id: int, urls: Sequence[str]) -> Sequence[FetchedImage]:
        """The images' bytes and types, in order; raises ValueError (or a subclass) naming what
        is wrong with the first that cannot be read."""
