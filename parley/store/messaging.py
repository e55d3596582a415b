"""IM accounts, robots and C2C messages (tables in im_tables.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.ids import new_id
from parley.store.im_tables import im_accounts, im_messages


@dataclass(frozen=True, slots=True)
class AccountRow:
    sdkappid: int
    user_id: str
    internal_id: int
    nick: str
    face_url: str
    self_signature: str
    is_robot: bool
    robot_active: bool
    created_at: int
    updated_at: int


@dataclass(slots=True)
class MessageRow:
    """One C2C message; `body` is its MsgBody (a list of elements), changed in place by modifications."""

    id: int
    sdkappid: int
    from_account: str
    to_account: str
    msg_seq: int
    msg_random: int
    msg_time: int
    msg_key: str
    body: list[dict[str, Any]]
    created_at: int
    updated_at: int
    cloud_custom_data: str = ""
    sender_sees: bool = True
    online_only: bool = False
    stream_state: str = ""  # "" (plain) | "streaming" | "finished"
    dedup_key: str | None = None

    @property
    def msg_id(self) -> str:
        return f"{self.id}-{self.msg_time}-{self.msg_random}"


IM_DEDUP_LOCKS = 0x494D_4450  # "IMDP": the first key of the sends' advisory transaction locks
_LOCK_DEDUP_KEY = sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))")


class DuplicateKey(Exception):
    """Another message of the application already has this MsgKey."""


def _account(row: Any) -> AccountRow:
    return AccountRow(**{name: getattr(row, name) for name in AccountRow.__slots__})


def _message(row: Any) -> MessageRow:
    return MessageRow(**{name: getattr(row, name) for name in MessageRow.__slots__})


class MessagingRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # accounts and robots

    async def upsert_account(
        self, sdkappid: int, user_id: str, now: int, *, nick: str | None = None, face_url: str | None = None,
        robot: bool = False, self_signature: str | None = None,
    ) -> AccountRow:
        """Creates the account, or updates the fields given; a robot account is (re)activated."""
        changes: dict[str, Any] = {"updated_at": now}
        if nick is not None:
            changes["nick"] = nick
        if face_url is not None:
            changes["face_url"] = face_url
        if self_signature is not None:
            changes["self_signature"] = self_signature
        if robot:
            changes.update(is_robot=True, robot_active=True)
        key = (im_accounts.c.sdkappid == sdkappid) & (im_accounts.c.user_id == user_id)
        async with self._engine.begin() as conn:
            updated = await conn.execute(im_accounts.update().where(key).values(**changes))
            if updated.rowcount == 0:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            im_accounts.insert().values(
                                sdkappid=sdkappid, user_id=user_id, internal_id=new_id(), nick=nick or "",
                                face_url=face_url or "", self_signature=self_signature or "", is_robot=robot,
                                robot_active=robot, created_at=now, updated_at=now,
                            )
                        )
                except IntegrityError:  # imported concurrently
                    await conn.execute(im_accounts.update().where(key).values(**changes))
            row = (await conn.execute(im_accounts.select().where(key))).first()
        return _account(row)

    async def get_account(self, sdkappid: int, user_id: str) -> AccountRow | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    im_accounts.select().where((im_accounts.c.sdkappid == sdkappid) & (im_accounts.c.user_id == user_id))
                )
            ).first()
        return _account(row) if row else None

    async def existing_accounts(self, sdkappid: int, user_ids: list[str]) -> set[str]:
        if not user_ids:
            return set()
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(im_accounts.c.user_id).where(
                    (im_accounts.c.sdkappid == sdkappid) & im_accounts.c.user_id.in_(user_ids)
                )
            )
            return {r.user_id for r in rows}

    async def active_robots(self, sdkappid: int) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(im_accounts.c.user_id)
                .where((im_accounts.c.sdkappid == sdkappid) & (im_accounts.c.robot_active == sa.true()))
                .order_by(im_accounts.c.created_at, im_accounts.c.user_id)
            )
            return [r.user_id for r in rows]

    async def deactivate_robot(self, sdkappid: int, user_id: str, now: int) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                im_accounts.update()
                .where(
                    (im_accounts.c.sdkappid == sdkappid) & (im_accounts.c.user_id == user_id)
                    & (im_accounts.c.robot_active == sa.true())
                )
                .values(robot_active=False, updated_at=now)
            )
            return result.rowcount > 0

    # messages

    async def insert_message(self, message: MessageRow) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(im_messages.insert().values(**asdict(message)))
        except IntegrityError:
            raise DuplicateKey(message.msg_key) from None

    async def insert_unless_duplicate(self, message: MessageRow, since_ms: int) -> MessageRow | None:
        """Stores `message` unless a message with its `dedup_key` was stored since `since_ms`;
        returns that earlier message (and stores nothing), or None once `message` is stored.

        A client retrying a send may reach another process on the same database: on PostgreSQL
        a transaction lock on the key makes the look and the insert one step for every process
        (no unique index can say "within the window"). SQLite takes one writer at a time, and
        the one process on it serialises its own sends (MessagingService's send locks)."""
        try:
            async with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(_LOCK_DEDUP_KEY, {"space": IM_DEDUP_LOCKS, "key": f"{message.sdkappid}|{message.dedup_key}"})
                row = (
                    await conn.execute(
                        im_messages.select()
                        .where(
                            (im_messages.c.sdkappid == message.sdkappid) & (im_messages.c.dedup_key == message.dedup_key)
                            & (im_messages.c.created_at >= since_ms)
                        )
                        .limit(1)
                    )
                ).first()
                if row is not None:
                    return _message(row)
                await conn.execute(im_messages.insert().values(**asdict(message)))
        except IntegrityError:
            raise DuplicateKey(message.msg_key) from None
        return None

    async def get_message(self, sdkappid: int, msg_key: str) -> MessageRow | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    im_messages.select().where((im_messages.c.sdkappid == sdkappid) & (im_messages.c.msg_key == msg_key))
                )
            ).first()
        return _message(row) if row else None

    async def update_message(self, message_id: int, body: list[dict[str, Any]], stream_state: str, now: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                im_messages.update()
                .where(im_messages.c.id == message_id)
                .values(body=body, stream_state=stream_state, updated_at=now)
            )

    async def conversation_page(
        self, sdkappid: int, operator: str, peer: str, min_time: int, max_time: int,
        before: tuple[int, int, int] | None, limit: int,
    ) -> list[MessageRow]:
        """Messages of the conversation as `operator` sees it, newest first, older than `before`.

        `before` is a (msg_time, msg_seq, id) cursor; online-only messages are never kept in history.
        """
        m = im_messages.c
        sent = (m.from_account == operator) & (m.to_account == peer) & (m.sender_sees == sa.true())
        received = (m.from_account == peer) & (m.to_account == operator)
        query = im_messages.select().where(
            (m.sdkappid == sdkappid) & (sent | received) & (m.online_only == sa.false())
            & (m.msg_time >= min_time) & (m.msg_time <= max_time)
        )
        if before is not None:
            time_, seq, id_ = before
            query = query.where(
                (m.msg_time < time_)
                | ((m.msg_time == time_) & (m.msg_seq < seq))
                | ((m.msg_time == time_) & (m.msg_seq == seq) & (m.id < id_))
            )
        query = query.order_by(m.msg_time.desc(), m.msg_seq.desc(), m.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_message(r) for r in await conn.execute(query)]
