"""Cache invalidation across instances: what one announces, every other forgets at once."""

from __future__ import annotations

import asyncio

from parley.bus.connect import open_redis
from parley.bus.invalidation import RedisInvalidations


async def wait_for(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_an_announcement_reaches_every_other_instance_and_not_its_own(bus_url):
    clients = [await open_redis(bus_url) for _ in range(3)]
    instances = [RedisInvalidations(client) for client in clients]
    heard: list[list[tuple[str, str | None]]] = [[] for _ in instances]
    for instance, log in zip(instances, heard):
        instance.on("apps", lambda key, log=log: log.append(("apps", key)))
        instance.on("knowledge", lambda key, log=log: log.append(("knowledge", key)))
        await instance.start()
    try:
        await instances[0].announce("apps")
        await instances[1].announce("knowledge", "42")
        await wait_for(lambda: len(heard[2]) == 2 and len(heard[0]) == 1 and len(heard[1]) == 1)
        assert heard[0] == [("knowledge", "42")]
        assert heard[1] == [("apps", None)]
        assert sorted(heard[2], key=str) == [("apps", None), ("knowledge", "42")]
    finally:
        for instance, client in zip(instances, clients):
            await instance.aclose()
            await client.aclose()


async def test_an_announcement_that_cannot_be_sent_does_not_fail_the_change(bus_url):
    client = await open_redis(bus_url)
    instance = RedisInvalidations(client)
    await client.aclose()
    client.connection_pool.connection_kwargs["port"] = 1  # nobody listens there
    await instance.announce("apps")  # logged, not raised: the other caches expire on their own
