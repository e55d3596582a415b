"""The bus interface."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, Protocol


class UnknownTurn(KeyError):
    """No stream for that turn: never opened, or expired after it ended."""


async def flatten(batches: AsyncIterator[list[Any] | None]) -> AsyncIterator[Any]:
    """`subscribe` from `subscribe_batches`: each event on its own (None stays a tick)."""
    async with aclosing(batches):
        async for batch in batches:
            if batch is None:
                yield None
            else:
                for event in batch:
                    yield event


class Codec(Protocol):
    """Turns what a bus carries into bytes and back, for a bus shared by several processes
    (the engine provides it: parley/engine/codec.py)."""

    def encode_event(self, event: Any) -> bytes: ...
    def decode_event(self, data: bytes) -> Any: ...
    def encode_header(self, header: Any) -> bytes: ...
    def decode_header(self, data: bytes) -> Any: ...


class Bus(Protocol):
    shared: bool
    """Whether other processes see this bus (their turns, their stops)."""

    def open(self, turn_id: int, header: Any = None) -> None:
        """Creates the turn's stream; events published before a subscriber arrives are kept.

        `header` is kept with the stream: what a resuming subscriber needs to know of the turn."""

    def publish(self, turn_id: int, event: Any) -> int:
        """Appends an event; returns its offset."""

    def end(self, turn_id: int) -> None:
        """Marks the stream complete; it expires after the retention period."""

    def subscribe(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        """Yields events from `offset` on until the stream ends.

        With `idle` set, yields None after that many seconds without an event, so that
        a face can send a keep-alive.
        """

    def subscribe_batches(
        self, turn_id: int, offset: int = 0, idle: float | None = None
    ) -> AsyncIterator[list[Any] | None]:
        """Like subscribe, but yields every event already waiting as one list, so that a face
        under load can write them in one go."""

    def keep(self, turn_id: int) -> None:
        """Keeps the stream's events as published until it expires: a subscriber left before
        the end and may resume by offset (see `replay_header`)."""

    async def replay_header(self, turn_id: int) -> Any:
        """The stream's header while its events are kept as published, so that replaying them
        renders the same events again. Raises UnknownTurn when the stream expired or was
        compacted after everyone had read it to its end."""

    def on_stop(self, handler: Callable[[int], None]) -> None:
        """`handler(turn_id)` is called when a stop for a turn reaches this process (see `stop`)."""

    async def stop(self, turn_id: int) -> bool:
        """Asks whichever process runs the turn to stop it; False when no process holds it
        (finished, never started, or its holder died)."""

    async def orphans(self, turn_ids: list[int]) -> list[int]:
        """Those of `turn_ids` that no live process holds: their holder's lease expired."""

    async def close_orphan(self, turn_id: int, events: list[Any]) -> bool:
        """Ends the stream of a turn whose holder died with `events` after those it published;
        False when the stream had already ended."""

    async def aclose(self) -> None: ...
