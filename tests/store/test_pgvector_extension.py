"""pgvector on a production PostgreSQL: the migration creates the extension when the database
user may, and otherwise stops with a message that says what to ask the administrator for."""

from __future__ import annotations

import uuid

import pytest

from parley.store.database import Database


async def test_the_migration_creates_pgvector_when_it_may(postgres):
    name = "parley_" + uuid.uuid4().hex[:12]
    postgres.psql("postgres", f"CREATE DATABASE {name}")  # no extension yet
    database = Database(f"postgresql+asyncpg://{postgres.user}@127.0.0.1:{postgres.port}/{name}")
    try:
        await database.migrate()
    finally:
        await database.close()
    assert postgres.psql(name, "SELECT extname FROM pg_extension WHERE extname = 'vector'").strip() == "vector"
    assert postgres.psql(name, "SELECT count(*) FROM kb_segments_search").strip() == "0"


async def test_a_user_who_may_not_create_pgvector_is_told_what_to_ask_for(postgres):
    suffix = uuid.uuid4().hex[:12]
    role, name = f"plain_{suffix}", f"parley_{suffix}"
    postgres.psql("postgres", f"CREATE ROLE {role} LOGIN")
    postgres.psql("postgres", f"CREATE DATABASE {name} OWNER {role}")  # may make tables, not extensions
    database = Database(f"postgresql+asyncpg://{role}@127.0.0.1:{postgres.port}/{name}")
    try:
        with pytest.raises(RuntimeError, match=rf"have a superuser run `CREATE EXTENSION vector;` in that database") as raised:
            await database.migrate()
        assert name in str(raised.value)
    finally:
        await database.close()
    # Nothing half-made is left behind: the whole migration rolled back.
    assert postgres.psql(name, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").strip() == "0"
