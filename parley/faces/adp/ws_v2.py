"""ADP v2 dialogue over WebSocket: Socket.IO v4 (Engine.IO 4) at `/adp/v2/chat/conn/`.

The handshake is v1's (ws.py): a one-time token, redeemed from the same store GetWsToken (and
the `adp` service's CreateWebSocketToken) issue into, binds the application and the visitor.
A turn is asked with `42["request",{"Type":"request","Request":{ConversationId, Contents, ...}}]`
(the v2 body without AppKey and VisitorId); its v2 events come back as Socket.IO events named
by their `Type` (`request_ack`, `response.created`, ..., `response.completed`, or `error`), each
with exactly the JSON of the SSE stream's `data:` line. There is no `[DONE]` on a socket.
`stop_generation {RecordId}` stops a turn this connection started or resumed.

A client that lost its connection connects again and sends
`42["resume",{"Type":"resume","Request":{ConversationId, RecordId, Offset, ...}}]`: the answer's
RecordId, how many of the turn's events it got (`request_ack` is the first), and the request
fields that shape the events; the rest of the turn follows, as in v1 (ws.py).
"""

from __future__ import annotations

from typing import Any

from parley.faces.adp.errors import MESSAGES, code_and_message
from parley.faces.adp.request import BadRequest
from parley.faces.adp.v2_render import error_frame
from parley.faces.adp.v2_request import request_id_of, validate_v2, validate_v2_resume
from parley.faces.adp.v2_sse import renderer_for
from parley.faces.adp.ws import NO_HANDLER, NO_SUCH_MESSAGE, AdpSocketServer, too_large
from parley.faces.bodies import BodyLimit

SOCKETIO_PATH = "adp/v2/chat/conn"


def body_limit(limit: int) -> BodyLimit:
    """Long-polling bodies on the v2 socket, refused as Engine.IO refuses them (see ws.py)."""
    return BodyLimit(lambda path: path.startswith("/" + SOCKETIO_PATH), limit, too_large)


def socket_error(code: int, message: str, request_id: str = "") -> bytes:
    """A v2 `error` event as a socket sends it (no terminator)."""
    return error_frame(code, message, request_id, terminator=False)


def _request_fields(data: Any) -> dict[str, Any] | None:
    """The `Request` object of a `request` event; a bare request object is accepted too."""
    if not isinstance(data, dict):
        return None
    inner = data.get("Request")
    return inner if isinstance(inner, dict) else data


class AdpV2SocketServer(AdpSocketServer):
    socketio_path = SOCKETIO_PATH

    def register(self) -> None:
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("request", self.on_request)
        self.sio.on("stop_generation", self.on_stop)
        self.sio.on("resume", self.on_resume_v2)
        self.sio.on("*", self.on_unknown_event)

    async def on_request(self, sid: str, data: Any = None) -> None:
        connection = self._connections.get(sid)
        if connection is None:
            return
        fields = _request_fields(data)
        try:
            if fields is None:
                raise BadRequest("the request event must carry an object")
            request = validate_v2(fields, app_key=connection.app_key, visitor_id=connection.visitor_id)
        except BadRequest as exc:
            code, message = code_and_message("bad_request", str(exc))
            await self._emit_frames(sid, socket_error(code, message, request_id_of(fields or {})))
            return
        self.start(sid, connection, request.chat, renderer_for(request, terminator=False), socket_error)

    async def on_resume_v2(self, sid: str, data: Any = None) -> None:
        connection = self._connections.get(sid)
        if connection is None:
            return
        fields = _request_fields(data)
        try:
            if fields is None:
                raise BadRequest("the resume event must carry an object")
            request, point = validate_v2_resume(fields, app_key=connection.app_key, visitor_id=connection.visitor_id)
        except BadRequest as exc:
            code, message = code_and_message("bad_request", str(exc))
            await self._emit_frames(sid, socket_error(code, message, request_id_of(fields or {})))
            return
        self.start(sid, connection, request.chat, renderer_for(request, terminator=False), socket_error, point)

    async def on_stop(self, sid: str, data: Any = None) -> None:
        connection = self._connections.get(sid)
        if connection is None:
            return
        fields = _request_fields(data) or {}
        record_id = str(fields.get("RecordId", ""))
        turn_id = connection.turns.get(record_id)
        if turn_id is None or not await self._services().engine.stop_turn(turn_id):
            message = MESSAGES.get(NO_SUCH_MESSAGE, "Message does not exist or insufficient permissions.")
            await self._emit_frames(sid, socket_error(NO_SUCH_MESSAGE, f"{message}: no answer {record_id!r} in progress on this connection"))

    async def on_unknown_event(self, event: str, sid: str, data: Any = None) -> None:
        message = MESSAGES.get(NO_HANDLER, "Event handler does not exist")
        await self._emit_frames(sid, socket_error(NO_HANDLER, f"{message}: {event}"))
