"""The turn runner acknowledges a question only once it is stored, and saves the answer as it grows.

The model and the record store are small stand-ins behind the engine's seams (ChatModel,
the repository's add_record/checkpoint); the bus is the real in-process one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

from parley.bus.local import LocalBus
from parley.config import ModelConfig
from parley.engine.apps import AppConfig
from parley.engine.events import Failure, Final, Progress, UserEcho
from parley.engine.turn import CheckpointPolicy, TurnInfo, TurnPlan, TurnRunner
from parley.models.base import ChatChunk, ChatMessage
from parley.store.conversations import RecordRow

TURN = 7


class Chat:
    """Answers with `pieces`, then (with `hang`) waits until the stream is closed."""

    def __init__(self, pieces: list[str], hang: bool = False) -> None:
        self.config = ModelConfig(name="stub")
        self.pieces, self.hang, self.closed = pieces, hang, False

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[ChatChunk]:
        try:
            for piece in self.pieces:
                await asyncio.sleep(0)  # as a network read would
                yield ChatChunk(text=piece)
            if self.hang:
                await asyncio.Event().wait()
        finally:
            self.closed = True

    async def aclose(self) -> None:
        pass


class Records:
    """What the runner stored: (content, status) of each write, in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []

    async def add_record(self, record: RecordRow) -> None:
        self.writes.append((record.content, record.status))

    def checkpoint(self, record: RecordRow) -> asyncio.Future[None]:
        self.writes.append((record.content, record.status))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def runner(stored: asyncio.Future[None], chat: Chat, records: Records, bus: LocalBus,
           checkpoints: CheckpointPolicy | None = None) -> TurnRunner:
    info = TurnInfo(TURN, 1, "app", "", "s", "r", 5, TURN, "stub", int(time.time()), True, 1)
    plan = TurnPlan(
        info=info, app=AppConfig(name="app"), session_pk=1, model=chat, model_config=chat.config,  # type: ignore[arg-type]
        system_role="", question="hi", history=[], started=time.monotonic(), question_stored=stored,
        echo=UserEcho(5, "hi", info.timestamp), checkpoints=checkpoints,
    )
    bus.open(TURN)
    return TurnRunner(plan, bus, records)  # type: ignore[arg-type]


async def published(bus: LocalBus) -> list[Any]:
    """What the turn's stream holds now (without waiting for more)."""
    async for batch in bus.subscribe_batches(TURN, idle=0.01):
        return batch or []
    return []


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_events_wait_for_the_question_and_follow_its_echo_in_order():
    bus, records = LocalBus(), Records()
    stored = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(runner(stored, Chat(["Hel", "lo"]), records, bus).run())
    await settle()
    assert await published(bus) == []  # the model has answered; nothing goes out before the question is stored
    stored.set_result(None)
    await task
    events = [e async for e in bus.subscribe(TURN)]
    assert isinstance(events[0], UserEcho) and isinstance(events[1], Progress)
    assert [e for e in events if isinstance(e, str)] == ["Hel", "lo"]
    assert isinstance(events[-1], Final) and records.writes == [("Hello", "success")]


async def test_a_question_that_cannot_be_stored_stops_the_answer_with_one_error_and_no_echo():
    bus, records, chat = LocalBus(), Records(), Chat(["partial"], hang=True)
    stored = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(runner(stored, chat, records, bus).run())
    await settle()
    stored.set_exception(sqlite3.OperationalError("database is locked"))
    await asyncio.wait_for(task, 10)
    events = [e async for e in bus.subscribe(TURN)]
    assert len(events) == 1 and isinstance(events[0], Failure) and "could not be stored" in events[0].message
    assert chat.closed and records.writes == []


async def test_the_answer_is_saved_as_it_grows():
    bus, records = LocalBus(), Records()
    stored = asyncio.get_running_loop().create_future()
    stored.set_result(None)
    policy = CheckpointPolicy(interval=3600, chars=4)  # every 4 characters
    await runner(stored, Chat(["ab", "cd", "ef", "gh", "i"]), records, bus, policy).run()
    assert records.writes == [("abcd", "streaming"), ("abcdefgh", "streaming"), ("abcdefghi", "success")]
