"""`POST /v1/qbot/chat/sse`: the ADP dialogue over HTTP server-sent events.

Every answer is HTTP 200 with an event stream, rejections included (an `error` event),
because ADP clients treat any other status as a broken turn and read errors from events.
Headers go out at once; a keep-alive comment follows every silence of
`keepalive_interval` seconds. A client that goes away stops reading, not the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from parley.engine.errors import TurnRejected
from parley.faces.adp.errors import code_and_message
from parley.faces.adp.render import KEEPALIVE, AdpRenderer, error_frame
from parley.faces.adp.request import BadRequest, ChatRequest, parse_body, validate_chat
from parley.faces.bodies import BodyLimit
from parley.faces.streaming import EventStreamResponse, read_body
from parley.services import Services

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


PATH = "/v1/qbot/chat/sse"


async def chat_sse(request: Request) -> EventStreamResponse:
    return respond(request.app.state.services, await request.body())


async def chat_sse_asgi(services: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """The endpoint as a plain ASGI callable, for the server's hot path (see server.HotPaths)."""
    body = await read_body(receive)
    if body is not None:
        await respond(services, body)(scope, receive, send)


def respond(services: Services, body: bytes) -> EventStreamResponse:
    try:
        chat = validate_chat(parse_body(body))
    except BadRequest as exc:
        code, message = code_and_message("bad_request", str(exc))
        return _stream(_single(error_frame(code, message, _request_id_of(body))))
    return _stream(answer(services, chat))


async def answer(services: Services, chat: ChatRequest) -> AsyncIterator[bytes]:
    """Starts the turn and renders its events until the final reply (or an error).

    The stream counts against the application's open-stream limit until it ends; while the
    turn waits in line for a slot, keep-alives flow.
    """
    engine = services.engine
    idle = services.settings.keepalive_interval
    try:
        app_id = await engine.open_stream(chat.turn.app_key)
    except TurnRejected as exc:
        yield _rejection(exc, chat)
        return
    try:
        starting = asyncio.ensure_future(engine.start_turn(chat.turn))
        try:
            while not (await asyncio.wait({starting}, timeout=idle))[0]:
                yield KEEPALIVE
        finally:
            if not starting.done():
                starting.cancel()  # the client left while the turn waited for a slot
        try:
            info = starting.result()
        except TurnRejected as exc:
            yield _rejection(exc, chat)
            return
        stream = {"enable": True, "disable": False}.get(chat.stream, info.streaming_enabled)
        renderer = AdpRenderer(
            info,
            incremental=chat.incremental,
            throttle=chat.streaming_throttle or info.streaming_throttle,
            stream=stream,
        )
        async for batch in engine.event_batches(info.turn_id, idle=idle):
            if batch is None:
                yield KEEPALIVE
                continue
            data = b"".join(renderer.render(event) for event in batch)  # one write for what is waiting
            if data:
                yield data
            if renderer.finished:
                return  # nothing follows the final reply
    finally:
        await engine.close_stream(app_id)


def _rejection(exc: TurnRejected, chat: ChatRequest) -> bytes:
    code, message = code_and_message(exc.kind, exc.detail)
    return error_frame(code, message, chat.turn.request_id)


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _stream(body: AsyncIterator[bytes]) -> EventStreamResponse:
    return EventStreamResponse(body, headers=SSE_HEADERS)


def _request_id_of(body: bytes) -> str:
    """The request_id of a rejected body, when one can be read, so the error still echoes it."""
    try:
        data = parse_body(body)
    except BadRequest:
        return ""
    value = data.get("request_id")
    return value if isinstance(value, str) and len(value) <= 255 else ""


routes = [Route(PATH, chat_sse, methods=["POST"])]


def too_large(scope: Scope, limit: int) -> Response:
    """A body over the limit: the `error` event every rejection is (HTTP 200), code 400."""
    code, message = code_and_message("bad_request", f"the request body is larger than {limit} bytes")
    return Response(error_frame(code, message), media_type="text/event-stream", headers=SSE_HEADERS)


def body_limit(limit: int) -> BodyLimit:
    return BodyLimit(lambda path: path == PATH, limit, too_large)
