"""`POST /adp/v2/chat`: the ADP v2 dialogue over HTTP server-sent events.

The same turns as v1 (turn_stream.py), requested with a v2 body (v2_request.py) and rendered as
v2 events (v2_render.py). `/v1/qbot/chat/sse` hands v2 bodies here too (sse.py), so errors of a
v2 request are always v2 `error` events followed by `data:[DONE]`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from parley.engine.turn import TurnInfo
from parley.faces import resume
from parley.faces.adp.errors import code_and_message
from parley.faces.adp.request import BadRequest, parse_body
from parley.faces.adp.turn_stream import SSE_HEADERS, answer, event_stream, single, wants_stream
from parley.faces.adp.v2_render import V2Renderer, error_frame
from parley.faces.adp.v2_request import V2Chat, request_id_of, validate_v2
from parley.faces.bodies import BodyLimit
from parley.faces.streaming import EventStreamResponse
from parley.services import Services

PATH = "/adp/v2/chat"


async def chat_v2(request: Request) -> EventStreamResponse:
    services: Services = request.app.state.services
    try:
        data = parse_body(await request.body())
    except BadRequest as exc:
        return refuse(str(exc), "")
    return respond_data(services, data, request.headers.get(resume.HEADER))


def respond_data(services: Services, data: dict[str, Any], last_event_id: str | None = None) -> EventStreamResponse:
    """Answers a parsed v2 body: the turn's v2 events, or a v2 error."""
    try:
        request = validate_v2(data)
    except BadRequest as exc:
        return refuse(str(exc), request_id_of(data))
    return event_stream(answer(services, request.chat, renderer_for(request), error_frame, last_event_id))


def renderer_for(request: V2Chat, *, terminator: bool = True) -> Callable[[TurnInfo], V2Renderer]:
    """How a v2 subscriber's renderer is made for `request` (SSE, or a socket without the terminator)."""
    chat = request.chat

    def renderer(info: TurnInfo) -> V2Renderer:
        return V2Renderer(
            info,
            incremental=chat.incremental,
            throttle=chat.streaming_throttle or info.streaming_throttle,
            stream=wants_stream(chat, info),
            contents=request.contents,
            terminator=terminator,
        )
    return renderer


def refuse(detail: str, request_id: str) -> EventStreamResponse:
    """A malformed v2 request: a 400 `error` event, then the terminator."""
    code, message = code_and_message("bad_request", detail)
    return event_stream(single(error_frame(code, message, request_id)))


def too_large(scope: Scope, limit: int) -> Response:
    """A body over the limit: a v2 `error` event (HTTP 200, code 400), then the terminator."""
    code, message = code_and_message("bad_request", f"the request body is larger than {limit} bytes")
    return Response(error_frame(code, message, ""), media_type="text/event-stream", headers=SSE_HEADERS)


def body_limit(limit: int) -> BodyLimit:
    return BodyLimit(lambda path: path == PATH, limit, too_large)


routes = [Route(PATH, chat_v2, methods=["POST"])]
