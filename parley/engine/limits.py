"""Admission limits: slots (turns in progress, open streams) and rates.

The Local* implementations count within this process; the Redis ones (parley.bus.redis_limits)
fill the same interfaces for several instances. A limit that cannot be checked raises
LimitsUnavailable: the turn is refused, never admitted unchecked.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class LimitsUnavailable(Exception):
    """The shared counters cannot be reached (the bus is down): the caller must refuse, not admit."""


class ConcurrencyLimiter(Protocol):
    async def acquire(self, key: str, limit: int, timeout: float = 0.0) -> bool:
        """Takes one of `limit` slots, waiting in line up to `timeout` seconds; False if none came."""

    async def release(self, key: str) -> None:
        """Gives a slot back (to the first in line, if any)."""


class RateLimiter(Protocol):
    async def hit(self, key: str, per_minute: int) -> bool:
        """Counts one event; False when the key is over `per_minute`."""


class _Slots:
    __slots__ = ("used", "waiting")

    def __init__(self) -> None:
        self.used = 0
        self.waiting: deque[asyncio.Future[None]] = deque()


class LocalConcurrencyLimiter:
    """Slots per key, handed over first come, first served."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slots] = {}

    async def acquire(self, key: str, limit: int, timeout: float = 0.0) -> bool:
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = _Slots()
        if slots.used < limit and not slots.waiting:
            slots.used += 1
            return True
        if timeout <= 0:
            self._forget_if_idle(key, slots)
            return False
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slots.waiting.append(ticket)
        try:
            async with asyncio.timeout(timeout):
                await ticket
        except TimeoutError:
            pass  # a slot handed over as the wait ran out is still ours: see below
        except BaseException:
            # Cancelled (or failed) after a slot was handed over, possibly in the same loop step:
            # the caller will never release it, so it goes on to the next in line here.
            if ticket.done() and not ticket.cancelled():
                self._hand_over(key, slots)
            raise
        finally:
            if not ticket.done():
                ticket.cancel()
            try:
                slots.waiting.remove(ticket)
            except ValueError:
                pass
            self._forget_if_idle(key, slots)
        return not ticket.cancelled()

    async def release(self, key: str) -> None:
        slots = self._slots.get(key)
        if slots is not None:
            self._hand_over(key, slots)

    def _hand_over(self, key: str, slots: _Slots) -> None:
        """Passes a held slot to the first live waiter, or frees it. Never awaits, so that no
        cancellation can fall between taking the slot back and giving it on."""
        while slots.waiting:
            ticket = slots.waiting.popleft()
            if not ticket.done():
                ticket.set_result(None)  # the slot passes on; `used` stays the same
                return
        slots.used = max(slots.used - 1, 0)
        self._forget_if_idle(key, slots)

    def waiting(self, key: str) -> int:
        """How many are in line for `key` (tickets not yet given up)."""
        slots = self._slots.get(key)
        return sum(1 for ticket in slots.waiting if not ticket.done()) if slots else 0

    def in_use(self, key: str) -> int:
        slots = self._slots.get(key)
        return slots.used if slots else 0

    def _forget_if_idle(self, key: str, slots: _Slots) -> None:
        if slots.used == 0 and not slots.waiting and self._slots.get(key) is slots:
            del self._slots[key]


class LocalRateLimiter:
    """A token bucket per key: `per_minute` events, refilled evenly, bursts up to `per_minute`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    async def hit(self, key: str, per_minute: int) -> bool:
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - stamp) * per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        """Drops buckets idle for over a minute (they would be full again anyway)."""
        for key in [k for k, (_, stamp) in self._buckets.items() if now - stamp > 60.0]:
            del self._buckets[key]
