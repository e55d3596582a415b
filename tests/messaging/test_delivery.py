"""Delivery to subscribers, in this process and across instances through Redis: every delivery
has an id, and a subscriber that comes back after an id gets what it missed, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from parley.bus.connect import open_redis
from parley.messaging.delivery import Delivered, LocalDelivery
from parley.messaging.redis_delivery import RedisDelivery
from parley.store.messaging import MessageRow

APP = 1400000001


def message(n: int, to: str = "bob") -> MessageRow:
    return MessageRow(
        id=n, sdkappid=APP, from_account="alice", to_account=to, msg_seq=n, msg_random=n, msg_time=1_700_000_000,
        msg_key=f"{n}_{n}_1700000000", body=[{"MsgType": "TIMTextElem", "MsgContent": {"Text": f"m{n}"}}],
        created_at=1, updated_at=1,
    )


@asynccontextmanager
async def deliveries(kind: str, url: str | None, window: float = 300.0) -> AsyncIterator[tuple]:
    """Two deliveries as two instances see them (in one process: the same one twice)."""
    if kind == "local":
        delivery = LocalDelivery(window)
        yield delivery, delivery
        return
    clients = [await open_redis(url) for _ in range(2)]
    pair = [RedisDelivery(client, window) for client in clients]
    for delivery in pair:
        await delivery.start()
    try:
        yield tuple(pair)
    finally:
        for delivery, client in zip(pair, clients):
            await delivery.aclose()
            await client.aclose()


@pytest.fixture(params=["local", "redis"])
def kind(request):
    return request.param


@pytest.fixture
def url(kind, request):
    return request.getfixturevalue("bus_url") if kind == "redis" else None


async def read(subscription, count: int) -> list[Delivered]:
    got = []
    while len(got) < count:
        delivered = await subscription.next(5)
        assert delivered is not None, f"only {len(got)} of {count} arrived"
        got.append(delivered)
    return got


def texts(delivered: list[Delivered]) -> list[str]:
    return [d.message.body[0]["MsgContent"]["Text"] for d in delivered]


async def test_a_message_published_on_one_instance_reaches_a_subscriber_on_another(kind, url):
    async with deliveries(kind, url) as (a, b):
        async with b.subscribe(APP, "bob") as subscription:
            await a.publish(APP, "bob", Delivered("received", message(1)))
            await a.publish(APP, "carol", Delivered("received", message(2, "carol")))
            await a.publish(APP, "bob", Delivered("modified", message(3)))
            got = await read(subscription, 2)
            assert texts(got) == ["m1", "m3"] and [d.kind for d in got] == ["received", "modified"]
            assert got[0].message == message(1)
            assert got[0].id and got[0].id != got[1].id
            assert await subscription.next(0.05) is None  # carol's is not bob's


async def test_a_subscriber_that_comes_back_gets_what_it_missed_once(kind, url):
    async with deliveries(kind, url) as (a, b):
        async with a.subscribe(APP, "bob") as first:
            for n in range(1, 4):
                await b.publish(APP, "bob", Delivered("received", message(n)))
            got = await read(first, 2)  # the connection drops after the second
        last_id = got[-1].id
        for n in range(4, 6):
            await b.publish(APP, "bob", Delivered("received", message(n)))
        async with b.subscribe(APP, "bob", after=last_id) as again:
            assert again.resumed
            await a.publish(APP, "bob", Delivered("received", message(6)))
            assert texts(await read(again, 4)) == ["m3", "m4", "m5", "m6"]
            assert await again.next(0.05) is None


async def test_a_subscription_starts_at_a_position_that_can_be_resumed(kind, url):
    async with deliveries(kind, url) as (a, b):
        async with a.subscribe(APP, "bob") as first:
            position = first.position  # read nothing: the connection drops at once
        await b.publish(APP, "bob", Delivered("received", message(1)))
        async with b.subscribe(APP, "bob", after=position) as again:
            assert again.resumed and texts(await read(again, 1)) == ["m1"]


async def test_an_id_never_given_or_too_old_is_not_resumed(kind, url):
    async with deliveries(kind, url, window=0.2) as (a, b):
        async with a.subscribe(APP, "bob") as first:
            await b.publish(APP, "bob", Delivered("received", message(1)))
            old = (await read(first, 1))[0].id
        for bad in ("nonsense", "0-0", "deadbeef.1", "99999999999999-0"):
            async with b.subscribe(APP, "bob", after=bad) as again:
                assert not again.resumed, bad
        await b.publish(APP, "bob", Delivered("received", message(2)))
        await asyncio.sleep(0.3)  # past the window: m2 is no longer kept
        await b.publish(APP, "bob", Delivered("received", message(3)))
        async with a.subscribe(APP, "bob", after=old) as again:
            assert not again.resumed  # the client reads history instead
            await b.publish(APP, "bob", Delivered("received", message(4)))
            assert texts(await read(again, 1)) == ["m4"]


async def test_deliveries_during_a_resume_are_neither_lost_nor_repeated(kind, url):
    async with deliveries(kind, url) as (a, b):
        async with a.subscribe(APP, "bob") as first:
            await b.publish(APP, "bob", Delivered("received", message(0)))
            start = (await read(first, 1))[0].id

        async def publish_many() -> None:
            for n in range(1, 41):
                await a.publish(APP, "bob", Delivered("received", message(n)))
                if n % 5 == 0:
                    await asyncio.sleep(0)

        publisher = asyncio.create_task(publish_many())
        await asyncio.sleep(0)
        async with b.subscribe(APP, "bob", after=start) as again:
            await publisher
            got = await read(again, 40)
            assert texts(got) == [f"m{n}" for n in range(1, 41)]
            assert await again.next(0.05) is None
