"""Sessions and the message records in them."""

from __future__ import annotations

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


class ConversationRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def begin_turn(
        self, app_id: int, session_id: str, visitor_biz_id: str, question: RecordRow, history_records: int
    ) -> tuple[SessionRow, list[RecordRow]]:
        """Opens (or creates) the session, reads its recent history and stores the question.

        One transaction, so a turn costs one write before its answer. Raises
        SessionOwnedElsewhere, and writes nothing, when another visitor owns the session.
        """
        async with self._engine.begin() as conn:
            session = await self._session(conn, app_id, session_id)
            if session is None:
                session = SessionRow(new_id(), app_id, session_id, visitor_biz_id, question.created_at)
                try:
                    async with conn.begin_nested():
                        await conn.execute(sessions.insert().values(**asdict(session)))
                except IntegrityError:  # created by a concurrent first turn
                    session = await self._session(conn, app_id, session_id)
                    assert session is not None
            if session.visitor_biz_id != visitor_biz_id:
                raise SessionOwnedElsewhere(session_id)
            history: list[RecordRow] = []
            if history_records > 0:
                rows = await conn.execute(
                    records.select()
                    .where(records.c.session_pk == session.id)
                    .order_by(records.c.id.desc())
                    .limit(history_records)
                )
                history = [_record(r) for r in rows][::-1]
            question.session_pk = session.id
            await conn.execute(records.insert().values(**asdict(question)))
        return session, history

    async def add_record(self, record: RecordRow) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(records.insert().values(**asdict(record)))

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
