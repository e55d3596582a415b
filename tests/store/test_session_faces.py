"""Sessions belong to a face: one name in two faces is two sessions, and the migration that
introduced faces gives existing sessions the face that made them."""

import time

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from parley.engine.faces import Face
from parley.ids import new_id
from parley.store.apps import AppRepository
from parley.store.conversations import ConversationRepository, RecordRow
from parley.store.database import MIGRATIONS, Database
from parley.store.known_sessions import KnownSessions


def question(app_id: int, text: str) -> RecordRow:
    now = int(time.time() * 1000)
    return RecordRow(id=new_id(), session_pk=0, app_id=app_id, is_from_self=True, content=text,
                     status="success", created_at=now, finished_at=now)


async def test_one_name_in_two_faces_is_two_sessions_with_their_own_history(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await database.migrate()
    app_id = (await AppRepository(database.engine).create("chat", {"name": "chat"})).id
    try:
        repository = ConversationRepository(database.engine, await KnownSessions.load(database.engine))
        # The CloudBase face names its conversation; an ADP client picks the same id and visitor.
        cloudbase, _, stored = await repository.begin_turn(
            app_id, "123456789", "cloudbase:7", question(app_id, "my secret"), 10, face=Face.CLOUDBASE
        )
        await stored
        adp, history, stored = await repository.begin_turn(
            app_id, "123456789", "cloudbase:7", question(app_id, "what did I say?"), 10, face=Face.ADP
        )
        await stored
        assert adp.id != cloudbase.id and history == []
        for fresh in (ConversationRepository(database.engine), repository):  # from the database and from the cache
            found = await fresh.get_session(app_id, "123456789", face=Face.CLOUDBASE)
            assert found is not None and found.id == cloudbase.id
            assert [r.content for r in await fresh.list_records(found.id, 10)] == ["my secret"]
        assert (await repository.get_session(app_id, "123456789", face=Face.IM)) is None
    finally:
        await database.close()


def _alembic(connection: sa.Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_the_migration_gives_existing_sessions_their_face_and_keeps_their_records(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite'}")
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_alembic, "0005")  # sessions without a face, CloudBase conversations
            await conn.execute(sa.text(
                "INSERT INTO apps (id, name, app_key, config, deleted, created_at, updated_at) "
                "VALUES (1, 'chat', 'key', '{}', 0, 0, 0)"
            ))
            await conn.execute(sa.text(
                "INSERT INTO cloudbase_conversations (conversation_id, app_id, owner, title, is_default, default_for, created_at, updated_at) "
                "VALUES ('555', 1, 'cloudbase:7', '', 0, NULL, 0, 0)"
            ))
            sessions = [(10, "555", "cloudbase:7"), (11, "im-" + "a" * 40, "im:1400000001:alice"),
                        (12, "visitor-chosen", "v1"), (13, "556", "cloudbase:7")]
            for pk, session_id, visitor in sessions:
                await conn.execute(sa.text(
                    "INSERT INTO sessions (id, app_id, session_id, visitor_biz_id, created_at) VALUES (:pk, 1, :sid, :visitor, 0)"
                ), {"pk": pk, "sid": session_id, "visitor": visitor})
                await conn.execute(sa.text(
                    "INSERT INTO records (id, session_pk, app_id, request_id, is_from_self, content, reasoning, reply_method, "
                    "status, model, is_evil, is_llm_generated, score, created_at) "
                    "VALUES (:id, :pk, 1, '', 1, 'hello', '', 0, 'success', '', 0, 0, 0, 0)"
                ), {"id": pk * 100, "pk": pk})
        await database.migrate()
        async with database.engine.connect() as conn:
            faces = dict((await conn.execute(sa.text("SELECT id, face FROM sessions"))).all())
            assert faces == {10: "cloudbase", 11: "im", 12: "adp", 13: "adp"}  # 556 is no conversation of theirs
            assert (await conn.execute(sa.text("SELECT count(*) FROM records"))).scalar_one() == 4
            assert (await conn.execute(sa.text("PRAGMA foreign_key_check"))).all() == []
        repository = ConversationRepository(database.engine)
        _, history, stored = await repository.begin_turn(1, "555", "cloudbase:7", question(1, "again"), 10, face=Face.CLOUDBASE)
        await stored
        assert [r.content for r in history] == ["hello"]
    finally:
        await database.close()
