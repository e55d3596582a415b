"""Buses for the bus tests: each test that takes `make_bus` runs on the in-process bus and on
the Redis bus (its own database of the run's Redis; `make_bus` called twice on Redis gives two
processes' buses sharing it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from parley.bus import LocalBus
from parley.bus.redis_bus import RedisBus


class JsonCodec:
    """Whatever orjson takes, for tests that publish plain values."""

    encode_event = staticmethod(orjson.dumps)
    decode_event = staticmethod(orjson.loads)
    encode_header = staticmethod(orjson.dumps)
    decode_header = staticmethod(orjson.loads)


@pytest.fixture(params=["local", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Any] = []
    url = request.getfixturevalue("bus_url") if request.param == "redis" else None

    async def make(retention: float = 120.0, **options: Any) -> Any:
        if url is None:
            bus = LocalBus(retention=retention, **options)
        else:
            client = redis.Redis.from_url(url)
            bus = RedisBus(client, JsonCodec(), retention, **options)
            await bus.start()
            bus.client = client
        opened.append(bus)
        return bus

    make.shared = url is not None
    yield make
    for bus in opened:
        await bus.aclose()
        if isinstance(bus, RedisBus):
            await bus.client.aclose()
