"""What the instances of one deployment share through the bus (Redis), or, without a bus, this
process's own stand-ins: admission limits, one-time tokens, the signature ledger, IM delivery
and IM state, and the announcements that keep every instance's caches fresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import redis.asyncio

from parley.bus.invalidation import RedisInvalidations
from parley.bus.redis_limits import RedisConcurrencyLimiter, RedisRateLimiter
from parley.bus.signatures import LocalSignatureLedger, RedisSignatureLedger, SignatureLedger
from parley.bus.tokens import LocalTokenStore, RedisTokenStore, TokenStore
from parley.config import Settings
from parley.engine.apps import ApplicationService
from parley.engine.limits import ConcurrencyLimiter, LocalConcurrencyLimiter, LocalRateLimiter, RateLimiter
from parley.messaging import limits as call_limits
from parley.messaging.delivery import Delivery, LocalDelivery
from parley.messaging.redis_delivery import RedisDelivery
from parley.messaging.shared import LocalState, RedisState, SharedState


@dataclass(slots=True)
class Shared:
    limiter: ConcurrencyLimiter
    rates: RateLimiter
    call_rates: call_limits.RateLimiter
    """IM's calls per second."""
    tokens: TokenStore
    signatures: SignatureLedger
    delivery: Delivery
    im_state: SharedState
    invalidations: RedisInvalidations | None = None

    def share_changes(self, apps: ApplicationService) -> None:
        """A publish or delete on any instance makes every instance's release caches forget."""
        if self.invalidations is None:
            return  # one process: its own changes reach its caches directly
        invalidations = self.invalidations
        apps.share_changes(lambda: invalidations.announce("apps"))
        invalidations.on("apps", lambda _key: apps.forget_cached())


@asynccontextmanager
async def open_shared(settings: Settings, client: redis.asyncio.Redis | None) -> AsyncIterator[Shared]:
    """This process's stand-ins, or with `client` (the bus's Redis, bus/connect.py) the shared ones."""
    if client is None:
        yield Shared(
            LocalConcurrencyLimiter(), LocalRateLimiter(), call_limits.LocalRateLimiter(), LocalTokenStore(),
            LocalSignatureLedger(), LocalDelivery(settings.im.resume_window), LocalState(),
        )
        return
    async with AsyncExitStack() as stack:
        limiter = RedisConcurrencyLimiter(client, lease=settings.bus_lease)
        stack.push_async_callback(limiter.aclose)
        rates = RedisRateLimiter(client)
        delivery = RedisDelivery(client, settings.im.resume_window)
        await delivery.start()
        stack.push_async_callback(delivery.aclose)
        invalidations = RedisInvalidations(client)
        await invalidations.start()
        stack.push_async_callback(invalidations.aclose)
        yield Shared(
            limiter, rates, rates, RedisTokenStore(client), RedisSignatureLedger(client), delivery,
            RedisState(client), invalidations,
        )
