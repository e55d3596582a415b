"""Opening the shared bus's Redis connection."""

from __future__ import annotations

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
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
    )
    return redis.asyncio.Redis.from_pool(pool)


async def open_redis(url: str) -> redis.asyncio.Redis:
    """A client for `url`, checked with a PING: a server that cannot be reached fails the start
    rather than the first turn."""
    client = redis_client(url)
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client
