"""What every bus does, on the in-process bus and on Redis (`make_bus`, tests/bus/conftest.py);
then what only a shared bus does: subscribers, stops and leases across processes."""

import asyncio

import pytest

from parley.bus import UnknownTurn
from parley.bus.redis_bus import RedisBus, _Outgoing


async def collect(iterator):
    return [item async for item in iterator]


async def test_a_subscriber_gets_everything_from_its_offset_until_the_end(make_bus):
    bus = await make_bus()
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


async def test_idle_subscribers_get_ticks(make_bus):
    bus = await make_bus()
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


async def test_streams_expire_after_the_retention_period(make_bus):
    bus = await make_bus(retention=0.01)
    bus.open(1)
    bus.end(1)
    await asyncio.sleep(0.1)
    with pytest.raises(UnknownTurn):
        await collect(bus.subscribe(1))
    with pytest.raises(UnknownTurn):
        await bus.replay_header(1)


async def test_batches_hold_everything_already_waiting(make_bus):
    bus = await make_bus()
    bus.open(1)
    for item in "abc":
        bus.publish(1, item)
    batches = bus.subscribe_batches(1)
    assert await anext(batches) == ["a", "b", "c"]
    bus.publish(1, "d")
    bus.end(1)
    assert [batch async for batch in batches] == [["d"]]


async def test_a_stream_a_subscriber_left_keeps_its_header_for_a_resume(make_bus):
    bus = await make_bus()
    bus.open(1, header={"whose": "mine"})
    bus.publish(1, "a")
    bus.keep(1)
    bus.end(1)
    assert await bus.replay_header(1) == {"whose": "mine"}
    assert await collect(bus.subscribe(1)) == ["a"]
    with pytest.raises(UnknownTurn):
        await bus.replay_header(2)


async def test_a_stop_for_a_turn_no_process_holds_is_refused(make_bus):
    bus = await make_bus()
    stopped = []
    bus.on_stop(stopped.append)
    bus.open(1)
    bus.end(1)
    await asyncio.sleep(0.05)
    assert not await bus.stop(1)
    assert not await bus.stop(2)
    assert stopped == []


# Shared buses: `make_bus` twice on Redis gives two processes' buses on the same Redis.


@pytest.fixture
async def two(make_bus):
    if not make_bus.shared:
        pytest.skip("only a shared bus is seen by another process")
    return await make_bus(lease=0.6), await make_bus(lease=0.6)


async def eventually(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def test_another_process_reads_a_turn_live_from_any_offset(two):
    a, b = two
    a.open(7, header={"owner": "v"})
    for n in range(300):
        a.publish(7, n)
    await eventually(lambda: _header_of(b, 7))
    assert await b.replay_header(7) == {"owner": "v"}
    whole = asyncio.create_task(collect(b.subscribe(7)))
    rest = asyncio.create_task(collect(b.subscribe(7, offset=250)))
    ticks = asyncio.create_task(collect(b.subscribe(7, offset=1000, idle=0.02)))
    await asyncio.sleep(0.05)
    for n in range(300, 1000):
        a.publish(7, n)
        if n % 100 == 0:
            await asyncio.sleep(0)  # in bursts, as turns publish
    a.end(7)
    assert await asyncio.wait_for(whole, 10) == list(range(1000))
    assert await rest == list(range(250, 1000))
    got = await ticks
    assert got and all(item is None for item in got)  # waited past the end's offset: ticks, then the end
    assert await collect(b.subscribe(7, offset=999)) == [999]


async def _header_of(bus, turn_id):
    try:
        await bus.replay_header(turn_id)
        return True
    except UnknownTurn:
        return False


async def test_once_its_local_copy_is_gone_the_running_process_reads_redis_too(make_bus):
    if not make_bus.shared:
        pytest.skip("the in-process bus has only its own copy")
    bus = await make_bus(local_grace=0.01)
    bus.open(3)
    for item in "xyz":
        bus.publish(3, item)
    bus.end(3)
    await asyncio.sleep(0.1)
    assert not bus._local.is_open(3)
    assert await collect(bus.subscribe(3, offset=1)) == ["y", "z"]


async def test_a_stop_from_another_process_reaches_the_one_running_the_turn(two):
    a, b = two
    stopped_a, stopped_b = [], []
    a.on_stop(stopped_a.append)
    b.on_stop(stopped_b.append)
    a.open(11)
    a.publish(11, "working")
    await eventually(lambda: _header_of(b, 11))
    assert await b.stop(11)
    await eventually(lambda: _true(stopped_a == [11]))
    assert stopped_b == []  # b does not run it


async def _true(value):
    return value


async def test_a_dead_process_s_turn_is_an_orphan_once_its_lease_expires_and_is_closed_once(two):
    a, b = two
    a.open(21, header="h")
    a.publish(21, "partial ")
    a.publish(21, "answer")
    a.open(22)  # still alive, renewed by the heartbeat
    await eventually(lambda: _header_of(b, 21))
    assert await b.orphans([21, 22, 23]) == [23]  # 23: never held by anyone
    a._running.discard(21)  # a stops renewing 21, as a process that died would
    await asyncio.sleep(1.0)  # the lease (0.6 s) expires; 22's was renewed meanwhile
    assert await b.orphans([21, 22]) == [21]
    reader = asyncio.create_task(collect(b.subscribe(21)))
    await asyncio.sleep(0.05)
    assert await b.close_orphan(21, ["interrupted"])
    assert not await a.close_orphan(21, ["twice"])  # already ended
    assert await asyncio.wait_for(reader, 5) == ["partial ", "answer", "interrupted"]
    assert not await b.stop(21)


async def test_a_write_retried_after_a_partial_failure_adds_nothing_twice(make_bus):
    if not make_bus.shared:
        pytest.skip("only the Redis bus writes")
    bus: RedisBus = await make_bus()
    out = _Outgoing(0)
    out.header, out.lease, out.events = b'"h"', True, [b'"a"', b'"b"']
    await bus._write({5: out})
    more = _Outgoing(0)  # the same events again (a pipeline that failed after this one), then more
    more.events, more.ended = [b'"a"', b'"b"', b'"c"'], True
    await bus._write({5: more})
    await bus._write({5: more})
    assert await collect(bus.subscribe(5)) == ["a", "b", "c"]
