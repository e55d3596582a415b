"""ADP dialogue over WebSocket: Socket.IO v4 (Engine.IO 4) at `/v1/qbot/chat/conn/`.

A client first gets a one-time token from the cloud API (GetWsToken), then connects with
`auth: {token}` (`40{"token":"..."}`); the token binds the application and the visitor,
so `send` payloads carry only the SSE request's other fields. Each `send` starts a turn
whose events are emitted to that connection as `reply`, `token_stat`, `reference`,
`thought` and `error`, with exactly the JSON the SSE stream's `data:` lines carry (the
SSE renderer makes them, so both faces say the same). Several turns, for different
sessions, can run on one connection. `stop_generation {record_id}` stops a turn this
connection started or resumed; a dropped connection stops nothing (the answer is still recorded).

A client that lost its connection connects again (with a new token) and sends
`resume {record_id, offset, session_id, ...}`: the answer's record id, how many of the turn's
events it got (each carries `trace_id` = that record id), and the `send` fields that shape the
events. No turn starts: the turn's events are rendered again from the start for that request
and only those after the first `offset` are emitted, as an SSE stream resumes from
Last-Event-ID (faces/resume.py). It goes through the engine alone, so it works on any instance
that shares the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import socketio
from socketio.exceptions import ConnectionRefusedError as SocketConnectionRefused
from starlette.responses import Response
from starlette.types import Scope

from parley.engine.errors import ErrorKind, TurnRejected
from parley.engine.turn import TurnInfo
from parley.faces.adp.errors import MESSAGES, code_and_message, fault_code_and_message
from parley.faces.adp.render import error_frame
from parley.faces.adp.request import BadRequest, ChatRequest, validate_chat, validate_resume
from parley.faces.adp.sse import renderer_for
from parley.faces.adp.turn_stream import Rejection, TurnRenderer
from parley.faces.faults import fault_of
from parley.faces.resume import ResumePoint
from parley.faces.bodies import BodyLimit
from parley.services import Services

log = logging.getLogger(__name__)

SOCKETIO_PATH = "v1/qbot/chat/conn"
PING_INTERVAL = 25  # seconds; ADP's handshake says pingInterval 25000, pingTimeout 5000
PING_TIMEOUT = 5
TOKEN_INVALID = 460001
NO_HANDLER = 460002
NO_SUCH_MESSAGE = 460006


class RawJson:
    """JSON already serialised (an SSE `data:` line), emitted as it is."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class PacketJson:
    """The `json` module python-socketio encodes packets with: orjson, and RawJson verbatim.

    An event packet's data is `[name, argument]`; when the argument is RawJson the list is
    written around its bytes instead of parsing and re-serialising them.
    """

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        if isinstance(obj, list) and obj and isinstance(obj[-1], RawJson):
            head = orjson.dumps(obj[:-1])[:-1]  # `["reply"` without its closing bracket
            return (head + (b"," if len(obj) > 1 else b"") + obj[-1].data + b"]").decode()
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)


def sse_packets(frames: bytes) -> Iterator[tuple[str, bytes]]:
    """The (event name, data JSON) of each SSE frame in `frames`; comments are skipped.

    Data lines are single-line JSON (orjson escapes newlines), so frames split on blank lines.
    """
    for block in frames.split(b"\n\n"):
        name = b""
        data = None
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:]
            elif line.startswith(b"data:"):
                data = line[5:]
        if data is not None:
            yield (name.decode() or "message"), data


@dataclass
class Connection:
    """What a redeemed token bound to one Socket.IO connection, and the turns it started."""

    app_key: str
    visitor_id: str
    visitor_labels: list[dict[str, Any]]
    turns: dict[str, int] = field(default_factory=dict)  # record id (answer or question) -> turn id
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _payload(data: Any) -> dict[str, Any] | None:
    """The event's fields: ADP wraps them as `{"payload": {...}}`; a bare object is accepted too."""
    if not isinstance(data, dict):
        return None
    inner = data.get("payload")
    return inner if isinstance(inner, dict) else data


def _request_id(fields: dict[str, Any]) -> str:
    """The request_id of a refused event, when it is usable, so that the error still echoes it."""
    value = fields.get("request_id")
    return value if isinstance(value, str) and len(value) <= 255 else ""


Asked = tuple[ChatRequest, Callable[[TurnInfo], TurnRenderer], ResumePoint | None]
"""What an event asks for: the turn's request, how its events are rendered for this subscriber,
and where a resumed turn resumes (None: a new turn)."""
Validation = Callable[[dict[str, Any], Connection], Asked]
"""Checks an event's fields for a connection (raises BadRequest)."""


def _v1_turn(chat: ChatRequest, resume: ResumePoint | None) -> Asked:
    return chat, renderer_for(chat), resume


class AdpSocketServer:
    socketio_path = SOCKETIO_PATH
    # How this socket's events carry their fields and how it refuses (v2 has its own: ws_v2.py).
    fields_of = staticmethod(_payload)
    request_id_of = staticmethod(_request_id)
    refusal = staticmethod(error_frame)
    record_id_field = "record_id"  # of stop_generation

    def __init__(
        self, services: Callable[[], Services], allowed_origins: list[str] | str = "*", max_message_bytes: int = 1_000_000,
        transports: list[str] | None = None,
    ) -> None:
        """`transports`: Engine.IO's transports allowed (None: long-polling and WebSocket)."""
        self._services = services
        self._connections: dict[str, Connection] = {}
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            json=PacketJson,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            cors_allowed_origins=allowed_origins,
            max_http_buffer_size=max_message_bytes,
            transports=transports,
            logger=False,
            engineio_logger=False,
        )
        self.register()

    def register(self) -> None:
        """Binds the protocol's events to their handlers."""
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("send", self.on_send)
        self.sio.on("stop_generation", self.on_stop_generation)
        self.sio.on("resume", self.on_resume)
        self.sio.on("*", self.on_unknown)

    def asgi(self, other_app: Any) -> socketio.ASGIApp:
        """The Socket.IO endpoint in front of `other_app`, which gets every other request."""
        return socketio.ASGIApp(self.sio, other_asgi_app=other_app, socketio_path=self.socketio_path)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            token = (parse_qs(environ.get("QUERY_STRING", "")).get("token") or [""])[0]
        try:
            claims = await self._services().tokens.redeem(token) if token else None
        except Exception as exc:  # the shared bus is down: the token cannot be checked now
            log.warning("a Socket.IO token could not be redeemed: %r", exc)
            code, message = code_and_message(ErrorKind.BUS_UNAVAILABLE, "the token cannot be checked now; try again shortly")
            raise SocketConnectionRefused(message, {"code": code, "message": message}) from None
        if claims is None:
            message = MESSAGES.get(TOKEN_INVALID, "Token Verification Failure")
            raise SocketConnectionRefused(message, {"code": TOKEN_INVALID, "message": message})
        self._connections[sid] = Connection(claims["app_key"], claims["visitor_id"], claims.get("visitor_labels") or [])

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        connection = self._connections.pop(sid, None)
        if connection is not None:
            for task in list(connection.tasks):
                task.cancel()  # stops forwarding; the turns themselves run on and are recorded

    async def on_send(self, sid: str, data: Any = None) -> None:
        await self.begin(sid, data, "send", lambda fields, c: _v1_turn(
            validate_chat(fields, app_key=c.app_key, visitor_id=c.visitor_id), None))

    async def on_resume(self, sid: str, data: Any = None) -> None:
        await self.begin(sid, data, "resume", lambda fields, c: _v1_turn(
            *validate_resume(fields, app_key=c.app_key, visitor_id=c.visitor_id)))

    async def begin(self, sid: str, data: Any, event: str, validate: Validation) -> None:
        """Starts, or resumes, the turn an event asks for; a malformed event gets a 400 error event."""
        connection = self._connections.get(sid)
        if connection is None:
            return
        fields = self.fields_of(data)
        try:
            if fields is None:
                raise BadRequest(f"the {event} event must carry an object")
            chat, make_renderer, resume = validate(fields, connection)
        except BadRequest as exc:
            code, message = code_and_message("bad_request", str(exc))
            await self._emit_frames(sid, self.refusal(code, message, self.request_id_of(fields or {})))
            return
        self.start(sid, connection, chat, make_renderer, self.refusal, resume)

    def start(
        self, sid: str, connection: Connection, chat: ChatRequest,
        make_renderer: Callable[[TurnInfo], TurnRenderer], rejection: Rejection, resume: ResumePoint | None = None,
    ) -> None:
        """Answers `chat` on this connection, in a task of its own; with `resume`, follows that
        turn again from that point instead of starting one."""
        if not chat.turn.visitor_labels and connection.visitor_labels:
            chat.turn.visitor_labels = connection.visitor_labels
        task = asyncio.create_task(self._answer(sid, connection, chat, make_renderer, rejection, resume))
        connection.tasks.add(task)
        task.add_done_callback(connection.tasks.discard)

    async def on_stop_generation(self, sid: str, data: Any = None) -> None:
        connection = self._connections.get(sid)
        if connection is None:
            return
        record_id = str((self.fields_of(data) or {}).get(self.record_id_field, ""))
        turn_id = connection.turns.get(record_id)
        if turn_id is None or not await self._services().engine.stop_turn(turn_id):
            message = MESSAGES.get(NO_SUCH_MESSAGE, "Message does not exist or insufficient permissions.")
            await self._emit_frames(sid, self.refusal(
                NO_SUCH_MESSAGE, f"{message}: no answer {record_id!r} in progress on this connection", ""))

    async def on_unknown(self, event: str, sid: str, data: Any = None) -> None:
        message = MESSAGES.get(NO_HANDLER, "Event handler does not exist")
        await self._emit_frames(sid, self.refusal(NO_HANDLER, f"{message}: {event}", ""))

    async def _answer(
        self, sid: str, connection: Connection, chat: ChatRequest,
        make_renderer: Callable[[TurnInfo], TurnRenderer], rejection: Rejection, resume: ResumePoint | None,
    ) -> None:
        engine = self._services().engine
        try:
            if resume is None:
                info = await engine.start_turn(chat.turn)
            elif str(resume.turn_id) in connection.turns:
                raise TurnRejected(ErrorKind.BAD_REQUEST, f"turn {resume.turn_id} is already followed on this connection")
            else:
                info = await engine.resume_turn(chat.turn, resume.turn_id)
        except TurnRejected as exc:
            code, message = code_and_message(exc.kind, exc.detail)
            await self._emit_frames(sid, rejection(code, message, chat.turn.request_id))
            return
        except Exception as exc:
            code, message = fault_code_and_message(fault_of(exc, "ADP Socket.IO turn"))
            await self._emit_frames(sid, rejection(code, message, chat.turn.request_id))
            return
        # the answer's record id is what clients send; the question's is accepted too
        record_ids = (str(info.answer_record_id), str(info.question_record_id))
        for record_id in record_ids:
            connection.turns[record_id] = info.turn_id
        # Kept replayable until they expire, even once every event was emitted: a socket that
        # died quietly is noticed only at the ping timeout, so an emitted event is no proof that
        # the client got it, and the client may come back to resume.
        engine.keep_events(info.turn_id)
        skip = resume.events_sent if resume is not None else 0
        try:
            renderer = make_renderer(info)
            async for event in engine.events(info.turn_id):
                if event is None:
                    continue
                frames = renderer.render(event)
                if frames:
                    skip -= await self._emit_frames(sid, frames, skip)
                if renderer.finished:
                    return
        finally:
            for record_id in record_ids:
                connection.turns.pop(record_id, None)

    async def _emit_frames(self, sid: str, frames: bytes, skip: int = 0) -> int:
        """Emits each SSE event of `frames` as a Socket.IO event, but the first `skip` of them
        (a resumed turn's events the client already has); returns how many were skipped."""
        skipped = 0
        for name, data in sse_packets(frames):
            if skipped < skip:
                skipped += 1
                continue
            await self.sio.emit(name, RawJson(data), to=sid)
        return skipped


def too_large(scope: Scope, limit: int) -> Response:
    """Engine.IO's own answer to a polling body over `max_http_buffer_size` (a JSON string, as text)."""
    return Response(b'"Bad Request"', status_code=400, media_type="text/plain")


def body_limit(limit: int) -> BodyLimit:
    """Long-polling bodies: Engine.IO reads a body without a length to its end, however long."""
    return BodyLimit(lambda path: path.startswith("/" + SOCKETIO_PATH), limit, too_large)
