"""Sessions and the message records in them."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.ids import new_id
from parley.store.tables import records, sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    app_id: int
    session_id: str
    visitor_biz_id: str
    created_at: int


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


class RecordWriter:
    """Group commit: records added while a transaction is being written go in the next one.

    Under load this turns one commit per answer into one per batch; alone, a record is
    written at once. A caller that stops waiting does not stop its record being written.
    """

    def __init__(self, engine: AsyncEngine, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def add(self, record: RecordRow) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(({name: getattr(record, name) for name in RecordRow.__slots__}, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(records.insert(), [row for row, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class ConversationRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = RecordWriter(engine)

    async def begin_turn(
        self, app_id: int, session_id: str, visitor_biz_id: str, question: RecordRow, history_records: int
    ) -> tuple[SessionRow, list[RecordRow]]:
        """Opens (or creates) the session, reads its recent history and stores the question.

        Reads share a pooled connection; the question joins the group commit. A session is
        created in a transaction of its own, once. Raises SessionOwnedElsewhere, and writes
        nothing, when another visitor owns the session.
        """
        async with self._engine.connect() as conn:
            session = await self._session(conn, app_id, session_id)
            history: list[RecordRow] = []
            if session is not None and session.visitor_biz_id == visitor_biz_id and history_records > 0:
                rows = await conn.execute(
                    records.select()
                    .where(records.c.session_pk == session.id)
                    .order_by(records.c.id.desc())
                    .limit(history_records)
                )
                history = [_record(r) for r in rows][::-1]
        if session is None:
            session = await self._create_session(app_id, session_id, visitor_biz_id, question.created_at)
        if session.visitor_biz_id != visitor_biz_id:
            raise SessionOwnedElsewhere(session_id)
        question.session_pk = session.id
        await self._writer.add(question)
        return session, history

    async def _create_session(self, app_id: int, session_id: str, visitor_biz_id: str, now: int) -> SessionRow:
        session = SessionRow(new_id(), app_id, session_id, visitor_biz_id, now)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sessions.insert().values(**asdict(session)))
        except IntegrityError:  # created by a concurrent first turn: whoever won owns it
            async with self._engine.connect() as conn:
                existing = await self._session(conn, app_id, session_id)
            assert existing is not None
            return existing
        return session

    async def add_record(self, record: RecordRow) -> None:
        """Stores a record durably; concurrent calls share one transaction (group commit)."""
        await self._writer.add(record)

    async def get_session(self, app_id: int, session_id: str) -> SessionRow | None:
        async with self._engine.connect() as conn:
            return await self._session(conn, app_id, session_id)

    async def get_record(self, record_id: int) -> RecordRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(records.select().where(records.c.id == record_id))).first()
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

    @staticmethod
    async def _session(conn: Any, app_id: int, session_id: str) -> SessionRow | None:
        row = (
            await conn.execute(
                sessions.select().where((sessions.c.app_id == app_id) & (sessions.c.session_id == session_id))
            )
        ).first()
        return SessionRow(row.id, row.app_id, row.session_id, row.visitor_biz_id, row.created_at) if row else None
