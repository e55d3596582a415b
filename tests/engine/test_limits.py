"""Admission limits, each test against both implementations: in this process, and shared
through the test run's own Redis (leases, a line, token buckets in Lua)."""

import asyncio
import inspect
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.bus.connect import open_redis, redis_client
from parley.bus.redis_limits import RedisConcurrencyLimiter, RedisRateLimiter
from parley.engine.limits import LimitsUnavailable, LocalConcurrencyLimiter, LocalRateLimiter
from tests.support.processes import free_port

KINDS = ["local", "redis"]


@asynccontextmanager
async def concurrency_limiter(kind: str, url: str | None, lease: float = 15.0) -> AsyncIterator:
    if kind == "local":
        yield LocalConcurrencyLimiter()
        return
    client = await open_redis(url)
    limiter = RedisConcurrencyLimiter(client, lease=lease, poll=0.05)
    try:
        yield limiter
    finally:
        await limiter.aclose()
        await client.aclose()


async def count(value):
    """`in_use` and `waiting` are plain on the local limiter, awaited on the shared one."""
    return await value if inspect.isawaitable(value) else value


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(kind: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("bus_url") if kind == "redis" else None


async def test_slots_are_handed_over_in_order(kind, url):
    async with concurrency_limiter(kind, url) as limiter:
        assert await limiter.acquire("a", 1)
        assert not await limiter.acquire("a", 1)  # no waiting: refused at once
        order = []

        async def wait(name):
            if await limiter.acquire("a", 1, timeout=5):
                order.append(name)
                await asyncio.sleep(0)
                await limiter.release("a")

        waiters = []
        for name in ("first", "second", "third"):
            waiters.append(asyncio.create_task(wait(name)))
            while await count(limiter.waiting("a")) < len(waiters):  # each in line before the next comes
                await asyncio.sleep(0.001)
        await limiter.release("a")
        await asyncio.gather(*waiters)
        assert order == ["first", "second", "third"] and await count(limiter.in_use("a")) == 0


async def test_a_wait_that_runs_out_leaves_no_trace(kind, url):
    async with concurrency_limiter(kind, url) as limiter:
        assert await limiter.acquire("a", 1)
        assert not await limiter.acquire("a", 1, timeout=0.02)
        await limiter.release("a")
        assert await count(limiter.in_use("a")) == 0 and await count(limiter.waiting("a")) == 0
        assert await limiter.acquire("a", 1)


async def test_at_most_limit_are_held_at_once(kind, url):
    async with concurrency_limiter(kind, url) as limiter:
        held, peak = 0, 0

        async def turn():
            nonlocal held, peak
            if not await limiter.acquire("k", 5, timeout=30):
                return False
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0.001)
            held -= 1
            await limiter.release("k")
            return True

        results = await asyncio.gather(*(turn() for _ in range(200)))
        assert all(results) and peak == 5 and await count(limiter.in_use("k")) == 0


async def test_instances_share_their_slots(bus_url):
    """Three limiters on one Redis, as three instances: five slots between them all."""
    async with concurrency_limiter("redis", bus_url) as a, concurrency_limiter("redis", bus_url) as b, \
            concurrency_limiter("redis", bus_url) as c:
        held, peak = 0, 0

        async def turn(limiter):
            nonlocal held, peak
            assert await limiter.acquire("k", 5, timeout=30)
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0.005)
            held -= 1
            await limiter.release("k")

        await asyncio.gather(*(turn((a, b, c)[n % 3]) for n in range(60)))
        assert peak == 5 and await a.in_use("k") == 0


async def test_a_dead_instances_slots_come_back_when_their_leases_run_out(bus_url):
    async with concurrency_limiter("redis", bus_url, lease=0.3) as survivor:
        client = await open_redis(bus_url)
        dead = RedisConcurrencyLimiter(client, lease=0.3)
        assert await dead.acquire("k", 2) and await dead.acquire("k", 2)
        dead._heartbeat.cancel()  # the instance dies: nobody renews its leases
        await dead._freed.aclose()
        await client.aclose()
        assert not await survivor.acquire("k", 2)
        assert await survivor.acquire("k", 2, timeout=5)  # once a lease has run out
        await survivor.release("k")


async def test_a_held_slot_is_renewed_past_its_lease(bus_url):
    async with concurrency_limiter("redis", bus_url, lease=0.3) as holder, \
            concurrency_limiter("redis", bus_url, lease=0.3) as other:
        assert await holder.acquire("k", 1)
        await asyncio.sleep(1.0)  # three leases long; the heartbeat renews it
        assert not await other.acquire("k", 1)
        await holder.release("k")
        assert await other.acquire("k", 1)


async def test_an_unreachable_redis_refuses_rather_than_admits():
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    limiter, rates = RedisConcurrencyLimiter(client), RedisRateLimiter(client)
    try:
        with pytest.raises(LimitsUnavailable):
            await limiter.acquire("k", 5)
        with pytest.raises(LimitsUnavailable):
            await limiter.acquire("k", 5, timeout=1)
        with pytest.raises(LimitsUnavailable):
            await rates.hit("v", 3)
        with pytest.raises(LimitsUnavailable):
            await rates.allow("v", 3)
    finally:
        await limiter.aclose()
        await client.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def rate_limiter(kind: str, url: str | None, clock: Clock) -> AsyncIterator:
    if kind == "local":
        yield LocalRateLimiter(clock)
        return
    client = await open_redis(url)
    try:
        yield RedisRateLimiter(client, clock)
    finally:
        await client.aclose()


async def test_rates_refill_over_time(kind, url):
    clock = Clock()
    async with rate_limiter(kind, url, clock) as limiter:
        assert all([await limiter.hit("v", 3) for _ in range(3)])
        assert not await limiter.hit("v", 3)
        clock.now += 20.0  # a third of a minute: one more allowed
        assert await limiter.hit("v", 3) and not await limiter.hit("v", 3)
        assert await limiter.hit("other", 3)


async def test_instances_share_a_rate(bus_url):
    clock = Clock()
    async with rate_limiter("redis", bus_url, clock) as a, rate_limiter("redis", bus_url, clock) as b:
        assert await a.hit("v", 2) and await b.hit("v", 2)
        assert not await a.hit("v", 2) and not await b.hit("v", 2)
        assert all([await (a, b)[n % 2].allow("im", 4) for n in range(4)])
        assert not await b.allow("im", 4)


# Random interleavings of waiting, holding, releasing and cancelling. Each actor waits for a
# slot (or not at all), holds it for some loop steps and gives it back, as the engine's turns do;
# the driver cancels actors at chosen loop steps, so that a cancellation often lands in the very
# step in which a waiter is handed its slot (the leak that used to lock an application out).

actors = st.lists(
    st.fixed_dictionaries({
        "timeout": st.sampled_from([0.0, 3600.0]),
        "start": st.integers(min_value=0, max_value=4),  # loop steps before it asks
        "hold": st.integers(min_value=0, max_value=3),  # loop steps it keeps the slot
        "cancel_at": st.none() | st.integers(min_value=0, max_value=8),
    }),
    min_size=1,
    max_size=8,
)


async def _drive(kind: str, url: str | None, limit: int, plan: list[dict]) -> None:
    key = f"turns:{secrets.token_hex(4)}"
    async with concurrency_limiter(kind, url) as limiter:
        holding = 0

        async def actor(timeout: float, start: int, hold: int) -> None:
            nonlocal holding
            for _ in range(start):
                await asyncio.sleep(0)
            if not await limiter.acquire(key, limit, timeout):
                return
            holding += 1
            try:
                assert holding <= limit
                for _ in range(hold):
                    await asyncio.sleep(0)
            finally:
                holding -= 1
                await limiter.release(key)

        tasks = [asyncio.create_task(actor(a["timeout"], a["start"], a["hold"])) for a in plan]
        for step in range(10):
            for a, task in zip(plan, tasks):
                if a["cancel_at"] == step:
                    task.cancel()
            await asyncio.sleep(0)
        # Enough loop steps (in this process) or time (through Redis) for every slot to be
        # passed on and given back.
        for _ in range(20 * len(plan) + 20 if kind == "local" else 2000):
            if all(task.done() for task in tasks):
                break
            await asyncio.sleep(0 if kind == "local" else 0.005)
        stuck = [task for task in tasks if not task.done()]
        for task in stuck:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert not [r for r in results if isinstance(r, AssertionError)], "more than `limit` held at once"
        assert not stuck, "a waiter never got a slot back"
        assert await count(limiter.in_use(key)) == 0
        assert await count(limiter.waiting(key)) == 0
        if kind == "local":
            assert limiter._slots == {}  # nothing kept for an idle key


@settings(max_examples=300, derandomize=True, deadline=None)
@given(limit=st.integers(min_value=1, max_value=3), plan=actors)
def test_slots_are_taken_and_given_back_exactly_once_under_cancellation(limit, plan):
    asyncio.run(_drive("local", None, limit, plan))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(limit=st.integers(min_value=1, max_value=3), plan=actors)
def test_shared_slots_are_taken_and_given_back_exactly_once_under_cancellation(redis_server, limit, plan):
    asyncio.run(_drive("redis", redis_server.new_url(), limit, plan))


async def test_a_waiter_cancelled_in_the_step_that_hands_it_the_slot_passes_it_on(kind, url):
    async with concurrency_limiter(kind, url) as limiter:
        assert await limiter.acquire("a", 1)
        waiter = asyncio.create_task(limiter.acquire("a", 1, timeout=3600))
        while await count(limiter.waiting("a")) == 0:
            await asyncio.sleep(0)
        await limiter.release("a")  # the slot goes to the waiter ...
        waiter.cancel()  # ... which is cancelled before it could run
        await asyncio.gather(waiter, return_exceptions=True)
        if kind == "local":
            assert waiter.cancelled()
        elif not waiter.cancelled():  # through Redis, the waiter may have taken the slot first
            assert waiter.result() is True
            await limiter.release("a")
        assert await count(limiter.in_use("a")) == 0 and await limiter.acquire("a", 1)
