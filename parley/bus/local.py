"""In-process turn streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from parley.bus.base import UnknownTurn, flatten


_IDLE = object()


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_IDLE)


def _discard(waiters: list[asyncio.Future[None]], waiter: asyncio.Future[None]) -> None:
    try:
        waiters.remove(waiter)
    except ValueError:
        pass


class _Stream:
    __slots__ = ("events", "ended", "waiters", "subscribers", "header", "kept", "compacted")

    def __init__(self, header: Any) -> None:
        self.events: list[Any] = []
        self.header = header
        self.kept = False  # a subscriber left early: no compaction, offsets stay valid
        self.compacted = False
        self.ended = False
        self.waiters: list[asyncio.Future[None]] = []  # subscribers waiting for the next event
        self.subscribers = 0


class LocalBus:
    """Turn streams in this process's memory.

    A finished stream is kept for `retention` seconds for late subscribers; once nobody is
    reading it, `compact` (if given) shrinks its event list, so that offsets into a finished
    stream are not kept: a late subscriber reads it from the start. A stream that a subscriber
    left before its end (`keep`) is not compacted, so that the subscriber can resume it.
    """

    shared = False

    def __init__(self, retention: float = 120.0, compact: Callable[[list[Any]], list[Any]] | None = None) -> None:
        self._streams: dict[int, _Stream] = {}
        self._retention = retention
        self._compact = compact
        self._expiry: dict[int, asyncio.TimerHandle] = {}

    def open(self, turn_id: int, header: Any = None) -> None:
        self._streams[turn_id] = _Stream(header)

    def publish(self, turn_id: int, event: Any) -> int:
        stream = self._streams[turn_id]
        stream.events.append(event)
        self._wake(stream)
        return len(stream.events) - 1

    def end(self, turn_id: int) -> None:
        stream = self._streams.get(turn_id)
        if stream is None or stream.ended:
            return
        stream.ended = True
        self._wake(stream)
        if stream.subscribers == 0:
            self._settle(stream)
        loop = asyncio.get_running_loop()
        self._expiry[turn_id] = loop.call_later(self._retention, self._expire, turn_id)

    def subscribe(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        return flatten(self.subscribe_batches(turn_id, offset, idle))

    async def subscribe_batches(
        self, turn_id: int, offset: int = 0, idle: float | None = None
    ) -> AsyncIterator[list[Any] | None]:
        stream = self._streams.get(turn_id)
        if stream is None:
            raise UnknownTurn(turn_id)
        loop = asyncio.get_running_loop()
        stream.subscribers += 1
        try:
            while True:
                events = stream.events
                if offset < len(events):
                    batch = events[offset:]
                    offset = len(events)
                    yield batch
                if stream.ended and offset >= len(stream.events):
                    return
                if offset < len(stream.events):
                    continue
                # A bare future and one timer per wait: this runs for every packet of every
                # stream, where an asyncio.Event and asyncio.timeout cost several times as much.
                waiter: asyncio.Future[None] = loop.create_future()
                stream.waiters.append(waiter)
                timer = loop.call_later(idle, _time_out, waiter) if idle is not None else None
                try:
                    await waiter
                finally:
                    if timer is not None:
                        timer.cancel()
                    if not waiter.done() or waiter.cancelled() or waiter.result() is _IDLE:
                        _discard(stream.waiters, waiter)  # timed out, or the subscriber went away
                if waiter.result() is _IDLE:
                    yield None
        finally:
            stream.subscribers -= 1
            if stream.ended and stream.subscribers == 0:
                self._settle(stream)

    def keep(self, turn_id: int) -> None:
        stream = self._streams.get(turn_id)
        if stream is not None:
            stream.kept = True

    async def replay_header(self, turn_id: int) -> Any:
        stream = self._streams.get(turn_id)
        if stream is None or stream.compacted:
            raise UnknownTurn(turn_id)
        return stream.header

    def is_open(self, turn_id: int) -> bool:
        return turn_id in self._streams

    def on_stop(self, handler: Callable[[int], None]) -> None:
        """Nothing reaches this process from elsewhere: the engine stops its own turns."""

    async def stop(self, turn_id: int) -> bool:
        return False  # every turn of this bus runs in this process, whose engine looked first

    async def orphans(self, turn_ids: list[int]) -> list[int]:
        return []  # nothing outlives this process but the database (closed at start-up)

    async def close_orphan(self, turn_id: int, events: list[Any]) -> bool:
        return False

    async def aclose(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._streams.clear()

    def _settle(self, stream: _Stream) -> None:
        if self._compact is not None and not stream.kept and not stream.compacted:
            stream.events = self._compact(stream.events)
            stream.compacted = True

    @staticmethod
    def _wake(stream: _Stream) -> None:
        if stream.waiters:
            for waiter in stream.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            stream.waiters.clear()

    def _expire(self, turn_id: int) -> None:
        self._expiry.pop(turn_id, None)
        self._streams.pop(turn_id, None)
