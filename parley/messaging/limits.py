"""Call-frequency limits (IM's "N calls per second"), as token buckets.

The local limiter serves one instance; `parley.bus.redis_limits.RedisRateLimiter` implements
`RateLimiter` for several (and raises LimitsUnavailable when it cannot count).
"""

from __future__ import annotations

import time
from typing import Protocol


class RateLimiter(Protocol):
    async def allow(self, key: str, per_second: float) -> bool:
        """Takes one call from `key`'s allowance; False when it is used up."""


class LocalRateLimiter:
    """A bucket per key holding up to one second's allowance, refilled continuously."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def allow(self, key: str, per_second: float) -> bool:
        if per_second <= 0:
            return True
        now = self._clock()
        capacity = max(per_second, 1.0)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True
