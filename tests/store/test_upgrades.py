"""A database made by every earlier state of the schema upgrades cleanly, on SQLite and PostgreSQL.

The earlier states come from the revision graph itself, so that a new migration is covered
without touching this file: each revision with only what it needs, and each release (every
revision up to one, in the order their ids number them). A database at that state gets rows
written as that schema had them (plain SQL on the reflected tables), is migrated by Parley, and
must still read them back through Parley's own repositories, with the schema of a database
migrated from empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command, util
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.apps import AppRepository
from parley.store.cloudbase import CloudBaseRepository
from parley.store.conversations import ConversationRepository
from parley.store.database import MIGRATIONS, Database
from parley.store.knowledge import KnowledgeRepository
from parley.store.knowledge_labels import AttributeRepository
from parley.store.knowledge_scope import EVERYTHING
from parley.store.knowledge_search import Fts5KeywordSearch, PostgresKeywordSearch, PostgresVectorSearch
from parley.store.workflows import WorkflowRunRepository
from tests.support.schema import SEARCH_INDEX_TABLES, migrated_schema, schema_of

APP, RELEASE, SESSION, CB_SESSION, QUESTION, ANSWER = 1001, 1002, 1003, 1004, 1005, 1006
DOC, SEGMENT, STAGED, QA, QA_QUESTION, ATTRIBUTE, LABEL = 2001, 2002, 2003, 2004, 2005, 2006, 2007
NOW = 1_760_000_000_000
VECTOR = bytes(range(16))

# One representative row per table, with every column any revision gave it; a row is written
# with the columns its table has at the state under test. A table with no row here fails the
# test, so that a new table gets one.
ROWS: dict[str, list[dict[str, Any]]] = {
    "apps": [dict(id=APP, name="help desk", app_key="key-1", config={"name": "help desk"}, deleted=False,
                  created_at=NOW, updated_at=NOW)],
    "releases": [dict(id=RELEASE, app_id=APP, version=1, config={"name": "help desk", "model": "m"},
                      description="first", created_at=NOW)],
    "sessions": [
        dict(id=SESSION, app_id=APP, face="adp", session_id="s-1", visitor_biz_id="v-1", created_at=NOW),
        dict(id=CB_SESSION, app_id=APP, face="cloudbase", session_id="conv-1", visitor_biz_id="owner-1",
             created_at=NOW),
    ],
    "records": [
        dict(id=QUESTION, session_pk=SESSION, app_id=APP, request_id="r-1", is_from_self=True,
             related_record_id=None, content="你好, where is my order?", reasoning="", reply_method=0,
             status="success", model="", is_evil=False, is_llm_generated=False, token_stat=None, file_infos=None,
             extra=None, error_code=None, error_message=None, score=0, created_at=NOW, finished_at=NOW),
        dict(id=ANSWER, session_pk=SESSION, app_id=APP, request_id="r-1", is_from_self=False,
             related_record_id=QUESTION, content="On its way.", reasoning="looked it up", reply_method=1,
             status="success", model="m", is_evil=False, is_llm_generated=True,
             token_stat={"used_count": 12, "procedures": []}, file_infos=[], extra={"k": "v"}, error_code=None,
             error_message=None, score=1, created_at=NOW + 1, finished_at=NOW + 2),
    ],
    "kb_documents": [dict(id=DOC, app_id=APP, name="faq.md", file_type="md", size=42, content_hash="0" * 64,
                          file_path="docs/faq.md", url="", title="FAQ", attr_range=1, status="ready", reason="",
                          live_generation=1, pending_generation=0, segment_count=1, created_at=NOW,
                          updated_at=NOW)],
    "kb_segments": [dict(seq=1, id=SEGMENT, app_id=APP, doc_id=DOC, generation=1, ordinal=0,
                         text="Orders ship in two days.", tokens="orders ship two days", page=None, sheet=None,
                         headings="FAQ", start=0, end=24, vector=VECTOR)],
    "kb_staged_segments": [dict(id=STAGED, app_id=APP, doc_id=DOC, generation=2, ordinal=0, text="draft",
                                tokens="draft", page=1, sheet="s", headings="", start=0, end=5, vector=VECTOR)],
    "kb_qa": [dict(id=QA, app_id=APP, question="Refunds?", answer="Within 30 days.", attr_range=1,
                   created_at=NOW, updated_at=NOW)],
    "kb_qa_questions": [dict(id=QA_QUESTION, qa_id=QA, app_id=APP, text="Refunds?", is_primary=True,
                             vector=VECTOR)],
    "kb_labels": [dict(item_id=DOC, attribute="region", value="north", app_id=APP)],
    "kb_attributes": [dict(id=ATTRIBUTE, app_id=APP, key="region", name="Region", created_at=NOW,
                           updated_at=NOW)],
    "kb_attribute_labels": [dict(id=LABEL, attr_id=ATTRIBUTE, app_id=APP, name="north", similar=["N"])],
    "realtime_docs": [dict(id=3001, app_id=APP, session_id="s-1", file_name="a.txt", file_type="txt", size=3,
                           object_key="k/a.txt", file_url="", status="ready", text="abc", error_message=None,
                           created_at=NOW)],
    "im_accounts": [dict(sdkappid=1400000001, user_id="alice", internal_id=4001, nick="Alice", face_url="",
                         self_signature="", is_robot=False, robot_active=False, created_at=NOW, updated_at=NOW)],
    "im_messages": [dict(id=4002, sdkappid=1400000001, from_account="alice", to_account="@RBT#1", msg_seq=1,
                         msg_random=7, msg_time=1_760_000_000, msg_key="1_7_1760000000",
                         body=[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}], cloud_custom_data="",
                         sender_sees=True, online_only=False, stream_state="", dedup_key=None, created_at=NOW,
                         updated_at=NOW)],
    "cloudbase_bots": [dict(bot_id="bot-1", app_id=APP, enabled=True, search_enable=False,
                            multi_conversation=True, need_recommend=False, background="", created_at=NOW,
                            updated_at=NOW)],
    "cloudbase_keys": [dict(id=5001, app_id=APP, kind="api", name="k", key_hash="1" * 64, key_prefix="sk-",
                            created_at=NOW, revoked_at=None)],
    "cloudbase_conversations": [dict(conversation_id="conv-1", app_id=APP, owner="owner-1", title="Orders",
                                     is_default=False, default_for=None, created_at=NOW, updated_at=NOW)],
    "cloudbase_feedback": [dict(id=5002, app_id=APP, record_id=ANSWER, sender="owner-1", type="upvote", rating=5,
                                comment="", tags=["fast"], input="", ai_answer="", created_at=NOW,
                                updated_at=NOW)],
    "workflow_runs": [dict(id=6001, app_id=APP, release_version=1, session_id="s-1", record_id=ANSWER,
                           workflow_name="menu", status="suspended", state={"run_id": "6001", "waiting": "pick"},
                           error="", created_at=NOW, updated_at=NOW)],
}
UNWRITTEN = {"alembic_version"}


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _below(revision: Script) -> tuple[str, ...]:
    """The revisions `revision` builds on (its down revisions and dependencies)."""
    return util.to_tuple(revision.down_revision, default=()) + util.to_tuple(revision.dependencies, default=())


def _heads(revisions: Iterable[Script]) -> tuple[str, ...]:
    """The revisions of a closed set that no other of them builds on."""
    revisions = list(revisions)
    below = {down for r in revisions for down in _below(r)}
    return tuple(sorted(r.revision for r in revisions if r.revision not in below))


def earlier_states() -> list[tuple[str, ...]]:
    """Each state of the schema short of today's heads, named by its heads."""
    script = ScriptDirectory.from_config(_config())
    in_order = sorted(script.walk_revisions(), key=lambda r: r.revision)  # ids number the history
    states = set()
    for number, revision in enumerate(in_order):
        released = in_order[: number + 1]
        assert all(down in {r.revision for r in released} for down in _below(revision)), (
            f"{revision.revision} builds on a later revision: the ids no longer number the history"
        )
        states.add(_heads(script.iterate_revisions(revision.revision, "base")))  # it and what it needs
        states.add(_heads(released))  # a release: every revision up to it
    states.discard(tuple(sorted(script.get_heads())))
    return sorted(states)


def _upgrade_to(connection: sa.Connection, heads: tuple[str, ...]) -> None:
    for head in heads:
        command.upgrade(_config(connection), head)


def _write_rows(connection: sa.Connection) -> set[str]:
    """Writes the representative rows into the tables as they are now; returns the tables."""
    tables = sa.MetaData()
    tables.reflect(connection, only=lambda name, _: not name.startswith(SEARCH_INDEX_TABLES))
    written = set()
    for table in tables.sorted_tables:
        if table.name in UNWRITTEN:
            continue
        assert table.name in ROWS, f"give table {table.name} a representative row in ROWS"
        columns = set(table.c.keys())
        connection.execute(table.insert(), [{k: v for k, v in row.items() if k in columns} for row in ROWS[table.name]])
        written.add(table.name)
    return written


def _stored_keys(connection: sa.Connection, names: set[str]) -> dict[str, list[tuple]]:
    tables = sa.MetaData()
    tables.reflect(connection, only=sorted(names))
    found = {}
    for name in names:
        key = list(tables.tables[name].primary_key.columns)
        found[name] = sorted(tuple(row) for row in connection.execute(sa.select(*key)))
    return found


def _expected_keys(names: set[str]) -> dict[str, list[tuple]]:
    return {name: sorted(_key_of(name, row) for row in ROWS[name]) for name in names}


def _key_of(name: str, row: dict[str, Any]) -> tuple:
    return {
        "kb_labels": lambda: (row["item_id"], row["attribute"], row["value"]),
        "kb_segments": lambda: (row["seq"],),
        "im_accounts": lambda: (row["sdkappid"], row["user_id"]),
        "cloudbase_bots": lambda: (row["bot_id"],),
        "cloudbase_conversations": lambda: (row["conversation_id"],),
    }.get(name, lambda: (row["id"],))()


@pytest.fixture(scope="module")
def schemas_from_empty() -> dict[str, Any]:
    """The schema an empty database migrates to, per engine (measured once per module)."""
    return {}


@pytest.mark.parametrize("state", earlier_states(), ids="+".join)
async def test_a_database_of_an_earlier_schema_upgrades_and_keeps_its_rows(
    state: tuple[str, ...], database_url: str, schemas_from_empty: dict[str, Any],
    request: pytest.FixtureRequest, tmp_path: Path,
):
    database = Database(database_url)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, state)
        async with database.engine.begin() as conn:
            written = await conn.run_sync(_write_rows)

        await database.migrate()

        async with database.engine.connect() as conn:
            assert await conn.run_sync(_stored_keys, written) == _expected_keys(written)
            schema = await conn.run_sync(schema_of)
        await _check_through_repositories(database, written)
    finally:
        await database.close()
    dialect = database.engine.dialect.name
    if dialect not in schemas_from_empty:
        empty = (f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}" if dialect == "sqlite"
                 else request.getfixturevalue("postgres").new_database())
        schemas_from_empty[dialect] = await migrated_schema(empty)
    assert schema == schemas_from_empty[dialect]


async def _check_through_repositories(database: Database, written: set[str]) -> None:
    engine = database.engine
    apps = AppRepository(engine)
    app = await apps.get(APP)
    assert app is not None and app.name == "help desk" and app.config == {"name": "help desk"}
    release = await apps.latest_release(APP)
    assert release is not None and (release.version, release.config) == (1, {"name": "help desk", "model": "m"})

    conversations = ConversationRepository(engine)
    try:
        session = await conversations.get_session(APP, "s-1", face="adp")
        assert session is not None and session.id == SESSION
        question, answer = await conversations.list_records(SESSION, 10)
        assert (question.id, question.content, question.is_from_self) == (QUESTION, "你好, where is my order?", True)
        assert (answer.related_record_id, answer.content, answer.token_stat, answer.extra, answer.score) == (
            QUESTION, "On its way.", {"used_count": 12, "procedures": []}, {"k": "v"}, 1
        )
        # A session made for a CloudBase conversation belongs to the CloudBase face.
        expected_face = "cloudbase" if "cloudbase_conversations" in written else "adp"
        other = await conversations.get_session(APP, "conv-1", face=expected_face)
        assert other is not None and other.id == CB_SESSION
    finally:
        await conversations.aclose()

    if "cloudbase_conversations" in written:
        conversation = await CloudBaseRepository(engine).get_conversation("conv-1")
        assert conversation is not None and conversation.title == "Orders"
    if "kb_documents" in written:
        knowledge = KnowledgeRepository(engine)
        [document] = await knowledge.list_documents(APP)
        assert (document.id, document.name, document.labels) == (DOC, "faq.md", {"region": ["north"]})
        [segment] = await knowledge.segments_by_id(APP, [SEGMENT])
        assert (segment.text, segment.vector, segment.doc_title) == ("Orders ship in two days.", VECTOR, "FAQ")
        [qa] = await knowledge.list_qa(APP)
        assert (qa.id, qa.question, qa.answer) == (QA, "Refunds?", "Within 30 days.")
        await _check_segment_search(engine)
    if "workflow_runs" in written:
        run = await WorkflowRunRepository(engine).waiting(APP, "s-1")
        assert run is not None and (run.id, run.state, run.record_id) == (6001, {"run_id": "6001", "waiting": "pick"}, ANSWER)
    if "kb_attributes" in written:
        [attribute] = await AttributeRepository(engine).list(APP)
        assert (attribute.key, [label.name for label in attribute.labels]) == ("region", ["north"])


async def _check_segment_search(engine: AsyncEngine) -> None:
    """A segment stored before the engine's search index existed is found through it."""
    if engine.dialect.name == "postgresql":
        [(seq, _)] = await PostgresKeywordSearch(engine).search(APP, ["ship"], 10, EVERYTHING)
        vector = np.frombuffer(VECTOR, "<f2").astype(np.float32)
        [(segment, similarity)] = await PostgresVectorSearch(engine, len(vector)).nearest(APP, vector, 10, EVERYTHING)
        assert (seq, segment.id) == (1, SEGMENT) and similarity == pytest.approx(1.0, abs=1e-3)
    else:
        [(seq, _)] = await Fts5KeywordSearch(engine).search(APP, ["ship"], 10, EVERYTHING)
        assert seq == 1
