"""The group commit's writers against real SQLite databases: the SQLite file writer stores
exactly what the SQLAlchemy engine would, and a batch is all or nothing."""

import sqlite3
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parley.ids import new_id
from parley.store.apps import AppRepository
from parley.store.database import Database
from parley.store.row_writers import EngineRowWriter, SqliteRowWriter, row_writer_for
from parley.store.tables import records, sessions


@pytest.fixture
async def database(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
async def writer(database):
    writer = row_writer_for(database.engine)
    yield writer
    await writer.aclose()


async def new_session(database: Database) -> dict:
    app = await AppRepository(database.engine).create(f"chat-{new_id()}", {"name": "chat"})
    return {"id": new_id(), "app_id": app.id, "face": "adp", "session_id": f"s-{new_id()}", "visitor_biz_id": "v",
            "created_at": int(time.time() * 1000)}


def record(session: dict, **fields) -> dict:
    # No request_id, model or score: the columns' defaults apply.
    return {"id": new_id(), "session_pk": session["id"], "app_id": session["app_id"], "is_from_self": False,
            "related_record_id": None, "content": "你好", "reasoning": "", "reply_method": 1, "status": "success",
            "is_evil": False, "is_llm_generated": True, "token_stat": {"procedures": [{"name": "x", "count": 1}]},
            "file_infos": None, "extra": {"quote": [1, 2]}, "error_code": None, "error_message": None,
            "created_at": session["created_at"], "finished_at": None, **fields}


async def stored(database: Database, record_id: int) -> dict:
    async with database.engine.connect() as conn:
        row = (await conn.execute(records.select().where(records.c.id == record_id))).one()
    return {key: value for key, value in row._mapping.items() if key != "id"}


async def test_the_sqlite_writer_stores_what_the_engine_would(database, writer):
    assert isinstance(writer, SqliteRowWriter)
    session = await new_session(database)
    by_engine, by_thread = record(session), record(session)
    await writer.write({sessions: [session], records: [by_thread]})
    await EngineRowWriter(database.engine).write({records: [by_engine]})
    assert await stored(database, by_thread["id"]) == await stored(database, by_engine["id"])
    got = await stored(database, by_thread["id"])
    assert got["token_stat"] == {"procedures": [{"name": "x", "count": 1}]}
    assert got["is_llm_generated"] is True and got["request_id"] == "" and got["score"] == 0


async def test_a_batch_with_a_bad_row_stores_nothing_and_the_writer_goes_on(database, writer):
    session = await new_session(database)
    good = record(session)
    orphan = record(session, session_pk=new_id())  # no such session: the foreign key refuses it
    with pytest.raises(sqlite3.IntegrityError):
        await writer.write({sessions: [session], records: [good, orphan]})
    async with database.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(sessions).where(sessions.c.id == session["id"]))).scalar() == 0
        assert (await conn.execute(sa.select(sa.func.count()).select_from(records).where(records.c.id == good["id"]))).scalar() == 0
    await writer.write({sessions: [session], records: [good]})
    assert (await stored(database, good["id"]))["content"] == "你好"


async def test_databases_without_a_file_go_through_the_engine():
    engine = create_async_engine("sqlite+aiosqlite://")
    try:
        assert isinstance(row_writer_for(engine), EngineRowWriter)
    finally:
        await engine.dispose()


async def test_a_batch_larger_than_one_statement_is_written_whole(database, writer):
    session = await new_session(database)
    many = [record(session, content=f"answer {i}") for i in range(2000)]  # 44,000 parameters
    await writer.write({sessions: [session], records: many})
    async with database.engine.connect() as conn:
        contents = (await conn.execute(sa.select(records.c.content).where(records.c.session_pk == session["id"]))).scalars().all()
    assert sorted(contents) == sorted(f"answer {i}" for i in range(2000))


async def test_the_engine_writer_skips_tables_without_rows(database):
    session = await new_session(database)
    writer = EngineRowWriter(database.engine)
    await writer.write({sessions: [session], records: []})
    alone = record(session)
    await writer.write({sessions: [], records: [alone]})  # no session row to insert this time
    assert (await stored(database, alone["id"]))["content"] == "你好"


@pytest.mark.parametrize("kind", ["sqlite", "engine"])
async def test_a_row_with_a_stored_primary_key_replaces_it(database, writer, kind):
    """An answer's checkpoints, and at last the finished answer, overwrite its record."""
    session = await new_session(database)
    upsert = writer if kind == "sqlite" else EngineRowWriter(database.engine)
    draft = record(session, status="streaming", content="par")
    await upsert.write({sessions: [session], records: [draft]})
    await upsert.write({records: [{**draft, "content": "partial", "status": "success", "finished_at": 5}]})
    row = await stored(database, draft["id"])
    assert (row["content"], row["status"], row["finished_at"]) == ("partial", "success", 5)
