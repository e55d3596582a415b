"""Live delivery of new and modified messages to the users subscribed to them.

The in-process fan-out below serves one Parley instance; a Redis one (pub/sub on a channel
per user) can implement the same `Delivery` protocol for several instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from parley.store.messaging import MessageRow

QUEUE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message as it now stands: newly `received`, or `modified` in place."""

    kind: Literal["received", "modified"]
    message: MessageRow


class Subscription(Protocol):
    async def next(self, timeout: float | None = None) -> Delivered | None:
        """The next delivery; None after `timeout` seconds without one. Raises Overflowed when it fell behind."""


class Overflowed(Exception):
    """The subscriber read too slowly and missed deliveries; it should resubscribe and read history."""


class Delivery(Protocol):
    def publish(self, sdkappid: int, user_id: str, delivered: Delivered) -> None: ...

    def subscribe(self, sdkappid: int, user_id: str) -> AbstractContextManager[Subscription]:
        """Deliveries to this user while the context is open."""


class _Queue:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Delivered] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    async def next(self, timeout: float | None = None) -> Delivered | None:
        if self.overflowed and self.queue.empty():
            raise Overflowed()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class LocalDelivery:
    def __init__(self) -> None:
        self._subscribers: dict[tuple[int, str], set[_Queue]] = {}

    def publish(self, sdkappid: int, user_id: str, delivered: Delivered) -> None:
        for subscriber in self._subscribers.get((sdkappid, user_id), ()):
            try:
                subscriber.queue.put_nowait(delivered)
            except asyncio.QueueFull:
                subscriber.overflowed = True

    @contextmanager
    def subscribe(self, sdkappid: int, user_id: str) -> Iterator[_Queue]:
        subscriber = _Queue()
        key = (sdkappid, user_id)
        self._subscribers.setdefault(key, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[key]
