import asyncio

import pytest

from parley.bus import LocalBus, UnknownTurn


async def collect(iterator):
    return [item async for item in iterator]


async def test_a_subscriber_gets_everything_from_its_offset_until_the_end():
    bus = LocalBus()
    bus.open(1)
    bus.publish(1, "a")
    task = asyncio.create_task(collect(bus.subscribe(1)))
    late = asyncio.create_task(collect(bus.subscribe(1, offset=1)))
    await asyncio.sleep(0)
    bus.publish(1, "b")
    bus.publish(1, "c")
    bus.end(1)
    assert await task == ["a", "b", "c"]
    assert await late == ["b", "c"]
    await bus.aclose()


async def test_idle_subscribers_get_ticks():
    bus = LocalBus()
    bus.open(1)
    items = []

    async def read():
        async for item in bus.subscribe(1, idle=0.01):
            items.append(item)
            if item is None and len(items) >= 2:
                bus.publish(1, "x")
                bus.end(1)

    await asyncio.wait_for(read(), 5)
    assert items[:2] == [None, None] and items[-1] == "x"
    await bus.aclose()


async def test_streams_expire_after_the_retention_period():
    bus = LocalBus(retention=0.01)
    bus.open(1)
    bus.end(1)
    await asyncio.sleep(0.05)
    with pytest.raises(UnknownTurn):
        await collect(bus.subscribe(1))


async def test_batches_hold_everything_already_waiting():
    bus = LocalBus()
    bus.open(1)
    for item in "abc":
        bus.publish(1, item)
    batches = bus.subscribe_batches(1)
    assert await anext(batches) == ["a", "b", "c"]
    bus.publish(1, "d")
    bus.end(1)
    assert [batch async for batch in batches] == [["d"]]
