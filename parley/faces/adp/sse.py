"""`POST /v1/qbot/chat/sse`: the ADP dialogue over HTTP server-sent events.

v1 bodies (snake_case, `content`) are answered with v1 events; v2 bodies (PascalCase
`ConversationId`, `Contents`), which adp-chat-client v0.4.0 and later post to this path in
Private mode, are answered with v2 events (v2_sse.py). See turn_stream.py for what every
stream has in common.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from parley.engine.turn import TurnInfo
from parley.faces import resume
from parley.faces.adp import v2_sse
from parley.faces.adp.errors import code_and_message
from parley.faces.adp.render import AdpRenderer, error_frame
from parley.faces.adp.request import BadRequest, ChatRequest, parse_body, validate_chat
from parley.faces.adp.turn_stream import SSE_HEADERS, answer, event_stream, single, wants_stream
from parley.faces.adp.v2_request import looks_like_v2, looks_like_v2_bytes
from parley.faces.bodies import BodyLimit
from parley.faces.streaming import EventStreamResponse, read_body
from parley.services import Services

PATH = "/v1/qbot/chat/sse"


async def chat_sse(request: Request) -> EventStreamResponse:
    return respond(request.app.state.services, await request.body(), request.headers.get(resume.HEADER))


async def chat_sse_asgi(services: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """The endpoint as a plain ASGI callable, for the server's hot path (see server.HotPaths)."""
    body = await read_body(receive)
    if body is not None:
        await respond(services, body, resume.last_event_id(scope["headers"]))(scope, receive, send)


def respond(services: Services, body: bytes, last_event_id: str | None = None) -> EventStreamResponse:
    """The answer to a body; with `last_event_id`, the rest of that turn's stream (resume.py)."""
    try:
        data = parse_body(body)
    except BadRequest as exc:
        if looks_like_v2_bytes(body):
            return v2_sse.refuse(str(exc), "")
        return _refuse(str(exc), "")
    if looks_like_v2(data):
        return v2_sse.respond_data(services, data, last_event_id)
    try:
        chat = validate_chat(data)
    except BadRequest as exc:
        return _refuse(str(exc), _request_id_of(data))
    return event_stream(answer(services, chat, renderer_for(chat), error_frame, last_event_id))


def renderer_for(chat: ChatRequest) -> Callable[[TurnInfo], AdpRenderer]:
    """How a v1 subscriber's renderer is made for `chat` (SSE and Socket.IO alike)."""
    def renderer(info: TurnInfo) -> AdpRenderer:
        return AdpRenderer(
            info,
            incremental=chat.incremental,
            throttle=chat.streaming_throttle or info.streaming_throttle,
            stream=wants_stream(chat, info),
        )
    return renderer


def _refuse(detail: str, request_id: str) -> EventStreamResponse:
    code, message = code_and_message("bad_request", detail)
    return event_stream(single(error_frame(code, message, request_id)))


def _request_id_of(data: dict[str, Any]) -> str:
    """The request_id of a rejected body, when it is usable, so that the error still echoes it."""
    value = data.get("request_id")
    return value if isinstance(value, str) and len(value) <= 255 else ""


routes = [Route(PATH, chat_sse, methods=["POST"])]


def too_large(scope: Scope, limit: int) -> Response:
    """A body over the limit: the `error` event every rejection is (HTTP 200), code 400."""
    code, message = code_and_message("bad_request", f"the request body is larger than {limit} bytes")
    return Response(error_frame(code, message), media_type="text/event-stream", headers=SSE_HEADERS)


def body_limit(limit: int) -> BodyLimit:
    return BodyLimit(lambda path: path == PATH, limit, too_large)
