"""Two instances of the IM domain on one database: a robot's streaming message grown through
both keeps every chunk, an interrupt received by one ends the stream the other is writing, and
the same message sent through both at once is stored once. Against the shared state (Redis);
with each instance's own state (as before) chunks were lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.bus.connect import open_redis
from parley.messaging import elements
from parley.messaging.delivery import LocalDelivery
from parley.messaging.errors import MessagingError, Problem
from parley.messaging.service import MessagingService, Outgoing
from parley.messaging.shared import RedisState
from parley.store.database import Database
from parley.store.messaging import MessagingRepository

APP = 1400000001
ROBOT = "@RBT#helper"


@pytest.fixture
async def instances(tmp_path: Path, bus_url: str) -> AsyncIterator[tuple[MessagingService, MessagingService]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}"
    databases = [Database(url), Database(url)]
    await databases[0].migrate()
    clients = [await open_redis(bus_url) for _ in range(2)]
    services = [
        MessagingService(MessagingRepository(db.engine), LocalDelivery(), {APP: frozenset({"admin"})}, RedisState(client))
        for db, client in zip(databases, clients)
    ]
    await services[0].import_account(APP, "bob")
    await services[0].create_robot(APP, ROBOT, 20)
    yield services[0], services[1]
    for service, client, db in zip(services, clients, databases):
        await service.aclose()
        await client.aclose()
        await db.close()


def chunks(message) -> list[str]:
    return elements.stream_chunks(message.body)


async def test_chunks_sent_through_both_instances_are_all_kept(instances):
    a, b = instances
    opened = await a.open_stream(APP, ROBOT, "bob", ["a1"], False)
    await b.append_stream(APP, ROBOT, "bob", opened.msg_key, "b2", False)
    await a.append_stream(APP, ROBOT, "bob", opened.msg_key, "a3", False)
    await asyncio.gather(*(
        (a, b)[n % 2].append_stream(APP, ROBOT, "bob", opened.msg_key, f"c{n}", False) for n in range(6)
    ))
    settled = await b.settle_stream(APP, ROBOT, "bob", opened.msg_key, "".join(chunks(await a.repository.get_message(APP, opened.msg_key))))
    stored = chunks(settled)
    assert stored[:3] == ["a1", "b2", "a3"] and sorted(stored[3:]) == [f"c{n}" for n in range(6)]
    assert json.loads(settled.body[0]["MsgContent"]["Data"])["isFinished"] == 1


async def test_an_interrupt_through_one_instance_ends_the_stream_the_other_writes(instances):
    a, b = instances
    opened = await a.open_stream(APP, ROBOT, "bob", [], False)
    await a.append_stream(APP, ROBOT, "bob", opened.msg_key, "partial", False)
    interrupt = elements._custom({"chatbotPlugin": 2, "src": 22, "msgKey": opened.msg_key})
    await b.send(APP, Outgoing("bob", ROBOT, interrupt, msg_random=7))
    with pytest.raises(MessagingError) as refused:
        await a.append_stream(APP, ROBOT, "bob", opened.msg_key, "more", False)
    assert refused.value.problem is Problem.STREAM_ENDED
    stored = await a.repository.get_message(APP, opened.msg_key)
    assert stored.stream_state == "finished" and chunks(stored) == ["partial"]


async def test_the_same_message_through_both_at_once_is_stored_once(instances):
    a, b = instances
    body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}]
    results = await asyncio.gather(*(
        service.send(APP, Outgoing("admin", "bob", body, msg_random=42, msg_seq=9)) for service in (a, b, a, b)
    ))
    assert sum(new for _, new in results) == 1
    assert len({message.msg_key for message, _ in results}) == 1
