"""What the engine needs from a chat model, whatever serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from parley.config import ModelConfig


@dataclass(slots=True, frozen=True)
class ImagePart:
    """An image sent with a message to a model that reads images."""

    mime: str
    data: bytes


@dataclass(slots=True, frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str
    images: tuple[ImagePart, ...] = ()


@dataclass(slots=True, frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, frozen=True)
class ChatChunk:
    """A piece of a streamed answer: visible text, reasoning, or (last) the usage."""

    text: str = ""
    reasoning: str = ""
    usage: Usage | None = None


class ModelError(Exception):
    """The model could not answer. `kind` says how: the engine maps it to a protocol code."""

    def __init__(self, kind: Literal["timeout", "upstream", "dropped", "unavailable"], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ChatModel(Protocol):
    """A streaming chat model.

    `stream` yields chunks as they arrive. Closing the iterator early (the turn was
    stopped) must release the upstream call at once: close the HTTP stream, stop the
    local decoder.
    """

    config: ModelConfig

    def stream(self, messages: list[ChatMessage]) -> AsyncIterator[ChatChunk]: ...

    async def aclose(self) -> None: ...
