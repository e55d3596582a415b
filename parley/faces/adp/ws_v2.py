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

from parley.faces.adp.v2_render import error_frame
from parley.faces.adp.v2_request import V2Chat, request_id_of, validate_v2, validate_v2_resume
from parley.faces.adp.v2_sse import renderer_for
from parley.faces.adp.ws import AdpSocketServer, Asked, too_large
from parley.faces.bodies import BodyLimit
from parley.faces.resume import ResumePoint

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


def _v2_turn(request: V2Chat, resume: ResumePoint | None) -> Asked:
    return request.chat, renderer_for(request, terminator=False), resume


class AdpV2SocketServer(AdpSocketServer):
    socketio_path = SOCKETIO_PATH
    fields_of = staticmethod(_request_fields)
    request_id_of = staticmethod(request_id_of)
    refusal = staticmethod(socket_error)
    record_id_field = "RecordId"

    def register(self) -> None:
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("request", self.on_request)
        self.sio.on("stop_generation", self.on_stop_generation)
        self.sio.on("resume", self.on_resume)
        self.sio.on("*", self.on_unknown)

    async def on_request(self, sid: str, data: Any = None) -> None:
        await self.begin(sid, data, "request", lambda fields, c: _v2_turn(
            validate_v2(fields, app_key=c.app_key, visitor_id=c.visitor_id), None))

    async def on_resume(self, sid: str, data: Any = None) -> None:
        await self.begin(sid, data, "resume", lambda fields, c: _v2_turn(
            *validate_v2_resume(fields, app_key=c.app_key, visitor_id=c.visitor_id)))
