"""The signature ledger: a call that changes something needs a signature of its own, unless
it comes over the connection that first used the signature. Shared through Redis, a signature
used on one instance is a replay on another."""

import asyncio

import pytest

from parley.bus.connect import open_redis
from parley.bus.signatures import LocalSignatureLedger, RedisSignatureLedger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "redis"])
async def ledger(request):
    if request.param == "local":
        yield LocalSignatureLedger()
        return
    client = await open_redis(request.getfixturevalue("bus_url"))
    yield RedisSignatureLedger(client)
    await client.aclose()


async def test_a_call_that_changes_something_needs_its_own_signature_from_another_connection(ledger):
    assert await ledger.claim("sig-1", b"DescribeReleaseInfo", 600, exclusive=False, origin="10.0.0.1:5000")
    assert not await ledger.claim("sig-1", b"CreateRelease", 600, exclusive=True, origin="10.0.0.9:6000")  # a replay
    assert not await ledger.claim("sig-1", b"CreateRelease", 600, exclusive=True, origin=None)
    assert await ledger.claim("sig-1", b"ListQA", 600, exclusive=False, origin="10.0.0.9:6000")  # reads share a signature
    assert await ledger.claim("sig-2", b"CreateRelease", 600, exclusive=True, origin="10.0.0.1:5000")
    assert await ledger.claim("sig-2", b"CreateRelease", 600, exclusive=True, origin="10.0.0.1:5001")  # a retry
    assert not await ledger.claim("sig-2", b"DeleteDoc", 600, exclusive=True, origin="10.0.0.9:6000")


async def test_the_signers_own_connection_may_reuse_a_signature(ledger):
    # The SDK signs a read and a write with one body in one second alike, and sends both on its connection.
    assert await ledger.claim("sig-1", b"ListAttributeLabel", 600, exclusive=False, origin="10.0.0.1:5000")
    assert await ledger.claim("sig-1", b"DeleteAttributeLabel", 600, exclusive=True, origin="10.0.0.1:5000")


async def test_a_signature_used_on_one_instance_is_a_replay_on_another(bus_url):
    a, b = await open_redis(bus_url), await open_redis(bus_url)
    on_a, on_b = RedisSignatureLedger(a), RedisSignatureLedger(b)
    assert await on_a.claim("sig-1", b"DescribeApp", 600, exclusive=False, origin="10.0.0.1:5000")
    # The same address and port seen by another instance is another connection.
    assert not await on_b.claim("sig-1", b"DeleteApp", 600, exclusive=True, origin="10.0.0.1:5000")
    assert await on_b.claim("sig-1", b"DescribeApp", 600, exclusive=True, origin="10.0.0.1:5000")  # the same call
    assert await on_a.claim("sig-1", b"DeleteApp", 600, exclusive=True, origin="10.0.0.1:5000")
    await a.aclose()
    await b.aclose()


async def test_a_shared_signature_is_forgotten_once_past_its_age(bus_url):
    client = await open_redis(bus_url)
    ledger = RedisSignatureLedger(client)
    assert await ledger.claim("sig-1", b"call", 0.05, exclusive=True, origin="a")
    assert not await ledger.claim("sig-1", b"other", 0.05, exclusive=True, origin="b")
    await asyncio.sleep(0.2)
    assert await ledger.claim("sig-1", b"other", 0.05, exclusive=True, origin="b")
    await client.aclose()


async def test_signatures_are_forgotten_once_past_their_age():
    clock = Clock()
    ledger = LocalSignatureLedger(clock)
    for n in range(100):
        assert await ledger.claim(f"sig-{n}", b"call", 600, exclusive=True, origin="a")
        clock.now += 1
    assert not await ledger.claim("sig-99", b"other", 600, exclusive=True, origin="b")
    clock.now += 600
    assert await ledger.claim("sig-new", b"call", 600, exclusive=True, origin="a")
    assert len(ledger) == 1  # every older binding was dropped on the way
