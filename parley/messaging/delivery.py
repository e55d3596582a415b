"""Live delivery of new and modified messages to the users subscribed to them.

Every delivery to a user gets an id, increasing in the order of that user's deliveries, and
each user's recent deliveries are kept for `window` seconds (at most `REPLAY_LIMIT` of them),
so that a subscriber that lost its connection can continue after the last id it read, with
nothing repeated and nothing missing (SSE's Last-Event-ID). A subscription starts at a
position (the id of the user's latest delivery, or a mark of the moment) that a client may
resume from even if nothing was delivered to it.

`LocalDelivery` serves one instance; `parley.messaging.redis_delivery.RedisDelivery` fills
the same protocol for several (a Redis stream per user, and a channel for the live fan-out).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from parley.store.messaging import MessageRow

QUEUE_LIMIT = 1024
REPLAY_LIMIT = 1000
"""At most this many of a user's latest deliveries are kept for resuming subscribers."""
RESUME_WINDOW = 300.0


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message as it now stands: newly `received`, or `modified` in place; `id` is the
    delivery's place in the user's deliveries (given by the delivery)."""

    kind: Literal["received", "modified"]
    message: MessageRow
    id: str = ""


class Subscription(Protocol):
    position: str
    """Where the subscription started: a client that reconnects with it misses nothing since."""
    resumed: bool
    """False when the subscriber asked to continue after an id whose successors are no longer
    all kept (or an id never given): it starts at `position` instead, and should read history."""

    async def next(self, timeout: float | None = None) -> Delivered | None:
        """The next delivery; None after `timeout` seconds without one. Raises Overflowed when it fell behind."""


class Overflowed(Exception):
    """The subscriber read too slowly and missed deliveries; it should resubscribe and read history."""


class Delivery(Protocol):
    async def publish(self, sdkappid: int, user_id: str, delivered: Delivered) -> None: ...

    def subscribe(self, sdkappid: int, user_id: str, after: str | None = None) -> AbstractAsyncContextManager[Subscription]:
        """Deliveries to this user while the context is open: those after the delivery `after`
        first (when still kept), then the new ones."""


class DeliveryQueue:
    """A subscriber's deliveries waiting to be read."""

    def __init__(self, position: str = "", resumed: bool = True) -> None:
        self.queue: asyncio.Queue[Delivered] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False
        self.position = position
        self.resumed = resumed

    def put(self, delivered: Delivered) -> None:
        try:
            self.queue.put_nowait(delivered)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self, timeout: float | None = None) -> Delivered | None:
        if self.overflowed and self.queue.empty():
            raise Overflowed()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class _UserLog:
    __slots__ = ("seq", "kept", "subscribers", "touched")

    def __init__(self, now: float) -> None:
        self.seq = 0  # the last delivery's number
        self.kept: deque[tuple[float, Delivered]] = deque(maxlen=REPLAY_LIMIT)
        self.subscribers: set[DeliveryQueue] = set()
        self.touched = now


class LocalDelivery:
    """Deliveries within this process. Ids are `<process>.<n>`: an id another process (or an
    earlier run) gave cannot be continued, and says so."""

    def __init__(self, window: float = RESUME_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._process = secrets.token_hex(4)
        self._users: OrderedDict[tuple[int, str], _UserLog] = OrderedDict()  # least recently touched first

    async def publish(self, sdkappid: int, user_id: str, delivered: Delivered) -> None:
        now = self._clock()
        log = self._log((sdkappid, user_id), now)
        log.seq += 1
        delivered = replace(delivered, id=f"{self._process}.{log.seq}")
        log.kept.append((now, delivered))
        for subscriber in log.subscribers:
            subscriber.put(delivered)
        self._forget_idle(now)

    @asynccontextmanager
    async def subscribe(self, sdkappid: int, user_id: str, after: str | None = None) -> AsyncIterator[DeliveryQueue]:
        now = self._clock()
        key = (sdkappid, user_id)
        log = self._log(key, now)
        subscriber = DeliveryQueue(f"{self._process}.{log.seq}")
        if after is not None:
            missed = self._since(log, after, now)
            if missed is None:
                subscriber.resumed = False
            else:
                for delivered in missed:
                    subscriber.put(delivered)
        log.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            log.subscribers.discard(subscriber)
            log.touched = self._clock()

    def _since(self, log: _UserLog, after: str, now: float) -> list[Delivered] | None:
        """The deliveries after `after`, or None when some of them are no longer kept."""
        process, _, number = after.partition(".")
        if process != self._process or not number.isdigit() or int(number) > log.seq:
            return None
        seq = int(number)
        self._drop_old(log, now)
        oldest_kept = log.seq - len(log.kept) + 1
        if seq + 1 < oldest_kept:
            return None
        return [delivered for _, delivered in list(log.kept)[seq + 1 - oldest_kept:]]

    def _log(self, key: tuple[int, str], now: float) -> _UserLog:
        log = self._users.get(key)
        if log is None:
            log = self._users[key] = _UserLog(now)
        else:
            self._users.move_to_end(key)
            log.touched = now
        return log

    def _drop_old(self, log: _UserLog, now: float) -> None:
        while log.kept and log.kept[0][0] < now - self._window:
            log.kept.popleft()

    def _forget_idle(self, now: float) -> None:
        """Forgets users untouched for the window with nobody subscribed (oldest first, so each
        call costs only what went idle since the last)."""
        while self._users:
            key, log = next(iter(self._users.items()))
            if log.touched >= now - self._window:
                return
            if log.subscribers:
                self._users.move_to_end(key)
                return
            del self._users[key]
