"""The Redis client a shared bus runs on: opened from `bus_url` once per process, closed at exit.

One client (with its connection pool) serves every user of the bus: turn streams, stops,
leases, limits, tokens, cache invalidation, IM delivery. Connecting checks the server answers,
so that a wrong URL stops the server at start rather than failing the first turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection; a Redis that does not answer must not hang a turn's admission."""
COMMAND_TIMEOUT = 10.0
"""Seconds a command may take (blocking reads pass their own, shorter, block time)."""
MAX_CONNECTIONS = 128
"""Connections per process; a command waits (up to COMMAND_TIMEOUT) for a free one rather than
fail when a burst of turns asks for more at once. Each pub/sub listener keeps one."""


def redis_client(url: str) -> redis.asyncio.Redis:
    """A client for `url` (`redis://host:6379/0`), not yet connected. A command that cannot
    reach the server is tried twice more within a fraction of a second, then fails: a turn
    waits that long to be refused, not the library's default of several seconds."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT, health_check_interval=30,
        socket_keepalive=True, retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
    )
    return redis.asyncio.Redis.from_pool(pool)


async def open_redis(url: str) -> redis.asyncio.Redis:
    """A client for `url`, checked with a PING; raises ConnectionError when it does not answer."""
    client = redis_client(url)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        raise ConnectionError(f"the bus at {redact(url)} does not answer: {exc}") from exc
    except BaseException:
        await client.aclose()
        raise
    return client


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """`open_redis`, closed on exit."""
    client = await open_redis(url)
    try:
        yield client
    finally:
        await client.aclose()


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{host}"
