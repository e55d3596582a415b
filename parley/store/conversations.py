"""Sessions and the message records in them.

An answer's record exists from the moment its question is stored: it is written with the
question, in progress (`IN_PROGRESS`), grows by checkpoints while the answer streams and is
replaced by the finished answer. A process that dies leaves records in progress behind;
`close_unfinished` closes them at the next start (`INTERRUPTED`, with the last checkpoint's text),
or, with several instances, `close_interrupted` once the dead holder's lease expired.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SqlAlchemyIntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.ids import new_id
from parley.store.database import DEFAULT_BUSY_TIMEOUT, is_busy
from parley.store.known_sessions import KnownSessions
from parley.store.row_writers import RowWriter, row_writer_for
from parley.store.tables import records, sessions

IN_PROGRESS = "streaming"
"""The status of an answer being written: its record holds the last checkpoint."""
INTERRUPTED = "interrupted"
"""The status of an answer whose process died before it finished (see close_unfinished)."""
INTERRUPTED_MESSAGE = "interrupted: the server stopped before the answer was finished"


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    app_id: int
    session_id: str
    visitor_biz_id: str
    created_at: int
    face: str
    """The face that owns the session: (app_id, face, session_id) names it."""


SessionKey = tuple[int, str, str]
"""(app id, face, session id): what names a session."""


def _key(row: SessionRow) -> SessionKey:
    return (row.app_id, row.face, row.session_id)


@dataclass(slots=True)
class RecordRow:
    """One message: a visitor's question (`is_from_self`) or the bot's answer."""

    id: int
    session_pk: int
    app_id: int
    is_from_self: bool
    content: str
    status: str
    created_at: int
    request_id: str = ""
    related_record_id: int | None = None
    reasoning: str = ""
    reply_method: int = 0
    model: str = ""
    is_evil: bool = False
    is_llm_generated: bool = False
    token_stat: dict[str, Any] | None = None
    file_infos: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = field(default=None)
    error_code: int | None = None
    error_message: str | None = None
    score: int = 0
    finished_at: int | None = None


class SessionOwnedElsewhere(Exception):
    """The session exists and belongs to another visitor."""


def _record(row: Any) -> RecordRow:
    return RecordRow(**{name: getattr(row, name) for name in RecordRow.__slots__})


def _values(record: RecordRow) -> dict[str, Any]:
    return {name: getattr(record, name) for name in RecordRow.__slots__}


Unit = list[tuple[sa.Table, dict[str, Any]]]
"""Rows written together: in the same transaction, and retried together."""


class GroupWriter:
    """Group commit: rows added while a transaction is being written go in the next one.

    Under load this turns one commit per answer into one per batch; alone, a row is written
    at once. Rows are written in the order they were added, each table's rows of a batch in
    one statement (sessions before the records that refer to them); a later row with the
    same primary key replaces an earlier one (an answer's checkpoints). If a batch breaks a
    constraint, its units are written one by one, so one bad row fails alone; any other
    failure (the database locked past its timeout, a full disk) fails the whole batch at
    once. A caller that stops waiting does not stop its row being written.
    """

    def __init__(self, writer: RowWriter, max_batch: int = 500) -> None:
        self._writer = writer
        self._max_batch = max_batch
        self._pending: list[tuple[Unit, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, table: sa.Table, row: dict[str, Any]) -> asyncio.Future[None]:
        """Queues a row; the future is done once it is committed (or holds the error)."""
        return self.add_unit([(table, row)])

    def add_unit(self, unit: Unit) -> asyncio.Future[None]:
        """Queues rows that are stored together or not at all."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return done

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._write(batch)
            except Exception as exc:
                if not _broke_a_constraint(exc):
                    for _, done in batch:
                        _settle(done, exc)
                    continue
                for item in batch:
                    try:
                        await self._write([item])
                    except Exception as error:
                        _settle(item[1], error)
                    else:
                        _settle(item[1], None)
            else:
                for _, done in batch:
                    _settle(done, None)

    async def _write(self, batch: list[tuple[Unit, asyncio.Future[None]]]) -> None:
        by_table: dict[sa.Table, dict[Any, dict[str, Any]]] = {sessions: {}, records: {}}  # sessions first
        for unit, _ in batch:
            for table, row in unit:
                by_table[table][row["id"]] = row  # the last row for a key wins
        await self._writer.write({table: list(rows.values()) for table, rows in by_table.items()})

    async def aclose(self) -> None:
        """Waits for the rows already added, then closes the writer."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        await self._writer.aclose()


def _broke_a_constraint(exc: Exception) -> bool:
    return isinstance(exc, (sqlite3.IntegrityError, SqlAlchemyIntegrityError))


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # retrieved: a turn whose client left may never await it


def _interrupted_stat(stat: dict[str, Any] | None) -> dict[str, Any] | None:
    """Token statistics of an interrupted answer: the procedures still running marked failed
    (none when it was never checkpointed; history calls show the status from them)."""
    if not stat:
        return {"elapsed": 0, "token_count": 0, "procedures": []}
    procedures = [
        {**p, "status": "failed"} if p.get("status") == "processing" else p for p in stat.get("procedures") or []
    ]
    return {**stat, "procedures": procedures}


async def _interrupt(conn: Any, record: RecordRow) -> bool:
    """Marks `record` INTERRUPTED (updating it in place) if it is still in progress; whether it was."""
    values = {
        "status": INTERRUPTED,
        "error_message": INTERRUPTED_MESSAGE,
        "token_stat": _interrupted_stat(record.token_stat),
        "finished_at": record.finished_at or record.created_at or int(time.time() * 1000),
    }
    result = await conn.execute(
        records.update().where((records.c.id == record.id) & (records.c.status == IN_PROGRESS)).values(**values)
    )
    if result.rowcount != 1:
        return False
    for name, value in values.items():
        setattr(record, name, value)
    return True


class _Coalesced:
    """Calls asked while one batch runs share the next batch: `run(group)` gets every waiting
    key with the value of its first caller, and answers by key (a key it leaves out: None)."""

    def __init__(self, run: Callable[[dict[SessionKey, Any]], Awaitable[dict[SessionKey, SessionRow]]],
                 max_batch: int) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: dict[SessionKey, tuple[Any, list[asyncio.Future[SessionRow | None]]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: SessionKey, value: Any = None) -> SessionRow | None:
        answer: asyncio.Future[SessionRow | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, (value, []))[1].append(answer)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        while self._pending:
            keys = sorted(self._pending)[: self._max_batch]  # in key order: see SessionOpener
            waiting = {key: self._pending.pop(key) for key in keys}
            try:
                found = await self._run({key: value for key, (value, _) in waiting.items()})
            except Exception as exc:
                found, error = {}, exc
            else:
                error = None
            for key, (_, futures) in waiting.items():
                for future in futures:
                    if future.done():
                        continue
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(found.get(key))


class SessionReader:
    """Coalesced session lookups: those asked while one query runs share the next query.

    Under load most turns open a session the cache does not hold; one query per waiting
    group instead of one per turn keeps the database's thread hops off the critical path.
    """

    def __init__(self, engine: AsyncEngine, max_batch: int = 400) -> None:
        self._engine = engine
        self._lookups = _Coalesced(self._read, max_batch)  # session keys: three SQL parameters each

    async def get(self, key: SessionKey) -> SessionRow | None:
        return await self._lookups.get(key)

    async def _read(self, group: dict[SessionKey, Any]) -> dict[SessionKey, SessionRow]:
        async with self._engine.connect() as conn:
            return _sessions_by_key(await conn.execute(_sessions_named(list(group))))


class SessionOpener:
    """Coalesced "create the session unless it exists, and give me the one that does", for a
    PostgreSQL database other processes write too: two processes opening the same new session
    at once must end up with one session, and each must see who owns it before its turn goes on.

    One statement per waiting group, outside any transaction (each round trip counts on a turn's
    way to its first byte): a multi-row INSERT .. ON CONFLICT DO NOTHING RETURNING the rows it
    made, and in the same statement a read of the keys that were already there. The INSERT
    waits for another transaction creating the same key and then leaves it; a row that other
    transaction committed after this statement began is not in the read, so such keys (rare) are
    read again by a statement of their own. Rows are inserted in key order, so that two processes'
    overlapping groups wait for each other in one order, not a deadlock.
    """

    ATTEMPTS = 5
    """Tries of a group that hits a deadlock or serialization failure before its callers get the error."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 400) -> None:
        self._engine = engine
        self._opens = _Coalesced(self._open_group, max_batch)  # six SQL parameters a row

    async def open(self, proposed: SessionRow) -> SessionRow:
        """The session named like `proposed`: `proposed` itself if this call created it."""
        row = await self._opens.get(_key(proposed), proposed)
        if row is None:  # cannot be: the INSERT left a row for every key
            raise RuntimeError(f"session {_key(proposed)} was neither created nor found")
        return row

    async def _open_group(self, group: dict[SessionKey, SessionRow]) -> dict[SessionKey, SessionRow]:
        rows = [{name: getattr(row, name) for name in SessionRow.__slots__} for row in group.values()]
        keys = list(group)
        for attempt in range(self.ATTEMPTS):
            try:
                async with self._engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    found = _sessions_by_key(await conn.execute(_create_or_read(rows, keys)))
                    missing = [key for key in keys if key not in found]
                    if missing:  # created by a transaction that committed after the statement began
                        found.update(_sessions_by_key(await conn.execute(_sessions_named(missing))))
                    return found
            except Exception as exc:
                if attempt + 1 == self.ATTEMPTS or not is_busy(exc):
                    raise
        raise AssertionError("unreachable")


def _sessions_named(keys: list[SessionKey]) -> Any:
    return sessions.select().where(sa.tuple_(sessions.c.app_id, sessions.c.face, sessions.c.session_id).in_(keys))


def _create_or_read(rows: list[dict[str, Any]], keys: list[SessionKey]) -> Any:
    from sqlalchemy.dialects.postgresql import insert

    created = (
        insert(sessions).values(rows)
        .on_conflict_do_nothing(index_elements=["app_id", "face", "session_id"])
        .returning(*sessions.c)
        .cte("created")
    )
    return sa.select(created).union_all(_sessions_named(keys))


def _sessions_by_key(result: Any) -> dict[SessionKey, SessionRow]:
    return {
        (r.app_id, r.face, r.session_id): SessionRow(r.id, r.app_id, r.session_id, r.visitor_biz_id, r.created_at, r.face)
        for r in result
    }


class SessionCache:
    """The most recently used sessions, by (app id, face, session id).

    A session row never changes once created, so a cached row stays true; the cache spares
    each turn of a known session a read, and lets a new session be created inside the group
    commit instead of a transaction of its own. Bounded so that memory stays flat.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._rows: OrderedDict[SessionKey, SessionRow] = OrderedDict()

    def get(self, key: SessionKey) -> SessionRow | None:
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def add(self, row: SessionRow) -> SessionRow:
        """Caches `row` unless a row for its key is already there; returns the cached one."""
        key = _key(row)
        existing = self._rows.get(key)
        if existing is not None:
            return existing
        self._rows[key] = row
        if len(self._rows) > self._size:
            self._rows.popitem(last=False)
        return row

    def discard(self, row: SessionRow) -> None:
        if self._rows.get(_key(row)) is row:
            del self._rows[_key(row)]


class ConversationRepository:
    def __init__(
        self, engine: AsyncEngine, known_sessions: KnownSessions | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT, *, only_writer: bool = True,
    ) -> None:
        """`known_sessions`, when this process creates every session in the database (SQLite),
        spares new sessions the read that would prove them new. `busy_timeout`: seconds a
        write waits for another writer's lock before it fails. `only_writer`: no other process
        writes the database (SQLite); otherwise (PostgreSQL) a new session is created, or the
        one another process created at the same moment is found, before the turn goes on."""
        if known_sessions is not None and not only_writer:
            raise ValueError("known_sessions holds only where this process is the only writer")
        self._engine = engine
        self._writer = GroupWriter(row_writer_for(engine, busy_timeout))
        self._sessions = SessionCache()
        self._reader = SessionReader(engine)
        self._opener = None if only_writer else SessionOpener(engine)
        self._known = known_sessions

    async def begin_turn(
        self, app_id: int, session_id: str, visitor_biz_id: str, question: RecordRow, history_records: int,
        answer: RecordRow | None = None,
        *, face: str,
    ) -> tuple[SessionRow, list[RecordRow], asyncio.Future[None]]:
        """Opens (or creates) the session of `face`, reads its recent history and queues the question.

        A new session and the question go into the group commit: the turn need not wait for
        a write before it starts, and the returned future says when the question is stored
        (the answer is recorded only after it). `answer`, the answer's record in progress,
        is stored in the same transaction as the question, so that a stored question always
        has an answer record. Raises SessionOwnedElsewhere, and writes nothing, when another
        visitor owns the session.
        """
        key = (app_id, face, session_id)
        session = self._sessions.get(key)
        known = session is not None
        if session is None and self._opener is not None:  # other processes create sessions too
            proposed = SessionRow(new_id(), app_id, session_id, visitor_biz_id, question.created_at, face)
            session = self._sessions.add(await self._opener.open(proposed))
            known = session.id != proposed.id
        elif session is None:
            if self._known is None or self._known.may_exist(key):
                session = await self._reader.get(key)
            known = session is not None
            if session is None:
                session = SessionRow(new_id(), app_id, session_id, visitor_biz_id, question.created_at, face)
            chosen = self._sessions.add(session)  # a concurrent first turn of the same session may have won
            if chosen is session and not known:
                self._created(session)
            known = known or chosen is not session
            session = chosen
        if session.visitor_biz_id != visitor_biz_id:
            raise SessionOwnedElsewhere(session_id)
        history: list[RecordRow] = []
        if known and history_records > 0:
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    records.select()
                    .where(records.c.session_pk == session.id)
                    .order_by(records.c.id.desc())
                    .limit(history_records)
                )
                history = [_record(r) for r in rows][::-1]
        question.session_pk = session.id
        unit: Unit = [(records, _values(question))]
        if answer is not None:
            answer.session_pk = session.id
            unit.append((records, _values(answer)))
        return session, history, self._writer.add_unit(unit)

    def _created(self, session: SessionRow) -> None:
        if self._known is not None:
            self._known.add(_key(session))
        stored = self._writer.add(sessions, {name: getattr(session, name) for name in SessionRow.__slots__})

        def forget_if_failed(done: asyncio.Future[None]) -> None:
            if done.exception() is not None:  # e.g. created at the same moment by another process
                self._sessions.discard(session)

        stored.add_done_callback(forget_if_failed)

    async def add_record(self, record: RecordRow) -> None:
        """Stores (or replaces) a record durably; concurrent calls share one transaction (group commit)."""
        await self._writer.add(records, _values(record))

    def checkpoint(self, record: RecordRow) -> asyncio.Future[None]:
        """Queues a record in progress to replace its stored version, without waiting: the
        future is done once it is committed. Only for a record whose question is stored."""
        return self._writer.add(records, _values(record))

    async def close_unfinished(self) -> int:
        """Closes every answer left in progress as INTERRUPTED, with its last checkpoint's text
        and token statistics; returns how many. Run at start-up, before any turn.

        On SQLite one process serves a database file, so at start-up every record in progress
        belongs to a process that died. Several instances sharing a database cannot tell a dead
        writer from a slow one that way: with a shared bus, each turn's holder keeps a lease on
        it there, and every instance closes from time to time only the answers whose lease
        expired (`in_progress`, `close_interrupted`; see engine/reaper.py).
        """
        async with self._engine.begin() as conn:
            rows = [_record(r) for r in await conn.execute(records.select().where(records.c.status == IN_PROGRESS))]
            for record in rows:
                await _interrupt(conn, record)
        return len(rows)

    async def in_progress(self, opened_before: int, limit: int = 500) -> list[int]:
        """Ids of answers still in progress whose record was opened before `opened_before` (ms), oldest first."""
        query = (
            sa.select(records.c.id)
            .where((records.c.status == IN_PROGRESS) & (records.c.created_at < opened_before))
            .order_by(records.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [row.id for row in await conn.execute(query)]

    async def close_interrupted(self, record_id: int) -> RecordRow | None:
        """Closes one answer in progress as INTERRUPTED, as close_unfinished does; returns the
        record as closed, or None when it was no longer in progress. The update is conditional,
        so that of several instances closing it at once exactly one does."""
        async with self._engine.begin() as conn:
            row = (await conn.execute(records.select().where(records.c.id == record_id))).first()
            if row is None or row.status != IN_PROGRESS:
                return None
            record = _record(row)
            return record if await _interrupt(conn, record) else None

    async def aclose(self) -> None:
        await self._writer.aclose()

    async def get_session(self, app_id: int, session_id: str, *, face: str) -> SessionRow | None:
        key = (app_id, face, session_id)
        return self._sessions.get(key) or await self._reader.get(key)

    async def get_record(self, record_id: int, *, face: str | None = None) -> RecordRow | None:
        """The record; with `face`, only when its session belongs to that face (record ids are
        time-ordered and can be guessed, so a face must not reach another face's records by id)."""
        query = records.select().where(records.c.id == record_id)
        if face is not None:
            query = query.where(
                records.c.session_pk.in_(sa.select(sessions.c.id).where(sessions.c.face == face))
            )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row else None

    async def list_records(self, session_pk: int, count: int, before_id: int | None = None) -> list[RecordRow]:
        """Up to `count` records older than `before_id` (or the newest), oldest first."""
        query = records.select().where(records.c.session_pk == session_pk)
        if before_id is not None:
            query = query.where(records.c.id < before_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.order_by(records.c.id.desc()).limit(count))
            return [_record(r) for r in rows][::-1]

    async def set_score(self, record_id: int, score: int, extra: dict[str, Any] | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(records.update().where(records.c.id == record_id).values(score=score, extra=extra))
