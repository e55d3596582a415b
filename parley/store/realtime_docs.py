"""Real-time documents: stored per application and chat session (none yet: session_id "")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.realtime_docs_tables import realtime_docs


@dataclass(slots=True)
class RealtimeDocRow:
    id: int
    app_id: int
    session_id: str
    file_name: str
    file_type: str
    size: int
    object_key: str
    file_url: str
    status: str  # success | failed
    text: str
    created_at: int
    error_message: str | None = None


class RealtimeDocRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, row: RealtimeDocRow) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(realtime_docs.insert().values(**asdict(row)))

    async def get(self, doc_id: int) -> RealtimeDocRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(realtime_docs.select().where(realtime_docs.c.id == doc_id))).first()
        return RealtimeDocRow(**{name: getattr(row, name) for name in RealtimeDocRow.__slots__}) if row else None

    async def bind_session(self, doc_id: int, session_id: str) -> None:
        """Gives a document parsed without a session to `session_id`, unless a session has it already."""
        async with self._engine.begin() as conn:
            await conn.execute(
                realtime_docs.update()
                .where(realtime_docs.c.id == doc_id, realtime_docs.c.session_id == "")
                .values(session_id=session_id)
            )
