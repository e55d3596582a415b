"""Opening the database and bringing its schema up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x7061726C6579  # "parley": the advisory lock key migrations are run under
PAGE_CACHE_KIB = 512
"""SQLite page cache per connection."""
DEFAULT_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite statement waits for another connection's write lock before it fails."""
DEFAULT_POOL_SIZE = 20
"""Connections to a server database a process keeps, and as many again at a peak."""
_BUSY_TEXTS = ("database is locked", "database table is locked", "database is busy")
_BUSY_SQLSTATES = {"55P03", "40001", "40P01"}  # lock not available, serialization failure, deadlock


class Database:
    """The async engine, shared by every repository."""

    def __init__(self, url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.engine: AsyncEngine = create_async_engine(url, **_engine_options(url, busy_timeout, pool_size))
        if self.engine.dialect.name == "sqlite":

            def on_connect(dbapi_connection, _record) -> None:
                tune_sqlite_connection(dbapi_connection, busy_timeout)

            event.listen(self.engine.sync_engine, "connect", on_connect)

    async def migrate(self) -> None:
        """Runs every Alembic migration not yet applied.

        On PostgreSQL the migrations run under a transaction-level advisory lock, so that several
        instances (or `parley serve --workers N`'s workers) starting at once on the same database
        migrate it once: the others wait, then find nothing left to do. SQLite takes one writer
        at a time anyway."""
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")  # each feature adds its own branch off 0001


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` says the database stayed locked by someone else past the wait allowed
    (SQLite's "database is locked" after the busy timeout; a server database's lock timeout,
    serialization failure or deadlock; no pooled connection free in time): the same call may
    well succeed a moment later, so faces answer "busy, try again" rather than an internal error."""
    if isinstance(exc, sa.exc.TimeoutError):  # the connection pool's wait ran out
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.OperationalError):
        return any(text in str(exc).lower() for text in _BUSY_TEXTS)
    if getattr(exc, "sqlstate", None) in _BUSY_SQLSTATES or getattr(exc, "pgcode", None) in _BUSY_SQLSTATES:
        return True
    return isinstance(exc, sa.exc.OperationalError) and any(text in str(exc).lower() for text in _BUSY_TEXTS)


def upsert(table: sa.Table, dialect_name: str, key: list[str], keep: tuple[str, ...] = ()) -> Any:
    """INSERT that, for a row whose `key` columns are already stored, updates the stored row's
    other columns (but not those in `keep`) instead, in one statement: two processes writing
    the same row at once both succeed (SQLite and PostgreSQL)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    updated = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in key and c.name not in keep}
    return statement.on_conflict_do_update(index_elements=key, set_=updated)


def _engine_options(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, pool_size: int = DEFAULT_POOL_SIZE) -> dict:
    # JSON columns (token stats, references) are written with every answer: orjson, not json.
    json = {"json_serializer": _json_text, "json_deserializer": orjson.loads}
    # A burst of turns queues for a connection; it must wait rather than fail.
    if url.startswith("sqlite"):
        # Writes go through one group-commit writer (SQLite takes one writer at a time);
        # a pool of readers keeps reads concurrent.
        return {"pool_size": 8, "max_overflow": 8, "pool_timeout": 300, "connect_args": {"timeout": busy_timeout}, **json}
    options = {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": 300, "pool_pre_ping": True, **json}
    if url.startswith("postgresql+asyncpg"):
        # As on SQLite, a statement waits for another transaction's lock at most busy_timeout, then
        # fails as busy (55P03), rather than hanging a turn behind, say, an operator's long transaction.
        options["connect_args"] = {"server_settings": {"lock_timeout": str(int(busy_timeout * 1000))}}
    return options


def _json_text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def tune_sqlite_connection(dbapi_connection, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
    """The settings every connection to Parley's SQLite file runs with (the engine's pool and
    the group commit's own writer, store.row_writers)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    # Each pooled connection keeps its own page cache in the process's memory, filling up to
    # cache_size as the database grows: at SQLite's default (2 MiB) that was a steady RSS climb
    # over a 10-minute soak (+7.6 %); at 512 KiB it levels off (+2.7 %). The hot pages (b-tree
    # interiors, the ends where records are appended) fit; the rest comes from the OS's cache.
    cursor.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
    cursor.close()
