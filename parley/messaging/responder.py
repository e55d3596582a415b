"""Robots answered by Parley: a user's message to a bound robot becomes a turn of the engine.

The operator binds a robot UserID to a Parley application. A user's text to that robot
starts a turn in the session of that user and robot; the answer grows a streaming
message chunk by chunk, as TUIKit renders it. The user's interrupt (`src: 22` with the
answer's msgKey) stops the turn, which reaches the upstream model call at once; a
refused or failed turn shows as an error message (`src: 23`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

from parley.engine.apps import ApplicationService
from parley.engine.engine import Engine
from parley.engine.errors import TurnRejected
from parley.engine.events import Failure, Final, ReplyDelta
from parley.engine.faces import Face
from parley.engine.turn import TurnRequest
from parley.messaging import elements
from parley.messaging.errors import MessagingError
from parley.messaging.service import MessagingService
from parley.store.messaging import MessageRow

log = logging.getLogger(__name__)

STORE_FAILED = "the answer could not be stored; please ask again"
TURN_KEPT_SECONDS = 3600.0
"""How long an answer's turn is findable by its msgKey from every instance (for an interrupt);
an answer still streaming after that cannot be interrupted from another instance."""
FAIL_ATTEMPTS = 10
FAIL_RETRY_SECONDS = 1.0
"""How long an answer cut by a store failure tries to end itself as an error message."""

Bindings = Callable[[int], dict[str, str]]
"""The robot -> application-name bindings of an SDKAppID."""


def session_id_for(sdkappid: int, robot: str, user: str) -> str:
    """One engine session per (application, robot, user); ids fit the engine's 64 characters."""
    digest = hashlib.sha256(f"{sdkappid}/{robot}/{user}".encode()).hexdigest()[:40]
    return f"im-{digest}"


def _turn_name(sdkappid: int, msg_key: str) -> str:
    return f"turn:{sdkappid}:{msg_key}"


class _SessionQueue:
    """The messages of one conversation waiting for, or having, its turn."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class RobotResponder:
    def __init__(self, messaging: MessagingService, engine: Engine, apps: ApplicationService, bindings: Bindings) -> None:
        self._messaging = messaging
        self._engine = engine
        self._apps = apps
        self._bindings = bindings
        self._turns: dict[tuple[int, str], tuple[int, str]] = {}  # (sdkappid, answer msgKey) -> (turn id, user)
        self._sessions: dict[str, _SessionQueue] = {}

    async def on_message(self, message: MessageRow) -> None:
        sdkappid, robot, user = message.sdkappid, message.to_account, message.from_account
        application = self._bindings(sdkappid).get(robot)
        if application is None or elements.is_robot_id(user):
            return
        interrupted = elements.interrupted_key(message.body)
        if interrupted is not None:
            turn = self._turns.get((sdkappid, interrupted)) or await self._shared_turn(sdkappid, interrupted)
            # The messaging service refuses strangers' interrupts; checked again here so
            # that no path can stop another user's turn.
            if turn is not None and (turn[1] == user or self._messaging.is_admin(sdkappid, user)):
                await self._engine.stop_turn(turn[0])
            return
        question = elements.text_of(message.body).strip()
        if not question:
            return
        # One turn at a time in a conversation, in the order the messages were sent, so each
        # answer sees the ones before it. Taking the lock is the first wait of this task.
        session = session_id_for(sdkappid, robot, user)
        turn = self._sessions.setdefault(session, _SessionQueue())
        turn.users += 1
        try:
            async with turn.lock:
                if await self._messaging.is_active_robot(sdkappid, robot):
                    await self._answer(message, application, question)
        finally:
            turn.users -= 1
            if not turn.users:
                del self._sessions[session]

    async def _answer(self, message: MessageRow, application: str, question: str) -> None:
        sdkappid, robot, user = message.sdkappid, message.to_account, message.from_account
        app = await self._apps.get(application)
        if app is None:
            log.warning("robot %s is bound to %r, which does not exist", robot, application)
            await self._error(sdkappid, robot, user, "the robot's application is not available")
            return
        request = TurnRequest(
            app_key=app.app_key,
            visitor_id=f"im:{sdkappid}:{user}",
            session_id=session_id_for(sdkappid, robot, user),
            face=Face.IM,
            content=question,
            request_id=message.msg_key,
        )
        try:
            info = await self._engine.start_turn(request)
        except TurnRejected as exc:
            await self._error(sdkappid, robot, user, exc.detail or exc.kind.value.replace("_", " "))
            return
        answer = await self._messaging.open_stream(sdkappid, robot, user, [], False)
        key = (sdkappid, answer.msg_key)
        self._turns[key] = (info.turn_id, user)
        state = self._messaging.state
        if state.shared:  # an interrupt may reach another instance
            await state.put(_turn_name(sdkappid, answer.msg_key), f"{info.turn_id} {user}", TURN_KEPT_SECONDS)
        try:
            await self._relay(info.turn_id, sdkappid, robot, user, answer.msg_key)
        except MessagingError:
            # The stream ended under us (the user interrupted it): the turn has nobody to answer.
            await self._engine.stop_turn(info.turn_id)
        except Exception:
            # A chunk could not be stored (the database locked past its busy timeout, say): the
            # turn stops, and the message ends as an error rather than streaming for ever.
            log.warning("the robot's answer %s could not be stored", answer.msg_key, exc_info=True)
            await self._engine.stop_turn(info.turn_id)
            await self._fail_when_possible(sdkappid, robot, user, answer.msg_key)
        finally:
            self._turns.pop(key, None)
            if state.shared:
                await state.delete(_turn_name(sdkappid, answer.msg_key))

    async def _shared_turn(self, sdkappid: int, msg_key: str) -> tuple[int, str] | None:
        """The turn answering `msg_key` on another instance, and its user."""
        if not self._messaging.state.shared:
            return None
        kept = await self._messaging.state.get(_turn_name(sdkappid, msg_key))
        if kept is None:
            return None
        turn_id, _, user = kept.partition(" ")
        return int(turn_id), user

    async def _fail_when_possible(self, sdkappid: int, robot: str, user: str, msg_key: str) -> None:
        """Ends a stream as an error message, trying again while the store refuses (bounded)."""
        for attempt in range(FAIL_ATTEMPTS):
            try:
                await self._messaging.fail_stream(sdkappid, robot, user, msg_key, STORE_FAILED)
                return
            except MessagingError:
                return  # it has ended already
            except Exception:
                if attempt + 1 == FAIL_ATTEMPTS:
                    log.error("the robot's answer %s is left unfinished", msg_key, exc_info=True)
                    return
                await asyncio.sleep(FAIL_RETRY_SECONDS)

    async def _relay(self, turn_id: int, sdkappid: int, robot: str, user: str, msg_key: str) -> None:
        """Grows the streaming message with the turn's text, then settles it.

        Text that arrives while a chunk is being stored is gathered into the next chunk,
        so a fast model costs as many writes as the store can take, not one per token.
        """
        pending: list[str] = []
        outcome: list[Final | Failure] = []
        arrived = asyncio.Event()

        async def read() -> None:
            try:
                async for event in self._engine.events(turn_id):
                    if isinstance(event, ReplyDelta) and event:
                        pending.append(event)
                        arrived.set()
                    elif isinstance(event, (Final, Failure)):
                        outcome.append(event)
                        return
                outcome.append(Failure("internal", "the answer ended unexpectedly"))
            except Exception:
                log.exception("reading turn %s failed", turn_id)
                outcome.append(Failure("internal", "the answer could not be read"))
            finally:
                arrived.set()

        reader = asyncio.create_task(read())
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                if pending:
                    text = "".join(pending)
                    pending.clear()
                    await self._messaging.append_stream(sdkappid, robot, user, msg_key, text, False)
                if outcome:
                    break
            end = outcome[0]
            if isinstance(end, Final):
                await self._messaging.settle_stream(sdkappid, robot, user, msg_key, end.plain_text())
            else:
                await self._messaging.fail_stream(sdkappid, robot, user, msg_key, end.message)
        finally:
            reader.cancel()

    async def _error(self, sdkappid: int, robot: str, user: str, info: str) -> None:
        message = await self._messaging.open_stream(sdkappid, robot, user, [], False)
        await self._messaging.fail_stream(sdkappid, robot, user, message.msg_key, info)
