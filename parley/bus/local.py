"""In-process turn streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from parley.bus.base import UnknownTurn


class _Stream:
    __slots__ = ("events", "ended", "waiter")

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.ended = False
        self.waiter: asyncio.Event | None = None  # made only when a subscriber has to wait


class LocalBus:
    def __init__(self, retention: float = 120.0) -> None:
        self._streams: dict[int, _Stream] = {}
        self._retention = retention
        self._expiry: dict[int, asyncio.TimerHandle] = {}

    def open(self, turn_id: int) -> None:
        self._streams[turn_id] = _Stream()

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
        loop = asyncio.get_running_loop()
        self._expiry[turn_id] = loop.call_later(self._retention, self._expire, turn_id)

    async def subscribe(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        async for batch in self.subscribe_batches(turn_id, offset, idle):
            if batch is None:
                yield None
            else:
                for event in batch:
                    yield event

    async def subscribe_batches(
        self, turn_id: int, offset: int = 0, idle: float | None = None
    ) -> AsyncIterator[list[Any] | None]:
        stream = self._streams.get(turn_id)
        if stream is None:
            raise UnknownTurn(turn_id)
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
            waiter = stream.waiter
            if waiter is None:
                waiter = stream.waiter = asyncio.Event()
            if idle is None:
                await waiter.wait()
                continue
            try:
                async with asyncio.timeout(idle):
                    await waiter.wait()
            except TimeoutError:
                yield None

    def is_open(self, turn_id: int) -> bool:
        return turn_id in self._streams

    async def aclose(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._streams.clear()

    @staticmethod
    def _wake(stream: _Stream) -> None:
        if stream.waiter is not None:
            stream.waiter.set()
            stream.waiter = None

    def _expire(self, turn_id: int) -> None:
        self._expiry.pop(turn_id, None)
        self._streams.pop(turn_id, None)
