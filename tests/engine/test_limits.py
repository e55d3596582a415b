import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

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


# Random interleavings of waiting, holding, releasing and cancelling. Each actor waits for a
# slot (or not at all), holds it for some loop steps and gives it back, as the engine's turns do;
# the driver cancels actors at chosen loop steps, so that a cancellation often lands in the very
# step in which a waiter is handed its slot (the leak that used to lock an application out).

LIMIT_KEY = "turns:1"

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


async def _drive(limit: int, plan: list[dict]) -> None:
    limiter = LocalConcurrencyLimiter()
    holding = 0

    async def actor(timeout: float, start: int, hold: int) -> None:
        nonlocal holding
        for _ in range(start):
            await asyncio.sleep(0)
        if not await limiter.acquire(LIMIT_KEY, limit, timeout):
            return
        holding += 1
        try:
            assert holding <= limit
            for _ in range(hold):
                await asyncio.sleep(0)
        finally:
            holding -= 1
            await limiter.release(LIMIT_KEY)

    tasks = [asyncio.create_task(actor(a["timeout"], a["start"], a["hold"])) for a in plan]
    for step in range(10):
        for a, task in zip(plan, tasks):
            if a["cancel_at"] == step:
                task.cancel()
        await asyncio.sleep(0)
    for _ in range(20 * len(plan) + 20):  # enough steps for every slot to be passed on and given back
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0)
    stuck = [task for task in tasks if not task.done()]
    for task in stuck:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert not [r for r in results if isinstance(r, AssertionError)], "more than `limit` held at once"
    assert not stuck, "a waiter never got a slot back"
    assert limiter.in_use(LIMIT_KEY) == 0
    assert limiter.waiting(LIMIT_KEY) == 0
    assert limiter._slots == {}  # nothing kept for an idle key


@settings(max_examples=300, derandomize=True, deadline=None)
@given(limit=st.integers(min_value=1, max_value=3), plan=actors)
def test_slots_are_taken_and_given_back_exactly_once_under_cancellation(limit, plan):
    asyncio.run(_drive(limit, plan))


async def test_a_waiter_cancelled_in_the_step_that_hands_it_the_slot_passes_it_on():
    limiter = LocalConcurrencyLimiter()
    assert await limiter.acquire("a", 1)
    waiter = asyncio.create_task(limiter.acquire("a", 1, timeout=3600))
    await asyncio.sleep(0)
    await limiter.release("a")  # the slot goes to the waiter ...
    waiter.cancel()  # ... which is cancelled before it could run
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled()
    assert limiter.in_use("a") == 0 and await limiter.acquire("a", 1)
