"""Admission limits shared by every instance, in Redis: slots as leases, rates as token buckets.

A slot is a member of a sorted set per key, scored by the time its lease runs out. Its holder
renews the lease while it holds the slot (a heartbeat every third of the lease), so a slot of
an instance that died is free again once its lease has run out: a crash never leaks a slot.
Those waiting for a slot stand in line in a second sorted set (by arrival), with leases of
their own in a third, so that an instance that dies while waiting leaves the line too; a
release announces itself on a channel, which wakes the waiters of every instance (and each
also looks again every `poll` seconds, in case an announcement was missed or a lease ran out).

Every check is one Lua script, so it is atomic on the server, and times are the server's
clock (TIME), except the token buckets', which take the caller's wall clock (so that tests
can drive it). Any failure to reach Redis raises LimitsUnavailable: the turn is refused.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from parley.bus.channel import ChannelListener
from parley.engine.limits import LimitsUnavailable

log = logging.getLogger(__name__)

PREFIX = "parley:limits:"
FREED_CHANNEL = PREFIX + "freed"

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

# KEYS: slots, line, line leases, arrival counter. ARGV: token, limit, lease ms, wait (0/1).
# Drops run-out leases, then takes a slot if one is free for this token: it is first in line
# among as many as there are free slots (a newcomer counts everyone in line ahead of it).
# Otherwise, when it may wait, it stands in line (once) with a lease of its own.
_ACQUIRE = _NOW + """
local slots, line, alive, arrivals = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, limit, lease, wait = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', alive, '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('ZREM', line, unpack(gone))
  redis.call('ZREM', alive, unpack(gone))
end
local free = limit - redis.call('ZCARD', slots)
if free > 0 then
  local ahead = redis.call('ZRANK', line, token) or redis.call('ZCARD', line)
  if ahead < free then
    redis.call('ZADD', slots, now + lease, token)
    redis.call('PEXPIRE', slots, lease * 2)
    redis.call('ZREM', line, token)
    redis.call('ZREM', alive, token)
    return 1
  end
end
if wait then
  if not redis.call('ZSCORE', line, token) then
    redis.call('ZADD', line, redis.call('INCR', arrivals), token)
  end
  redis.call('ZADD', alive, now + lease, token)
  for _, key in ipairs({line, alive, arrivals}) do redis.call('PEXPIRE', key, lease * 2) end
end
return 0
"""

# KEYS: slots, line, line leases. ARGV: token, channel, key. Gives the slot (or place in line)
# up and, when someone else is in line (who may now be first), announces it.
_RELEASE = """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
local queued = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if held + queued > 0 and redis.call('ZCARD', KEYS[2]) > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return held
"""

# KEYS: a lease set. ARGV: lease ms, tokens... Renews the leases still there (XX: a lease that
# already ran out is not brought back).
_RENEW = _NOW + """
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 0
"""

# KEYS: the bucket. ARGV: capacity, refill per second, now (s). One token per call.
_TAKE = """
local capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local kept = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(kept[1]) or capacity, tonumber(kept[2]) or now
if now > stamp then
  tokens = math.min(capacity, tokens + (now - stamp) * rate)
  stamp = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(stamp))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return allowed
"""


def _keys(key: str) -> list[str]:
    return [f"{PREFIX}slots:{key}", f"{PREFIX}line:{key}", f"{PREFIX}alive:{key}", f"{PREFIX}arrivals:{key}"]


class RedisConcurrencyLimiter:
    """Slots per key shared by every instance on the same Redis; see the module's docstring."""

    def __init__(self, client: redis.asyncio.Redis, lease: float = 15.0, poll: float = 0.25) -> None:
        self._redis = client
        self._lease_ms = int(lease * 1000)
        self._poll = poll
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, list[str]] = {}  # key -> tokens of slots this process holds
        self._in_line: dict[str, set[str]] = {}  # key -> tokens of this process's waiters
        self._wakeups: dict[str, set[asyncio.Future[None]]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._freed = ChannelListener(client, FREED_CHANNEL, self._wake, retry=poll)  # waiters also poll

    async def acquire(self, key: str, limit: int, timeout: float = 0.0) -> bool:
        self._start()
        token = secrets.token_hex(8)
        keys = _keys(key)
        deadline = time.monotonic() + timeout
        waiting = timeout > 0
        try:
            while True:
                try:
                    got = await self._acquire(keys=keys, args=[token, limit, self._lease_ms, int(waiting)])
                except (RedisError, OSError) as exc:
                    raise LimitsUnavailable(f"the shared limits cannot be reached: {exc}") from exc
                if got:
                    self._held.setdefault(key, []).append(token)  # no await since the answer: never lost
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._in_line.setdefault(key, set()).add(token)
                await self._wait_for_release(key, min(self._poll, remaining))
        except BaseException as exc:
            self._discard_in_line(key, token)
            # A slot may have been granted as we were cancelled (or as the answer was lost).
            self._clean_up(key, token, quiet=isinstance(exc, LimitsUnavailable))
            raise
        self._discard_in_line(key, token)
        if waiting:
            self._clean_up(key, token)
        return False

    async def release(self, key: str) -> None:
        tokens = self._held.get(key)
        if not tokens:
            return
        token = tokens.pop()
        if not tokens:
            del self._held[key]
        await asyncio.shield(self._clean_up(key, token))  # given back even if the caller is cancelled

    async def in_use(self, key: str) -> int:
        """Slots of `key` held by any instance (leases not yet run out)."""
        await self._settled()
        slots = _keys(key)[0]
        return await self._redis.zcount(slots, f"({await self._server_ms()}", "+inf")

    async def waiting(self, key: str) -> int:
        """How many of any instance stand in line for `key`."""
        await self._settled()
        return await self._redis.zcard(_keys(key)[1])

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self._freed.aclose()
        await self._settled()
        held = [(key, token) for key, tokens in self._held.items() for token in tokens]
        self._held.clear()
        for key, token in held:  # another instance may take them at once
            try:
                await self._release(keys=_keys(key)[:3], args=[token, FREED_CHANNEL, key])
            except (RedisError, OSError):
                break

    # --- waiting ---------------------------------------------------------------------------

    async def _wait_for_release(self, key: str, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._wakeups.setdefault(key, set())
        waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            waiters.discard(waiter)
            if not waiters and self._wakeups.get(key) is waiters:
                del self._wakeups[key]

    def _wake(self, key: bytes | str) -> None:
        """Wakes this process's waiters for `key`: some instance gave a slot back."""
        for waiter in self._wakeups.get(key.decode() if isinstance(key, bytes) else key, ()):
            if not waiter.done():
                waiter.set_result(None)

    # --- leases ----------------------------------------------------------------------------

    async def _beat(self) -> None:
        """Renews the leases of the slots held and places in line of this process."""
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            for index, tokens_by_key in enumerate((self._held, self._in_line)):
                for key, tokens in list(tokens_by_key.items()):
                    if not tokens:
                        continue
                    try:
                        await self._renew(keys=[_keys(key)[0 if index == 0 else 2]], args=[self._lease_ms, *tokens])
                    except (RedisError, OSError) as exc:
                        log.warning("could not renew the leases of %s: %s", key, exc)

    def _start(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        self._freed.start_soon()

    def _discard_in_line(self, key: str, token: str) -> None:
        tokens = self._in_line.get(key)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del self._in_line[key]

    def _clean_up(self, key: str, token: str, quiet: bool = False) -> asyncio.Task[None]:
        """Gives up `token`'s slot or place in line, in a task of its own that a cancellation
        of the caller cannot stop; what cannot reach Redis (no longer renewed) runs out with its lease."""

        async def clean() -> None:
            try:
                await self._release(keys=_keys(key)[:3], args=[token, FREED_CHANNEL, key])
            except (RedisError, OSError) as exc:
                (log.debug if quiet else log.warning)("could not give back a slot of %s (its lease will run out): %s", key, exc)

        task = asyncio.ensure_future(clean())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return task

    async def _settled(self) -> None:
        if self._cleanups:
            await asyncio.gather(*list(self._cleanups), return_exceptions=True)

    async def _server_ms(self) -> int:
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


class RedisRateLimiter:
    """A token bucket per key shared by every instance: `per_minute` events, bursts up to `per_minute`.

    Also serves IM's per-second call limits through `allow`."""

    def __init__(self, client: redis.asyncio.Redis, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._take = client.register_script(_TAKE)

    async def hit(self, key: str, per_minute: int) -> bool:
        return await self._take_one(key, float(per_minute), per_minute / 60.0)

    async def allow(self, key: str, per_second: float) -> bool:
        if per_second <= 0:
            return True
        return await self._take_one(key, max(per_second, 1.0), per_second)

    async def _take_one(self, key: str, capacity: float, rate: float) -> bool:
        try:
            allowed: Any = await self._take(keys=[f"{PREFIX}rate:{key}"], args=[repr(capacity), repr(rate), repr(self._clock())])
        except (RedisError, OSError) as exc:
            raise LimitsUnavailable(f"the shared rate limits cannot be reached: {exc}") from exc
        return bool(allowed)
