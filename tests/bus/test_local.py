"""What only the in-process bus does: its bookkeeping of waiters, compaction. What every bus does: test_buses.py."""

import asyncio

import pytest

from parley.bus import LocalBus, UnknownTurn


async def collect(iterator):
    return [item async for item in iterator]


async def test_a_subscriber_that_leaves_while_waiting_is_forgotten():
    bus = LocalBus()
    bus.open(1)
    reader = asyncio.create_task(collect(bus.subscribe(1, idle=10)))
    await asyncio.sleep(0.01)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    stream = bus._streams[1]
    assert stream.waiters == [] and stream.subscribers == 0
    bus.publish(1, "still fine")
    bus.end(1)
    assert await collect(bus.subscribe(1)) == ["still fine"]
    await bus.aclose()


def _merge(events):
    merged = []
    for event in events:
        if merged and isinstance(event, str) and isinstance(merged[-1], str):
            merged[-1] += event
        else:
            merged.append(event)
    return merged


async def test_a_finished_stream_is_compacted_once_nobody_reads_it():
    bus = LocalBus(compact=_merge)
    bus.open(1)
    reader = bus.subscribe_batches(1)
    bus.publish(1, "a")
    assert await reader.__anext__() == ["a"]
    bus.publish(1, "b")
    bus.publish(1, "c")
    bus.end(1)
    assert bus._streams[1].events == ["a", "b", "c"]  # a subscriber is still reading: offsets hold
    assert await reader.__anext__() == ["b", "c"]
    with pytest.raises(StopAsyncIteration):
        await reader.__anext__()
    assert bus._streams[1].events == ["abc"]
    assert await collect(bus.subscribe(1)) == ["abc"]  # a late subscriber reads it whole
    await bus.aclose()


async def test_a_stream_ending_with_no_subscriber_is_compacted_at_once():
    bus = LocalBus(compact=_merge)
    bus.open(1)
    for text in "hello":
        bus.publish(1, text)
    bus.publish(1, 42)
    bus.end(1)
    assert bus._streams[1].events == ["hello", 42]
    await bus.aclose()


async def test_a_stream_a_subscriber_left_early_is_kept_replayable_with_its_header():
    bus = LocalBus(compact=_merge)
    bus.open(1, header="whose")
    bus.open(2, header="other")
    reader = bus.subscribe_batches(1)
    bus.publish(1, "a")
    assert await reader.__anext__() == ["a"]
    bus.keep(1)  # the subscriber's client went away mid-stream
    await reader.aclose()
    for turn in (1, 2):
        bus.publish(turn, "b")
        bus.publish(turn, "c")
        bus.end(turn)
    assert await bus.replay_header(1) == "whose"
    assert await collect(bus.subscribe(1)) == ["a", "b", "c"]  # offsets still hold for a resume
    assert bus._streams[1].events == ["a", "b", "c"]
    with pytest.raises(UnknownTurn):  # compacted: its offsets are gone
        await bus.replay_header(2)
    with pytest.raises(UnknownTurn):
        await bus.replay_header(3)
    await bus.aclose()
