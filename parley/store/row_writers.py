"""The last step of the group commit: a batch of rows written in one transaction.

A row whose primary key is already stored replaces the stored one (an upsert): that is how
an answer's checkpoints, and at last the finished answer, overwrite its record in progress.

One implementation per kind of database, chosen by `row_writer_for`:

- `SqliteRowWriter` for a SQLite file: one thread with its own plain `sqlite3` connection
  writes the whole batch, reached in a single hop from the event loop.
- `EngineRowWriter` for everything else (PostgreSQL through asyncpg, in-memory SQLite):
  the shared SQLAlchemy async engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.database import DEFAULT_BUSY_TIMEOUT, tune_sqlite_connection

Rows = Mapping[sa.Table, Sequence[dict[str, Any]]]
"""Rows by table, in the order the tables are to be written (referenced tables first); at most
one row per primary key in a batch."""


class RowWriter(Protocol):
    async def write(self, rows: Rows) -> None:
        """Inserts (or, for a primary key already stored, replaces) every row in one transaction:
        all of them are stored, or none (and it raises)."""

    async def aclose(self) -> None: ...


def row_writer_for(engine: AsyncEngine, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> RowWriter:
    """`busy_timeout`: seconds a SQLite write waits for another writer's lock before it fails."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return SqliteRowWriter(url.database, engine.dialect, busy_timeout)
    return EngineRowWriter(engine)


class EngineRowWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._upserts: dict[sa.Table, Any] = {}

    async def write(self, rows: Rows) -> None:
        async with self._engine.begin() as conn:
            for table, table_rows in rows.items():
                if table_rows:  # an INSERT with no rows would insert one of defaults
                    await conn.execute(self._upsert(table), list(table_rows))

    def _upsert(self, table: sa.Table) -> Any:
        statement = self._upserts.get(table)
        if statement is None:
            statement = self._upserts[table] = _upsert_statement(table, self._engine.dialect.name)
        return statement

    async def aclose(self) -> None:
        pass


class SqliteRowWriter:
    """Writes each batch on one thread that owns a plain `sqlite3` connection to the file.

    Through the async engine a batch made about six round trips to aiosqlite's thread (pool
    checkout, a cursor, one statement per table, the commit, the pool's rollback on return),
    each a cross-thread wake-up and a hand-over of the GIL. In a rig at ~600 one-token turns
    a second, writing the question and the answer was half of a turn's CPU: 1.54 ms per turn,
    0.76 ms with the writes left out. Here a batch is one hop, and its statements run in C
    (same rig: about 1.1-1.2 ms per one-token turn; 20-token turns at 32 streams 2.7-2.8 ms
    instead of 3.2-3.5).

    Values go through each column's SQLAlchemy bind processor (JSON columns with the engine's
    serializer), so rows read back through the engine exactly as if it had written them.
    """

    def __init__(self, path: str, dialect: Dialect, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._path = path
        self._dialect = dialect
        self._busy_timeout = busy_timeout
        self._inserts: dict[sa.Table, _Insert] = {}
        self._thread: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None  # made and used on the thread only

    async def write(self, rows: Rows) -> None:
        # The parameters are made here: the thread then needs the GIL as little as possible.
        work: list[tuple[_Insert, list[tuple[Any, ...]]]] = []
        for table, table_rows in rows.items():
            if table_rows:
                insert = self._insert_for(table)
                work.append((insert, [insert.parameters(row) for row in table_rows]))
        if not work:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-sqlite-writer")
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write_now, work)

    async def aclose(self) -> None:
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        await asyncio.get_running_loop().run_in_executor(thread, self._close_now)
        thread.shutdown(wait=True)

    def _insert_for(self, table: sa.Table) -> _Insert:
        insert = self._inserts.get(table)
        if insert is None:
            insert = self._inserts[table] = _Insert(table, self._dialect)
        return insert

    def _write_now(self, work: list[tuple[_Insert, list[tuple[Any, ...]]]]) -> None:
        """One multi-row INSERT per table (as many rows as SQLite's parameter limit allows), not
        one statement per row: SQLite runs each statement without the GIL, and a thread that
        must take the GIL back after every row waits for the event loop's thread to give it up
        each time. With executemany (a statement per row) the benchmark's 1,024 concurrent
        turns made 320 turns/s, against 666 through the engine's multi-row INSERT."""
        connection = self._connection
        if connection is None:
            connection = self._connection = self._connect()
        limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        connection.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another writer
        try:
            for insert, parameters in work:
                per_statement = max(1, limit // insert.width)
                for start in range(0, len(parameters), per_statement):
                    chunk = parameters[start : start + per_statement]
                    connection.execute(insert.sql_for(len(chunk)), list(chain.from_iterable(chunk)))
            connection.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): a second
            # ROLLBACK would raise and hide the first error.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: the transactions are the explicit BEGIN/COMMIT above.
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        tune_sqlite_connection(connection, self._busy_timeout)
        return connection

    def _close_now(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Insert:
    """A table's upsert of every column, and the function that turns a row into its parameters."""

    def __init__(self, table: sa.Table, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        columns = list(table.columns)
        self.width = len(columns)
        self._head = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
            f"({', '.join(quote(column.name) for column in columns)}) VALUES "
        )
        key = [quote(column.name) for column in table.primary_key.columns]
        updated = [quote(column.name) for column in columns if not column.primary_key]
        self._tail = (
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in updated)}"
            if key and updated else ""
        )
        self._row = f"({', '.join('?' for _ in columns)})"
        self._columns: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (column.name, _scalar_default(column), column.type.bind_processor(dialect)) for column in columns
        ]

    def sql_for(self, rows: int) -> str:
        """The statement inserting `rows` rows."""
        return self._head + ", ".join([self._row] * rows) + self._tail

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            process(row.get(name, default)) if process is not None else row.get(name, default)
            for name, default, process in self._columns
        )


def _scalar_default(column: sa.Column[Any]) -> Any:
    default = column.default
    return default.arg if default is not None and default.is_scalar else None  # type: ignore[attr-defined]


def _upsert_statement(table: sa.Table, dialect_name: str) -> Any:
    """INSERT, replacing the row with the same primary key (SQLite and PostgreSQL)."""
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return table.insert()
    statement = insert(table)
    key = [column.name for column in table.primary_key.columns]
    updated = {column.name: statement.excluded[column.name] for column in table.columns if not column.primary_key}
    return statement.on_conflict_do_update(index_elements=key, set_=updated)
