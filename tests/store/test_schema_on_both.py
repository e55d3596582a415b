"""The migrations make the same schema on SQLite and on PostgreSQL: one history, two engines."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from parley.store.database import Database

# SQLite's keyword index over segments (FTS5 and its shadow tables): PostgreSQL has its own
# full-text search, which keeps no tables of its own.
SQLITE_ONLY_PREFIX = "kb_segments_fts"

# Reflected types, from the most to the least specific, named as the tables declare them.
_KINDS = [sa.BigInteger, sa.SmallInteger, sa.Integer, sa.Boolean, sa.JSON, sa.LargeBinary, sa.Text, sa.String]


def _kind(column_type: sa.types.TypeEngine) -> str:
    for kind in _KINDS:
        if isinstance(column_type, kind):
            length = getattr(column_type, "length", None) if kind is sa.String else None
            return kind.__name__ + (f"({length})" if length else "")
    return type(column_type).__name__


def _schema(connection: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    schema: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if table.startswith(SQLITE_ONLY_PREFIX):
            continue
        # A unique constraint and a unique index do the same work; engines report either.
        unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
        unique |= {tuple(i["column_names"]) for i in inspector.get_indexes(table) if i["unique"]}
        schema[table] = {
            "columns": {c["name"]: (_kind(c["type"]), c["nullable"]) for c in inspector.get_columns(table)},
            "primary key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "foreign keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in inspector.get_foreign_keys(table)
            ),
            "unique": sorted(unique),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
                if not i["unique"] and not i.get("duplicates_constraint")
            ),
        }
    return schema


async def _migrated_schema(url: str) -> dict[str, Any]:
    database = Database(url)
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await database.close()


async def test_the_migrations_make_the_same_schema_on_sqlite_and_postgresql(tmp_path, postgres):
    on_sqlite = await _migrated_schema(f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}")
    on_postgresql = await _migrated_schema(postgres.new_database())
    assert "sessions" in on_sqlite and "kb_segments" in on_sqlite  # the history ran to its heads
    assert on_postgresql == on_sqlite
