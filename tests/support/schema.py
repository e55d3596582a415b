"""The schema of a database as the engines report it, in terms both engines share, so that two
databases' schemas compare equal exactly when the migrations made the same tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from parley.store.database import Database

# Each engine's own search index over segments, derived from them by triggers: SQLite's FTS5
# table (and its shadow tables), PostgreSQL's pgvector and full-text table (migration 0009).
SEARCH_INDEX_TABLES = ("kb_segments_fts", "kb_segments_search")

# Reflected types, from the most to the least specific, named as the tables declare them.
_KINDS = [sa.BigInteger, sa.SmallInteger, sa.Integer, sa.Boolean, sa.JSON, sa.LargeBinary, sa.Text, sa.String]


def _kind(column_type: sa.types.TypeEngine) -> str:
    for kind in _KINDS:
        if isinstance(column_type, kind):
            length = getattr(column_type, "length", None) if kind is sa.String else None
            return kind.__name__ + (f"({length})" if length else "")
    return type(column_type).__name__


def schema_of(connection: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    schema: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if table.startswith(SEARCH_INDEX_TABLES):
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


async def migrated_schema(url: str) -> dict[str, Any]:
    """The schema of the database at `url` once Parley has migrated it."""
    database = Database(url)
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            return await conn.run_sync(schema_of)
    finally:
        await database.close()
