"""The conversation store against a real database, SQLite and PostgreSQL: sessions created inside
the group commit, the session cache and coalesced lookups, the question stored before its answer."""

import asyncio
import sqlite3
import time

import pytest

from parley.engine.faces import Face
from parley.ids import new_id
from parley.store.apps import AppRepository
from parley.store.conversations import ConversationRepository, RecordRow, SessionOwnedElsewhere
from parley.store.database import Database
from parley.store.known_sessions import KnownSessions

ADP = Face.ADP


@pytest.fixture
async def store(database_url):
    database = Database(database_url)
    await database.migrate()
    app = await AppRepository(database.engine).create("chat", {"name": "chat"})
    yield database, app.id
    await database.close()


def question(app_id: int, text: str) -> RecordRow:
    now = int(time.time() * 1000)
    return RecordRow(id=new_id(), session_pk=0, app_id=app_id, is_from_self=True, content=text,
                     status="success", created_at=now, finished_at=now)


def answer(app_id: int, session_pk: int, text: str) -> RecordRow:
    record = question(app_id, text)
    record.is_from_self, record.session_pk = False, session_pk
    return record


async def test_first_turns_of_one_new_session_at_once_share_one_session(store):
    database, app_id = store
    repository = ConversationRepository(database.engine)
    results = await asyncio.gather(
        *(repository.begin_turn(app_id, "s-1", "alice", question(app_id, f"q{i}"), 10, face=ADP) for i in range(20))
    )
    await asyncio.gather(*(stored for _, _, stored in results))
    assert len({session.id for session, _, _ in results}) == 1
    fresh = ConversationRepository(database.engine)  # nothing cached: what the database holds
    session = await fresh.get_session(app_id, "s-1", face=ADP)
    assert session is not None and session.id == results[0][0].id
    assert sorted(r.content for r in await fresh.list_records(session.id, 50)) == sorted(f"q{i}" for i in range(20))


async def test_history_and_ownership_hold_across_processes_sharing_the_database(store):
    database, app_id = store
    first = ConversationRepository(database.engine)
    session, history, stored = await first.begin_turn(app_id, "s-2", "bob", question(app_id, "hello"), 10, face=ADP)
    await stored
    await first.add_record(answer(app_id, session.id, "hi bob"))
    assert history == []

    second = ConversationRepository(database.engine)  # a restarted server: cold cache
    with pytest.raises(SessionOwnedElsewhere):
        await second.begin_turn(app_id, "s-2", "mallory", question(app_id, "let me in"), 10, face=ADP)
    again, history, stored = await second.begin_turn(app_id, "s-2", "bob", question(app_id, "again"), 10, face=ADP)
    await stored
    assert again.id == session.id
    assert [r.content for r in history] == ["hello", "hi bob"]
    assert [r.content for r in await second.list_records(session.id, 10)] == ["hello", "hi bob", "again"]


async def test_a_refused_turn_writes_nothing(store):
    database, app_id = store
    repository = ConversationRepository(database.engine)
    _, _, stored = await repository.begin_turn(app_id, "s-3", "carol", question(app_id, "mine"), 0, face=ADP)
    await stored
    with pytest.raises(SessionOwnedElsewhere):
        await repository.begin_turn(app_id, "s-3", "dave", question(app_id, "not mine"), 0, face=ADP)
    session = await repository.get_session(app_id, "s-3", face=ADP)
    assert [r.content for r in await repository.list_records(session.id, 10)] == ["mine"]


async def test_a_record_that_cannot_be_stored_fails_alone(store):
    database, app_id = store
    repository = ConversationRepository(database.engine)
    session, _, stored = await repository.begin_turn(app_id, "s-4", "erin", question(app_id, "q"), 0, face=ADP)
    await stored
    good = answer(app_id, session.id, "fine")
    orphan = answer(app_id, 123456789, "no such session")  # the foreign key refuses it
    results = await asyncio.gather(
        repository.add_record(good), repository.add_record(orphan), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], Exception)
    assert [r.content for r in await repository.list_records(session.id, 10)] == ["q", "fine"]


async def test_known_sessions_spare_new_sessions_the_read_and_still_find_old_ones(store):
    database, app_id = store
    first = ConversationRepository(database.engine, await KnownSessions.load(database.engine))
    session, _, stored = await first.begin_turn(app_id, "s-5", "frank", question(app_id, "first"), 10, face=ADP)
    await stored
    await first.add_record(answer(app_id, session.id, "reply"))

    known = await KnownSessions.load(database.engine)  # a restart: loaded from the database
    assert known.may_exist((app_id, ADP, "s-5"))
    second = ConversationRepository(database.engine, known)
    again, history, stored = await second.begin_turn(app_id, "s-5", "frank", question(app_id, "second"), 10, face=ADP)
    await stored
    assert again.id == session.id and [r.content for r in history] == ["first", "reply"]
    with pytest.raises(SessionOwnedElsewhere):
        await second.begin_turn(app_id, "s-5", "grace", question(app_id, "mine now?"), 10, face=ADP)

    fresh = [f"new-{i}" for i in range(200)]
    assert sum(known.may_exist((app_id, ADP, s)) for s in fresh) < 20  # about 1 % false positives
    for session_id in fresh[:3]:
        created, history, stored = await second.begin_turn(app_id, session_id, "henry", question(app_id, "hi"), 10, face=ADP)
        await stored
        assert history == [] and known.may_exist((app_id, ADP, session_id))


def in_progress(app_id: int, question_row: RecordRow) -> RecordRow:
    record = answer(app_id, 0, "")
    record.status, record.related_record_id, record.finished_at = "streaming", question_row.id, None
    return record


async def test_the_answer_in_progress_is_stored_with_its_question_and_grows_by_checkpoints(store):
    database, app_id = store
    repository = ConversationRepository(database.engine)
    asked = question(app_id, "q")
    opened = in_progress(app_id, asked)
    session, _, stored = await repository.begin_turn(app_id, "s-6", "ivy", asked, 0, opened, face=ADP)
    await stored
    assert [(r.content, r.status) for r in await repository.list_records(session.id, 10)] == [("q", "success"), ("", "streaming")]
    # Checkpoints queued at once share a batch; the last one wins.
    opened.content = "Hel"
    first = repository.checkpoint(RecordRow(**{name: getattr(opened, name) for name in RecordRow.__slots__}))
    opened.content = "Hello"
    second = repository.checkpoint(opened)
    await asyncio.gather(first, second)
    assert (await repository.get_record(opened.id)).content == "Hello"
    opened.content, opened.status = "Hello there", "success"
    await repository.add_record(opened)
    assert [(r.content, r.status) for r in await repository.list_records(session.id, 10)] == [
        ("q", "success"), ("Hello there", "success")
    ]


async def test_answers_left_in_progress_are_closed_as_interrupted_at_the_next_start(store):
    database, app_id = store
    repository = ConversationRepository(database.engine)
    checkpointed, never = question(app_id, "one"), question(app_id, "two")
    first, second = in_progress(app_id, checkpointed), in_progress(app_id, never)
    for asked, opened in ((checkpointed, first), (never, second)):
        _, _, stored = await repository.begin_turn(app_id, f"s-{asked.content}", "jo", asked, 0, opened, face=ADP)
        await stored
    first.content, first.token_stat = "half an ans", {"elapsed": 9, "procedures": [{"name": "large_language_model", "status": "processing"}]}
    await repository.checkpoint(first)

    restarted = ConversationRepository(database.engine)
    assert await restarted.close_unfinished() == 2
    assert await restarted.close_unfinished() == 0
    closed, bare = await restarted.get_record(first.id), await restarted.get_record(second.id)
    assert (closed.status, closed.content) == ("interrupted", "half an ans")
    assert closed.error_message.startswith("interrupted") and closed.token_stat["procedures"][0]["status"] == "failed"
    assert (bare.status, bare.content, bare.token_stat["procedures"]) == ("interrupted", "", [])


async def test_of_two_instances_closing_one_answer_left_in_progress_one_does(store):
    """The lease-based reaper's store side (engine/reaper.py): only answers opened before a time
    are candidates, and the closing update is conditional."""
    database, app_id = store
    repository = ConversationRepository(database.engine)
    asked = question(app_id, "three")
    opened = in_progress(app_id, asked)
    _, _, stored = await repository.begin_turn(app_id, "s-reaped", "jo", asked, 0, opened, face=ADP)
    await stored
    assert await repository.in_progress(opened.created_at) == []  # opened just now: not yet a candidate
    assert opened.id in await repository.in_progress(opened.created_at + 1)
    other = ConversationRepository(database.engine)
    closed = await asyncio.gather(repository.close_interrupted(opened.id), other.close_interrupted(opened.id))
    assert sorted(c is not None for c in closed) == [False, True]
    record = next(c for c in closed if c is not None)
    assert (record.id, record.status, record.error_message.startswith("interrupted")) == (opened.id, "interrupted", True)
    assert (await repository.get_record(opened.id)).status == "interrupted"
    assert opened.id not in await repository.in_progress(opened.created_at + 1)
    assert await repository.close_interrupted(asked.id) is None  # a question: never in progress


class FailingWriter:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    async def write(self, rows) -> None:
        self.calls += 1
        raise self.error

    async def aclose(self) -> None:
        pass


async def test_a_locked_database_fails_the_whole_batch_at_once():
    """Retrying row by row helps only against a row that breaks a constraint; a lock held
    past the timeout would make every row wait the timeout again."""
    from parley.store.conversations import GroupWriter
    from parley.store.tables import records

    locked = FailingWriter(sqlite3.OperationalError("database is locked"))
    writer = GroupWriter(locked)
    results = await asyncio.gather(*(writer.add(records, {"id": i}) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results) and locked.calls == 1
    broken = FailingWriter(sqlite3.IntegrityError("FOREIGN KEY constraint failed"))
    writer = GroupWriter(broken)
    await asyncio.gather(*(writer.add(records, {"id": i}) for i in range(5)), return_exceptions=True)
    assert broken.calls == 1 + 5
