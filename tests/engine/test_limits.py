import asyncio

from parley.engine.limits import LocalConcurrencyLimiter, LocalRateLimiter


async def test_slots_are_handed_over_in_order():
    limiter = LocalConcurrencyLimiter()
    assert await limiter.acquire("a", 1)
    assert not await limiter.acquire("a", 1)  # no waiting: refused at once
    order = []

    async def wait(name):
        if await limiter.acquire("a", 1, timeout=5):
            order.append(name)
            await asyncio.sleep(0)
            await limiter.release("a")

    waiters = [asyncio.create_task(wait(n)) for n in ("first", "second", "third")]
    await asyncio.sleep(0.01)
    await limiter.release("a")
    await asyncio.gather(*waiters)
    assert order == ["first", "second", "third"] and limiter.in_use("a") == 0


async def test_a_wait_that_runs_out_leaves_no_trace():
    limiter = LocalConcurrencyLimiter()
    assert await limiter.acquire("a", 1)
    assert not await limiter.acquire("a", 1, timeout=0.02)
    await limiter.release("a")
    assert limiter.in_use("a") == 0 and await limiter.acquire("a", 1)


async def test_at_most_limit_are_held_at_once():
    limiter = LocalConcurrencyLimiter()
    held, peak = 0, 0

    async def turn():
        nonlocal held, peak
        if not await limiter.acquire("k", 5, timeout=2):
            return False
        held += 1
        peak = max(peak, held)
        await asyncio.sleep(0.001)
        held -= 1
        await limiter.release("k")
        return True

    results = await asyncio.gather(*(turn() for _ in range(200)))
    assert all(results) and peak == 5 and limiter.in_use("k") == 0


async def test_rates_refill_over_time(monkeypatch):
    limiter = LocalRateLimiter()
    clock = [100.0]
    monkeypatch.setattr("parley.engine.limits.time.monotonic", lambda: clock[0])
    assert all([await limiter.hit("v", 3) for _ in range(3)])
    assert not await limiter.hit("v", 3)
    clock[0] += 20.0  # a third of a minute: one more allowed
    assert await limiter.hit("v", 3) and not await limiter.hit("v", 3)
    assert await limiter.hit("other", 3)
