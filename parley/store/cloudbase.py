"""The CloudBase channel's repository: bots, API keys, conversations, feedback.

Also two read-only queries over the shared `records` and `sessions` tables that the
backbone's ConversationRepository does not offer: a numbered page of a session's records
with their total, and a record together with the session (and visitor) it belongs to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.cloudbase_tables import cloudbase_bots, cloudbase_conversations, cloudbase_feedback, cloudbase_keys
from parley.store.conversations import RecordRow
from parley.store.database import upsert
from parley.store.tables import records, sessions


@dataclass(frozen=True, slots=True)
class BotRow:
    bot_id: str
    app_id: int
    enabled: bool
    search_enable: bool
    multi_conversation: bool
    need_recommend: bool
    background: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    app_id: int
    kind: str
    name: str
    key_hash: str
    key_prefix: str
    created_at: int
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    conversation_id: str
    app_id: int
    owner: str
    title: str
    is_default: bool
    default_for: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    id: int
    app_id: int
    record_id: int
    sender: str
    type: str
    rating: int
    comment: str
    input: str
    ai_answer: str
    created_at: int
    updated_at: int
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FeedbackQuery:
    type: str | None = None
    sender: str | None = None
    sender_filter: str = "equal"  # include | exclude | equal | unequal | prefix
    min_rating: int | None = None
    max_rating: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def _row(cls: type, row: Any) -> Any:
    return cls(**{name: getattr(row, name) for name in cls.__slots__})


class CloudBaseRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # bots

    async def save_bot(self, bot: BotRow) -> None:
        """Inserts the bot, or replaces the settings of the application's existing bot."""
        statement = upsert(cloudbase_bots, self._engine.dialect.name, ["app_id"], keep=("created_at",))
        async with self._engine.begin() as conn:  # one statement: another process may save it at once
            await conn.execute(statement, asdict(bot))

    async def get_bot(self, bot_id: str) -> BotRow | None:
        return await self._bot(cloudbase_bots.c.bot_id == bot_id)

    async def bot_for_app(self, app_id: int) -> BotRow | None:
        return await self._bot(cloudbase_bots.c.app_id == app_id)

    async def _bot(self, condition: Any) -> BotRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(cloudbase_bots.select().where(condition))).first()
        return _row(BotRow, row) if row else None

    # keys

    async def add_key(self, key: KeyRow) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(cloudbase_keys.insert().values(**asdict(key)))

    async def key_by_hash(self, key_hash: str) -> KeyRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(cloudbase_keys.select().where(cloudbase_keys.c.key_hash == key_hash))).first()
        return _row(KeyRow, row) if row else None

    async def list_keys(self, app_id: int) -> list[KeyRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                cloudbase_keys.select().where(cloudbase_keys.c.app_id == app_id).order_by(cloudbase_keys.c.created_at)
            )
            return [_row(KeyRow, r) for r in rows]

    async def revoke_key(self, key_id: int, now_ms: int) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                cloudbase_keys.update()
                .where((cloudbase_keys.c.id == key_id) & cloudbase_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_ms)
            )
        return result.rowcount > 0

    # conversations

    async def add_conversation(self, conversation: ConversationRow) -> ConversationRow:
        """Stores a conversation; for a default one already made concurrently, returns that one."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(cloudbase_conversations.insert().values(**asdict(conversation)))
        except IntegrityError:
            if conversation.default_for is None:
                raise
            existing = await self._conversation(cloudbase_conversations.c.default_for == conversation.default_for)
            if existing is None:
                raise
            return existing
        return conversation

    async def get_conversation(self, conversation_id: str) -> ConversationRow | None:
        return await self._conversation(cloudbase_conversations.c.conversation_id == conversation_id)

    async def default_conversation(self, default_for: str) -> ConversationRow | None:
        return await self._conversation(cloudbase_conversations.c.default_for == default_for)

    async def _conversation(self, condition: Any) -> ConversationRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(cloudbase_conversations.select().where(condition))).first()
        return _row(ConversationRow, row) if row else None

    async def list_conversations(
        self, app_id: int, owner: str, is_default: bool | None, offset: int, limit: int
    ) -> tuple[list[ConversationRow], int]:
        """The visitor's conversations, most recently active first, and how many there are."""
        condition = (cloudbase_conversations.c.app_id == app_id) & (cloudbase_conversations.c.owner == owner)
        if is_default is not None:
            condition &= cloudbase_conversations.c.is_default == is_default
        async with self._engine.connect() as conn:
            total = await conn.scalar(sa.select(sa.func.count()).select_from(cloudbase_conversations).where(condition))
            rows = await conn.execute(
                cloudbase_conversations.select()
                .where(condition)
                .order_by(cloudbase_conversations.c.updated_at.desc(), cloudbase_conversations.c.conversation_id.desc())
                .offset(offset)
                .limit(limit)
            )
            return [_row(ConversationRow, r) for r in rows], int(total or 0)

    async def update_conversation(self, conversation_id: str, now_ms: int, title: str | None = None) -> None:
        values: dict[str, Any] = {"updated_at": now_ms}
        if title is not None:
            values["title"] = title
        async with self._engine.begin() as conn:
            await conn.execute(
                cloudbase_conversations.update()
                .where(cloudbase_conversations.c.conversation_id == conversation_id)
                .values(**values)
            )

    async def delete_conversation(self, conversation_id: str) -> None:
        """Forgets the conversation; its messages stay recorded in their session."""
        async with self._engine.begin() as conn:
            await conn.execute(
                cloudbase_conversations.delete().where(cloudbase_conversations.c.conversation_id == conversation_id)
            )

    # feedback

    async def save_feedback(self, feedback: FeedbackRow) -> None:
        """One feedback per record and sender: a later one replaces the earlier."""
        statement = upsert(cloudbase_feedback, self._engine.dialect.name, ["record_id", "sender"], keep=("id", "created_at"))
        async with self._engine.begin() as conn:  # one statement: another process may save it at once
            await conn.execute(statement, asdict(feedback))

    async def list_feedback(self, app_id: int, query: FeedbackQuery, offset: int, limit: int) -> tuple[list[FeedbackRow], int]:
        c = cloudbase_feedback.c
        condition = c.app_id == app_id
        if query.type:
            condition &= c.type == query.type
        if query.sender is not None:
            condition &= _sender_condition(c.sender, query.sender, query.sender_filter)
        if query.min_rating is not None:
            condition &= c.rating >= query.min_rating
        if query.max_rating is not None:
            condition &= c.rating <= query.max_rating
        if query.since_ms is not None:
            condition &= c.created_at >= query.since_ms
        if query.until_ms is not None:
            condition &= c.created_at <= query.until_ms
        async with self._engine.connect() as conn:
            total = await conn.scalar(sa.select(sa.func.count()).select_from(cloudbase_feedback).where(condition))
            rows = await conn.execute(
                cloudbase_feedback.select().where(condition).order_by(c.created_at.desc(), c.id.desc()).offset(offset).limit(limit)
            )
            return [_row(FeedbackRow, r) for r in rows], int(total or 0)

    # records (read only)

    async def record_page(
        self, app_id: int, face: str, session_id: str, offset: int, limit: int, newest_first: bool
    ) -> tuple[list[RecordRow], int]:
        """A page of the records of `face`'s session `session_id` in time order (or newest first) and their total."""
        session_pk = (
            sa.select(sessions.c.id)
            .where((sessions.c.app_id == app_id) & (sessions.c.face == face) & (sessions.c.session_id == session_id))
            .scalar_subquery()
        )
        condition = records.c.session_pk == session_pk
        order = records.c.id.desc() if newest_first else records.c.id.asc()
        async with self._engine.connect() as conn:
            total = await conn.scalar(sa.select(sa.func.count()).select_from(records).where(condition))
            rows = await conn.execute(records.select().where(condition).order_by(order).offset(offset).limit(limit))
            return [_row(RecordRow, r) for r in rows], int(total or 0)

    async def record_with_session(self, record_id: int) -> tuple[RecordRow, str, str, str] | None:
        """The record, its session id, the visitor owning that session and the session's face."""
        query = (
            sa.select(
                records,
                sessions.c.session_id.label("s_session_id"),
                sessions.c.visitor_biz_id.label("s_visitor"),
                sessions.c.face.label("s_face"),
            )
            .select_from(records.join(sessions, sessions.c.id == records.c.session_pk))
            .where(records.c.id == record_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return _row(RecordRow, row), row.s_session_id, row.s_visitor, row.s_face


def _sender_condition(column: Any, sender: str, how: str) -> Any:
    if how == "include":
        return column.contains(sender, autoescape=True)
    if how == "exclude":
        return ~column.contains(sender, autoescape=True)
    if how == "prefix":
        return column.startswith(sender, autoescape=True)
    if how == "unequal":
        return column != sender
    return column == sender
