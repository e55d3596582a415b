"""The migrations make the same schema on SQLite and on PostgreSQL: one history, two engines."""

from tests.support.schema import migrated_schema


async def test_the_migrations_make_the_same_schema_on_sqlite_and_postgresql(tmp_path, postgres):
    on_sqlite = await migrated_schema(f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}")
    on_postgresql = await migrated_schema(postgres.new_database())
    assert "sessions" in on_sqlite and "kb_segments" in on_sqlite  # the history ran to its heads
    assert on_postgresql == on_sqlite
