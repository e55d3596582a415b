"""The Redis client a shared bus runs on: opened from `bus_url` once per process, closed at exit.

One client (with its connection pool) serves every user of the bus: turn streams, stops,
leases, limits, tokens. Connecting checks the server answers, so that a wrong URL stops the
server at start rather than failing the first turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis

CONNECT_TIMEOUT = 5.0


async def open_client(url: str) -> redis.Redis:
    """A client of the Redis at `url`, checked with a PING; raises ConnectionError when it does not answer."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, health_check_interval=30, socket_keepalive=True,
    )
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        raise ConnectionError(f"the bus at {redact(url)} does not answer: {exc}") from exc
    return client


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[redis.Redis]:
    client = await open_client(url)
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
