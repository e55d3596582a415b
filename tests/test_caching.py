"""RefreshingCache with a hand-moved clock and loads that finish when the test says."""

import asyncio

import pytest

from parley.caching import RefreshingCache


class Source:
    """A slow database: each load waits until the test releases it."""

    def __init__(self) -> None:
        self.value = "v1"
        self.loads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def load(self, key: str) -> str:
        self.loads += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("database gone")
        return f"{key}:{self.value}"


@pytest.fixture
def clock():
    return [100.0]


@pytest.fixture
def source():
    return Source()


@pytest.fixture
def cache(source, clock):
    return RefreshingCache(source.load, ttl=1.0, clock=lambda: clock[0])


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_first_callers_share_one_load(cache, source):
    source.gate.clear()
    waiting = [asyncio.ensure_future(cache.get("app")) for _ in range(20)]
    await settle()
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["app:v1"] * 20
    assert source.loads == 1


async def test_a_stale_answer_is_served_while_one_refresh_runs(cache, source, clock):
    assert await cache.get("app") == "app:v1"
    source.value, clock[0] = "v2", clock[0] + 1.5
    source.gate.clear()
    assert [await cache.get("app") for _ in range(10)] == ["app:v1"] * 10  # nobody waits
    await settle()
    assert source.loads == 2  # one refresh for all of them
    source.gate.set()
    await settle()
    assert await cache.get("app") == "app:v2"


async def test_the_age_counts_from_when_a_slow_load_finished(cache, source, clock):
    source.gate.clear()
    first = asyncio.ensure_future(cache.get("app"))
    await settle()
    clock[0] += 5.0  # the query took longer than the ttl
    source.gate.set()
    assert await first == "app:v1"
    await cache.get("app")
    assert source.loads == 1  # fresh on arrival, not stale at once


async def test_forget_drops_the_answer_and_a_load_that_may_predate_the_change(cache, source, clock):
    assert await cache.get("app") == "app:v1"
    clock[0] += 1.5
    source.gate.clear()
    await cache.get("app")  # starts a refresh that read the old value ...
    source.value = "v2"
    cache.forget("app")  # ... then the change lands
    source.gate.set()
    await settle()
    assert await cache.get("app") == "app:v2"


async def test_a_failed_refresh_keeps_the_old_answer_and_a_failed_first_load_raises(cache, source, clock):
    assert await cache.get("app") == "app:v1"
    clock[0] += 1.5
    source.fail = True
    assert await cache.get("app") == "app:v1"
    await settle()
    assert await cache.get("app") == "app:v1"
    assert source.loads == 2  # kept another ttl: no query storm while the database is down
    with pytest.raises(RuntimeError):
        await cache.get("other")
