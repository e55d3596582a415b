"""Two processes writing one PostgreSQL database: each test opens the database twice (two
engines with their own connection pools, as two Parley processes have) and races them."""

import asyncio
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from parley.engine.faces import Face
from parley.ids import IdGenerator
from parley.store.apps import AppRepository
from parley.store.cloudbase import BotRow, CloudBaseRepository, FeedbackRow
from parley.store.conversations import ConversationRepository, RecordRow, SessionOwnedElsewhere
from parley.store.database import Database
from parley.store.id_nodes import DeadNodeTurns, IdNodeClaim
from parley.store.messaging import MessageRow, MessagingRepository
from parley.store.tables import records, sessions

ADP = Face.ADP


@pytest.fixture
async def two_processes(postgres):
    """The same new PostgreSQL database opened by two 'processes', and an application on it."""
    url = postgres.new_database()
    first, second = Database(url), Database(url)
    await first.migrate()
    app = await AppRepository(first.engine).create("shared", {"name": "shared"})
    yield first, second, app.id
    await first.close()
    await second.close()


def question(app_id: int, text: str, generator: IdGenerator) -> RecordRow:
    now = int(time.time() * 1000)
    return RecordRow(id=generator.next(), session_pk=0, app_id=app_id, is_from_self=True, content=text,
                     status="success", created_at=now, finished_at=now)


async def test_two_processes_opening_the_same_new_sessions_at_once_make_one_session_each_and_keep_every_question(two_processes):
    first, second, app_id = two_processes
    ids = IdGenerator(1), IdGenerator(2)
    repositories = [ConversationRepository(database.engine, only_writer=False) for database in (first, second)]

    async def turn(process: int, session: int, n: int):
        repository = repositories[process]
        return await repository.begin_turn(app_id, f"s{session}", f"v{session}",
                                           question(app_id, f"{process}-{session}-{n}", ids[process]), 10, face=ADP)

    # 40 new sessions, each opened by both processes at once, three turns from each.
    started = await asyncio.gather(*(turn(p, s, n) for n in range(3) for s in range(40) for p in (0, 1)))
    await asyncio.gather(*(stored for _, _, stored in started))

    by_name: dict[str, set[int]] = {}
    for session, _, _ in started:
        by_name.setdefault(session.session_id, set()).add(session.id)
    assert all(len(pks) == 1 for pks in by_name.values()), by_name
    async with first.engine.connect() as conn:
        stored_sessions = (await conn.execute(sa.select(sessions.c.session_id, sessions.c.id))).all()
        contents = sorted((await conn.execute(sa.select(records.c.content))).scalars())
    assert sorted(stored_sessions) == sorted((name, next(iter(pks))) for name, pks in by_name.items())
    assert contents == sorted(f"{p}-{s}-{n}" for n in range(3) for s in range(40) for p in (0, 1))
    for repository in repositories:
        await repository.aclose()


async def test_a_session_two_visitors_open_at_once_in_two_processes_belongs_to_one(two_processes):
    first, second, app_id = two_processes
    ids = IdGenerator(1), IdGenerator(2)
    repositories = [ConversationRepository(database.engine, only_writer=False) for database in (first, second)]
    for round_ in range(10):
        outcomes = await asyncio.gather(
            *(repositories[p].begin_turn(app_id, f"contested-{round_}", f"visitor-{p}",
                                         question(app_id, f"{round_}-{p}", ids[p]), 10, face=ADP) for p in (0, 1)),
            return_exceptions=True,
        )
        owners = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(owners) == 1 and len(refused) == 1, outcomes
        assert isinstance(refused[0], SessionOwnedElsewhere)
        await owners[0][2]
    for repository in repositories:
        await repository.aclose()


async def test_processes_claim_different_id_nodes_even_when_told_the_same_one(two_processes):
    first, second, _ = two_processes
    generators = IdGenerator(7), IdGenerator(7)
    claims = IdNodeClaim(first.engine, generators[0]), IdNodeClaim(second.engine, generators[1])
    nodes = [await claims[0].claim(preferred=7), await claims[1].claim(preferred=7)]
    assert nodes[0] == 7 and nodes[1] != 7
    assert [g.node for g in generators] == nodes
    minted = [g.next() for g in generators for _ in range(5000)]
    assert len(set(minted)) == len(minted)

    await claims[0].aclose()  # a process that stops frees its node for the next one
    third = IdNodeClaim(second.engine, IdGenerator())
    assert await third.claim(preferred=7) == 7
    await third.aclose()
    await claims[1].aclose()


async def test_a_claim_whose_connection_was_lost_takes_a_node_again(two_processes, postgres):
    first, second, _ = two_processes
    claim = IdNodeClaim(first.engine, IdGenerator(), check_every=3600)
    node = await claim.claim(preferred=3)
    database = first.url.rsplit("/", 1)[1]
    postgres.psql(database, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 3")
    rival = IdNodeClaim(second.engine, IdGenerator())
    assert await rival.claim(preferred=3) == 3  # the node was free once the connection died
    await claim.check()
    assert claim.node != node
    await rival.aclose()
    await claim.aclose()


async def test_turns_whose_id_node_no_live_process_holds_are_orphans(two_processes):
    """What the reaper closes without a shared bus (engine/reaper.py): a turn is an orphan when no
    process holds its id's node any more, or when the process holding it now took it after the turn began."""
    first, second, _ = two_processes
    dying, living = IdNodeClaim(first.engine, IdGenerator(), check_every=3600), IdNodeClaim(second.engine, IdGenerator())
    await dying.claim(preferred=11)
    await living.claim(preferred=12)
    dead_turn, live_turn = IdGenerator(11).next(), IdGenerator(12).next()
    holders = DeadNodeTurns(second.engine, living)
    assert await holders.orphans([dead_turn, live_turn]) == []

    await dying.aclose()  # its process stopped: PostgreSQL let the lock go
    assert await holders.orphans([dead_turn, live_turn]) == [dead_turn]

    heir = IdNodeClaim(first.engine, IdGenerator())
    await heir.claim(preferred=11)  # the dead process's node, taken by a new process
    await asyncio.sleep(0.002)
    own_turn = IdGenerator(11).next()
    assert await DeadNodeTurns(first.engine, heir).orphans([dead_turn, own_turn, live_turn]) == [dead_turn]
    assert await holders.orphans([dead_turn, own_turn, live_turn]) == []  # the other process cannot tell: the heir sweeps it
    await heir.aclose()
    await living.aclose()


async def test_a_message_sent_twice_at_once_through_two_processes_is_stored_once(two_processes):
    first, second, _ = two_processes
    stores = MessagingRepository(first.engine), MessagingRepository(second.engine)
    now = int(time.time() * 1000)
    ids = IdGenerator(1), IdGenerator(2)

    def message(process: int, n: int) -> MessageRow:
        seq = 1000 + n
        return MessageRow(
            id=ids[process].next(), sdkappid=1400000001, from_account="alice", to_account="bob", msg_seq=seq,
            msg_random=n, msg_time=now // 1000 + process, msg_key=f"{seq}_{n}_{now // 1000 + process}",
            body=[{"MsgType": "TIMTextElem", "MsgContent": {"Text": f"hi {n}"}}], created_at=now, updated_at=now,
            dedup_key=f"alice|{seq}|{n}|crc",
        )

    outcomes = await asyncio.gather(
        *(stores[p].insert_unless_duplicate(message(p, n), now - 120_000) for n in range(30) for p in (0, 1))
    )
    assert sum(o is None for o in outcomes) == 30  # one of each pair stored, the other got it back
    async with first.engine.connect() as conn:
        assert (await conn.scalar(sa.text("SELECT count(*) FROM im_messages"))) == 30


async def test_a_cloudbase_bot_and_a_feedback_saved_at_once_by_two_processes_are_each_one_row(two_processes):
    first, second, app_id = two_processes
    stores = CloudBaseRepository(first.engine), CloudBaseRepository(second.engine)
    now = int(time.time() * 1000)
    bots = [BotRow(bot_id=f"bot-{p}", app_id=app_id, enabled=True, search_enable=False, multi_conversation=True,
                   need_recommend=False, background=f"bot {p}", created_at=now, updated_at=now) for p in (0, 1)]
    await asyncio.gather(*(stores[p].save_bot(bots[p]) for p in (0, 1)))
    saved = await stores[0].bot_for_app(app_id)
    assert saved is not None and saved.bot_id in {"bot-0", "bot-1"}

    feedback = FeedbackRow(id=1, app_id=app_id, record_id=42, sender="alice", type="upvote", rating=5, comment="",
                           input="q", ai_answer="a", created_at=now, updated_at=now)
    for round_ in range(10):
        await asyncio.gather(*(stores[p].save_feedback(replace(feedback, id=100 * round_ + p, comment=f"{round_}-{p}"))
                               for p in (0, 1)))
    async with first.engine.connect() as conn:
        assert (await conn.scalar(sa.text("SELECT count(*) FROM cloudbase_feedback"))) == 1
