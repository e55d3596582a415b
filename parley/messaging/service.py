"""The IM domain's rules: accounts, robots, sending, streaming, modifying and reading back C2C messages.

Every new or changed message is stored first, then delivered live to the users who see
it: the receiver always, the sender's other sessions unless `SyncOtherMachine` is 2.
Messages to a robot are also handed to the robot listeners (Parley's own answering
robots, and the callbacks to an operator's bot).

With several instances (a shared `SharedState`), a streaming message's state is read from the
store under a lock every instance honours, so that chunks sent through different instances,
or an interrupt received by another, are never lost or overwritten; one process alone keeps
its streams in memory instead.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson

from parley.ids import new_id
from parley.messaging import elements
from parley.messaging.delivery import Delivered, Delivery
from parley.messaging.errors import MessagingError, Problem
from parley.messaging.shared import LocalState, SharedState
from parley.store.messaging import DuplicateKey, MessageRow, MessagingRepository

log = logging.getLogger(__name__)

DEDUP_WINDOW_MS = 120_000
MAX_USER_ID_BYTES = 32
STREAM_CACHE_SIZE = 1000
STREAM_IDLE_MS = 600_000

RobotListener = Callable[[MessageRow], Awaitable[None]]


@dataclass(slots=True)
class Outgoing:
    """A C2C message to send, already checked for its wire format."""

    from_account: str
    to_account: str
    body: elements.Body
    msg_random: int
    msg_seq: int | None = None
    msg_time: int | None = None
    cloud_custom_data: str = ""
    sync_other_machine: int = 1
    online_only: bool = False


@dataclass(slots=True)
class RoamPage:
    messages: list[MessageRow]  # oldest first
    complete: bool
    oldest: MessageRow | None  # the cursor for the next page


@dataclass(slots=True)
class _Stream:
    message: MessageRow
    chunks: list[str]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _now_ms() -> int:
    return int(time.time() * 1000)


def valid_user_id(user_id: str) -> bool:
    return 0 < len(user_id.encode("utf-8")) <= MAX_USER_ID_BYTES and user_id.isprintable()


class MessagingService:
    def __init__(
        self, repository: MessagingRepository, delivery: Delivery, admins: dict[int, frozenset[str]],
        state: SharedState | None = None,
    ) -> None:
        self.repository = repository
        self.delivery = delivery
        self.state: SharedState = state or LocalState()
        self._admins = admins
        self._listeners: list[RobotListener] = []
        self._streams: dict[tuple[int, str], _Stream] = {}  # in one process only (see the module's docstring)
        self._robot_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_seq = 0

    def _next_seq(self) -> int:
        """A MsgSeq for a message whose sender chose none: increasing, so history keeps the order of sending."""
        self._last_seq = max(self._last_seq + 1, _now_ms() & 0x7FFFFFFF)
        if self._last_seq > 0x7FFFFFFF:  # wrapped after ~24 days of milliseconds
            self._last_seq = _now_ms() & 0x7FFFFFFF
        return self._last_seq

    def add_robot_listener(self, listener: RobotListener) -> None:
        """`listener(message)` runs, as a task of its own, for every message sent to a robot."""
        self._listeners.append(listener)

    # accounts

    async def import_account(self, sdkappid: int, user_id: str, nick: str | None = None, face_url: str | None = None) -> None:
        if not valid_user_id(user_id) or elements.is_robot_id(user_id):
            raise MessagingError(Problem.INVALID_ACCOUNT, f"UserID {user_id!r} is not a valid account (robots use create_robot)")
        await self.repository.upsert_account(sdkappid, user_id, _now_ms(), nick=nick, face_url=face_url)

    async def known_accounts(self, sdkappid: int, user_ids: Iterable[str]) -> set[str]:
        """Which of `user_ids` exist: imported accounts, robots and the application's admins."""
        ids = list(dict.fromkeys(user_ids))
        admins = self._admins.get(sdkappid, frozenset())
        found = {u for u in ids if u in admins}
        found |= await self.repository.existing_accounts(sdkappid, [u for u in ids if u not in found])
        return found

    async def _require_known(self, sdkappid: int, user_id: str, problem: Problem) -> None:
        if not await self.known_accounts(sdkappid, [user_id]):
            raise MessagingError(problem, f"account {user_id!r} has not been imported")

    # robots

    async def create_robot(
        self, sdkappid: int, user_id: str, limit: int, *, nick: str | None = None,
        face_url: str | None = None, self_signature: str | None = None,
    ) -> None:
        if not elements.is_robot_id(user_id) or not valid_user_id(user_id):
            raise MessagingError(Problem.INVALID_ACCOUNT, "a robot's UserID starts with @RBT# and has at most 32 bytes")
        async with self._robot_lock:
            robots = await self.repository.active_robots(sdkappid)
            if user_id not in robots and len(robots) >= limit:
                raise MessagingError(Problem.ROBOT_LIMIT, f"the application already has {limit} robots")
            await self.repository.upsert_account(
                sdkappid, user_id, _now_ms(), nick=nick, face_url=face_url, robot=True, self_signature=self_signature
            )

    async def delete_robot(self, sdkappid: int, user_id: str) -> None:
        if not await self.repository.deactivate_robot(sdkappid, user_id, _now_ms()):
            raise MessagingError(Problem.ROBOT_NOT_FOUND, f"{user_id!r} is not a robot of this application")

    async def robots(self, sdkappid: int) -> list[str]:
        return await self.repository.active_robots(sdkappid)

    async def is_active_robot(self, sdkappid: int, user_id: str) -> bool:
        account = await self.repository.get_account(sdkappid, user_id)
        return account is not None and account.robot_active

    # sending

    async def send(self, sdkappid: int, outgoing: Outgoing) -> tuple[MessageRow, bool]:
        """Stores and delivers a C2C message; returns it and whether it is new (False: a duplicate)."""
        await self._require_known(sdkappid, outgoing.from_account, Problem.SENDER_UNKNOWN)
        await self._require_known(sdkappid, outgoing.to_account, Problem.RECEIVER_UNKNOWN)
        interrupted = await self._interrupted_by(sdkappid, outgoing)
        content_crc = zlib.crc32(orjson.dumps(outgoing.body, option=orjson.OPT_SORT_KEYS))
        seq_part = "-" if outgoing.msg_seq is None else str(outgoing.msg_seq)
        dedup_key = f"{outgoing.from_account}|{seq_part}|{outgoing.msg_random}|{content_crc}"
        now_ms = _now_ms()
        msg_time = outgoing.msg_time or now_ms // 1000
        msg_seq = outgoing.msg_seq if outgoing.msg_seq is not None else self._next_seq()
        message = MessageRow(
            id=new_id(), sdkappid=sdkappid, from_account=outgoing.from_account, to_account=outgoing.to_account,
            msg_seq=msg_seq, msg_random=outgoing.msg_random, msg_time=msg_time,
            msg_key=f"{msg_seq}_{outgoing.msg_random}_{msg_time}", body=outgoing.body,
            cloud_custom_data=outgoing.cloud_custom_data, sender_sees=outgoing.sync_other_machine != 2,
            online_only=outgoing.online_only, dedup_key=dedup_key, created_at=now_ms, updated_at=now_ms,
        )
        async with self.state.lock(f"dedup:{sdkappid}:{dedup_key}"):  # one send of a message at a time, across instances too
            try:
                earlier = await self.repository.insert_unless_duplicate(message, now_ms - DEDUP_WINDOW_MS)
            except DuplicateKey:
                raise MessagingError(Problem.INTERNAL, "another message has the same MsgSeq, MsgRandom and time") from None
            if earlier is not None:
                return earlier, False
        await self._deliver("received", message)
        if interrupted is not None:
            await self._interrupt(sdkappid, interrupted)
        if elements.is_robot_id(message.to_account):
            for listener in self._listeners:
                self._spawn(listener(message))
        return message, True

    async def modify(self, sdkappid: int, from_account: str, to_account: str, msg_key: str, body: elements.Body) -> MessageRow:
        message = await self.repository.get_message(sdkappid, msg_key)
        if message is None or message.from_account != from_account or message.to_account != to_account:
            raise MessagingError(Problem.MESSAGE_NOT_FOUND, f"no message {msg_key!r} from {from_account!r} to {to_account!r}")
        if self.state.shared:
            async with self.state.lock(f"stream:{sdkappid}:{msg_key}"):
                message = await self.repository.get_message(sdkappid, msg_key) or message
                return await self._replace(message, body, message.stream_state)
        stream = self._streams.get((sdkappid, msg_key))
        if stream is not None:
            async with stream.lock:
                return await self._replace(message, body, message.stream_state)
        return await self._replace(message, body, message.stream_state)

    # streaming messages

    async def open_stream(self, sdkappid: int, robot: str, user: str, chunks: list[str], finish: bool) -> MessageRow:
        """Creates a robot's streaming message to `user` (chunks may be empty: TUIKit shows a loader)."""
        if not await self.is_active_robot(sdkappid, robot):
            raise MessagingError(Problem.NOT_A_ROBOT, f"{robot!r} is not a robot of this application")
        await self._require_known(sdkappid, user, Problem.RECEIVER_UNKNOWN)
        now_ms = _now_ms()
        state = "finished" if finish else "streaming"
        for _ in range(5):
            msg_seq, msg_random, msg_time = self._next_seq(), secrets.randbits(32), now_ms // 1000
            message = MessageRow(
                id=new_id(), sdkappid=sdkappid, from_account=robot, to_account=user, msg_seq=msg_seq,
                msg_random=msg_random, msg_time=msg_time, msg_key=f"{msg_seq}_{msg_random}_{msg_time}",
                body=elements.stream_body(chunks, finish), stream_state=state, created_at=now_ms, updated_at=now_ms,
            )
            try:
                await self.repository.insert_message(message)
                break
            except DuplicateKey:
                continue
        else:
            raise MessagingError(Problem.INTERNAL, "could not allocate a MsgKey")
        if not finish and not self.state.shared:
            self._forget_idle_streams(now_ms)
            self._streams[(sdkappid, message.msg_key)] = _Stream(message, list(chunks))
        await self._deliver("received", message)
        return message

    async def append_stream(
        self, sdkappid: int, robot: str, user: str, msg_key: str, chunk: str, finish: bool
    ) -> MessageRow:
        """Adds a chunk to a streaming message (and ends it with `finish`)."""
        async with self._locked_stream(sdkappid, robot, user, msg_key) as stream:
            if stream.message.stream_state != "streaming":
                raise MessagingError(Problem.STREAM_ENDED, f"the stream {msg_key!r} has ended")
            if chunk:
                stream.chunks.append(chunk)
            return await self._update_stream(stream, elements.stream_body(list(stream.chunks), finish), finish)

    async def settle_stream(self, sdkappid: int, robot: str, user: str, msg_key: str, final_text: str) -> MessageRow:
        """Ends a stream with `final_text` as its whole text.

        Text that extends what was streamed arrives as one last chunk; text that replaces it
        (an answer withdrawn for its content, say) becomes the only chunk.
        """
        async with self._locked_stream(sdkappid, robot, user, msg_key) as stream:
            if stream.message.stream_state != "streaming":
                raise MessagingError(Problem.STREAM_ENDED, f"the stream {msg_key!r} has ended")
            streamed = "".join(stream.chunks)
            if final_text.startswith(streamed):
                if len(final_text) > len(streamed):
                    stream.chunks.append(final_text[len(streamed):])
            else:
                stream.chunks[:] = [final_text]
            return await self._update_stream(stream, elements.stream_body(list(stream.chunks), True), True)

    async def fail_stream(self, sdkappid: int, robot: str, user: str, msg_key: str, info: str) -> MessageRow | None:
        """Turns a streaming message into an error message (`src: 23`); None if it had already ended."""
        async with self._locked_stream(sdkappid, robot, user, msg_key) as stream:
            if stream.message.stream_state != "streaming":
                return None
            return await self._update_stream(stream, elements.error_body(info), True)

    def is_admin(self, sdkappid: int, user_id: str) -> bool:
        return user_id in self._admins.get(sdkappid, frozenset())

    async def _interrupted_by(self, sdkappid: int, outgoing: Outgoing) -> MessageRow | None:
        """The message an interrupt (`src: 22` to a robot) names, once its sender may stop it.

        Only the user of that message's conversation (its sender or receiver) and the
        application's admins may; anyone else is refused before anything is stored, and
        an unknown MsgKey is refused alike, so that keys cannot be probed this way.
        """
        if not elements.is_robot_id(outgoing.to_account):
            return None
        key = elements.interrupted_key(outgoing.body)
        if key is None:
            return None
        stream = self._streams.get((sdkappid, key))
        target = stream.message if stream is not None else await self.repository.get_message(sdkappid, key)
        sender = outgoing.from_account
        if self.is_admin(sdkappid, sender) or (target is not None and sender in (target.from_account, target.to_account)):
            return target
        raise MessagingError(
            Problem.INTERRUPT_FORBIDDEN,
            f"{sender!r} may not interrupt message {key!r}: only the user of its conversation or an app admin may",
        )

    async def _interrupt(self, sdkappid: int, target: MessageRow) -> None:
        """An interrupt ends the robot's stream as it stands; later chunks are refused."""
        try:
            async with self._locked_stream(sdkappid, target.from_account, target.to_account, target.msg_key) as stream:
                if stream.message.stream_state == "streaming":
                    await self._update_stream(stream, elements.stream_body(list(stream.chunks), True), True)
        except MessagingError:
            return  # not a robot's stream (or gone): nothing to end

    def _forget_idle_streams(self, now_ms: int) -> None:
        """Drops long-idle streams from memory (a bot that never finished them); they reload from the store."""
        if len(self._streams) < STREAM_CACHE_SIZE:
            return
        for key, stream in list(self._streams.items()):
            if now_ms - stream.message.updated_at > STREAM_IDLE_MS and not stream.lock.locked():
                del self._streams[key]

    @asynccontextmanager
    async def _locked_stream(self, sdkappid: int, robot: str, user: str, msg_key: str) -> AsyncIterator[_Stream]:
        """The stream, its writer's lock held: this process's own, or (shared) every instance's,
        with the stream read from the store once the lock is held."""
        if not self.state.shared:
            stream = await self._stream(sdkappid, robot, user, msg_key)
            async with stream.lock:
                yield stream
            return
        async with self.state.lock(f"stream:{sdkappid}:{msg_key}"):
            yield await self._stream(sdkappid, robot, user, msg_key)

    async def _stream(self, sdkappid: int, robot: str, user: str, msg_key: str) -> _Stream:
        stream = self._streams.get((sdkappid, msg_key))
        if stream is None:
            message = await self.repository.get_message(sdkappid, msg_key)
            if message is None:
                raise MessagingError(Problem.MESSAGE_NOT_FOUND, f"no message {msg_key!r}")
            if not message.stream_state:
                raise MessagingError(Problem.STREAM_MISMATCH, f"message {msg_key!r} is not a streaming message")
            stream = _Stream(message, elements.stream_chunks(message.body))
            if message.stream_state == "streaming" and not self.state.shared:  # after a restart: pick it up again
                stream = self._streams.setdefault((sdkappid, msg_key), stream)
        if stream.message.from_account != robot or stream.message.to_account != user:
            raise MessagingError(Problem.STREAM_MISMATCH, f"message {msg_key!r} is not from {robot!r} to {user!r}")
        return stream

    async def _update_stream(self, stream: _Stream, body: elements.Body, finish: bool) -> MessageRow:
        state = "finished" if finish else "streaming"
        message = await self._replace(stream.message, body, state)
        stream.message = message
        if finish:
            self._streams.pop((message.sdkappid, message.msg_key), None)
        return message

    async def _replace(self, message: MessageRow, body: elements.Body, stream_state: str) -> MessageRow:
        now_ms = _now_ms()
        await self.repository.update_message(message.id, body, stream_state, now_ms)
        updated = MessageRow(**{**{n: getattr(message, n) for n in MessageRow.__slots__},
                                "body": body, "stream_state": stream_state, "updated_at": now_ms})
        await self._deliver("modified", updated)
        return updated

    # history

    async def roam(
        self, sdkappid: int, operator: str, peer: str, *, max_count: int, min_time: int, max_time: int,
        last_key: str | None, max_bytes: int, measure: Callable[[MessageRow], int],
    ) -> RoamPage:
        """A page of the conversation as `operator` sees it, walking from `max_time` back to `min_time`.

        A page holds at most `max_count` messages and, beyond its first, `max_bytes` as
        `measure` counts them; the next page continues before the page's oldest message.
        """
        before = None
        if last_key:
            cursor = await self.repository.get_message(sdkappid, last_key)
            if cursor is None:
                raise MessagingError(Problem.MESSAGE_NOT_FOUND, f"LastMsgKey {last_key!r} is unknown")
            before = (cursor.msg_time, cursor.msg_seq, cursor.id)
        rows = await self.repository.conversation_page(sdkappid, operator, peer, min_time, max_time, before, max_count + 1)
        page: list[MessageRow] = []
        size = 0
        for row in rows[:max_count]:
            size += measure(row)
            if page and size > max_bytes:
                break
            page.append(row)
        complete = len(page) == len(rows)
        return RoamPage(messages=page[::-1], complete=complete, oldest=page[-1] if page else None)

    # delivery and tasks

    async def _deliver(self, kind: str, message: MessageRow) -> None:
        delivered = Delivered(kind, message)  # type: ignore[arg-type]
        await self.delivery.publish(message.sdkappid, message.to_account, delivered)
        if message.sender_sees and message.from_account != message.to_account:
            await self.delivery.publish(message.sdkappid, message.from_account, delivered)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("robot listener failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
