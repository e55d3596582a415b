"""One-time tokens, in this process and shared through Redis (issued on one instance, redeemed on another)."""

import asyncio

import pytest

from parley.bus.connect import open_redis
from parley.bus.tokens import LocalTokenStore, RedisTokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "redis"])
async def stores(request):
    """Two stores as two instances see them: one and the same store in a single process."""
    if request.param == "local":
        store = LocalTokenStore()
        yield store, store
        return
    url = request.getfixturevalue("bus_url")
    a, b = await open_redis(url), await open_redis(url)
    yield RedisTokenStore(a), RedisTokenStore(b)
    await a.aclose()
    await b.aclose()


async def test_a_token_is_redeemed_once(stores):
    issuer, redeemer = stores
    token = await issuer.issue({"app_key": "k", "n": 1}, ttl=60)
    assert await redeemer.redeem(token) == {"app_key": "k", "n": 1}
    assert await redeemer.redeem(token) is None
    assert await issuer.redeem(token) is None
    assert await redeemer.redeem("unknown") is None


async def test_a_token_redeemed_by_two_at_once_is_redeemed_once(stores):
    issuer, redeemer = stores
    token = await issuer.issue({"n": 1}, ttl=60)
    results = await asyncio.gather(*(store.redeem(token) for store in (issuer, redeemer) * 5))
    assert [r for r in results if r is not None] == [{"n": 1}]


async def test_a_shared_token_expires_after_its_ttl(bus_url):
    client = await open_redis(bus_url)
    store = RedisTokenStore(client)
    token = await store.issue({"n": 1}, ttl=0.05)
    await asyncio.sleep(0.2)
    assert await store.redeem(token) is None
    await client.aclose()


async def test_a_token_expires_after_its_ttl():
    clock = Clock()
    store = LocalTokenStore(clock)
    token = await store.issue({"n": 1}, ttl=60)
    clock.now += 61
    assert await store.redeem(token) is None


async def test_expired_tokens_do_not_pile_up():
    clock = Clock()
    store = LocalTokenStore(clock)
    for n in range(100):
        await store.issue({"n": n}, ttl=60)
    clock.now += 61
    live = await store.issue({"n": "live"}, ttl=60)
    assert len(store._tokens) == 1
    assert await store.redeem(live) == {"n": "live"}
