"""The test run's own Redis: started from the wheel's binary, one clean database per test."""

from __future__ import annotations

import redis.asyncio as redis


async def test_each_test_gets_an_empty_database_of_its_own(bus_url: str, redis_server) -> None:
    client = redis.Redis.from_url(bus_url)
    other = redis.Redis.from_url(redis_server.new_url())
    try:
        assert await client.dbsize() == 0
        await client.set("parley:probe", "1")
        assert await client.get("parley:probe") == b"1"
        assert await other.get("parley:probe") is None
    finally:
        await client.aclose()
        await other.aclose()
