"""One turn as an ADP event stream, whichever version renders it (v1 sse.py, v2 v2_sse.py).

Every answer is HTTP 200 with an event stream, rejections included (an `error` event),
because ADP clients treat any other status as a broken turn and read errors from events.
Headers go out at once; a keep-alive comment follows every silence of
`keepalive_interval` seconds. A client that goes away stops reading, not the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from parley.engine.errors import TurnRejected
from parley.engine.turn import TurnInfo
from parley.faces.adp.errors import code_and_message, fault_code_and_message
from parley.faces.adp.render import KEEPALIVE
from parley.faces.adp.request import ChatRequest
from parley.faces.faults import fault_of
from parley.faces.resume import EventNumbering, MalformedEventId, resume_point
from parley.faces.streaming import EventStreamResponse
from parley.services import Services

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class TurnRenderer(Protocol):
    finished: bool
    one_event: bool
    """Whether each render is at most one SSE event (see resume.EventNumbering)."""

    def render(self, event: Any) -> bytes:
        """The bytes due for `event` (b"" when nothing is); `finished` once the last is rendered."""


Rejection = Callable[[int, str, str], bytes]
"""Renders a refused turn: (code, message, request id) -> an error event."""


def wants_stream(chat: ChatRequest, info: TurnInfo) -> bool:
    """Whether to stream the answer: the request's `stream` switch, else the application's setting."""
    return {"enable": True, "disable": False}.get(chat.stream, info.streaming_enabled)


async def answer(
    services: Services,
    chat: ChatRequest,
    renderer_for: Callable[[TurnInfo], TurnRenderer],
    rejection: Rejection,
    last_event_id: str | None = None,
) -> AsyncIterator[bytes]:
    """Starts the turn and renders its events until the last (the final answer, or an error).

    The stream counts against the application's open-stream limit until it ends; while the
    turn waits in line for a slot, keep-alives flow. Each event carries an id; with
    `last_event_id` (the client's Last-Event-ID) the stream resumes that turn after that
    event instead of starting one (see faces/resume.py).
    """
    engine = services.engine
    idle = services.settings.keepalive_interval
    try:
        resume = resume_point(last_event_id)
    except MalformedEventId as exc:
        yield rejection(*code_and_message("bad_request", str(exc)), chat.turn.request_id)
        return
    try:
        app_id = await engine.open_stream(chat.turn.app_key)
    except Exception as exc:
        yield _refusal(exc, chat, rejection)
        return
    info: TurnInfo | None = None
    renderer: TurnRenderer | None = None
    try:
        try:
            if resume is not None:
                info = await engine.resume_turn(chat.turn, resume.turn_id)
            else:
                starting = asyncio.ensure_future(engine.start_turn(chat.turn))
                try:
                    while not (await asyncio.wait({starting}, timeout=idle))[0]:
                        yield KEEPALIVE
                finally:
                    if not starting.done():
                        starting.cancel()  # the client left while the turn waited for a slot
                info = starting.result()
        except Exception as exc:
            yield _refusal(exc, chat, rejection)
            return
        renderer = renderer_for(info)
        numbered = EventNumbering(info.turn_id, resume.events_sent if resume is not None else 0, renderer.one_event)
        async for batch in engine.event_batches(info.turn_id, idle=idle):
            if batch is None:
                yield KEEPALIVE
                continue
            data = b"".join([numbered(renderer.render(event)) for event in batch])  # one write for what is waiting
            if data:
                yield data
            if renderer.finished:
                if resume is not None and (end := numbered.short_end()):
                    yield end  # the client read past the end this stream has: it still gets the end
                return  # nothing follows the last event
    finally:
        if info is not None and (renderer is None or not renderer.finished):
            engine.keep_events(info.turn_id)  # the client left early: it may resume
        await engine.close_stream(app_id)


def _refusal(exc: Exception, chat: ChatRequest, rejection: Rejection) -> bytes:
    """The error event for a turn that could not start: the engine's refusal, or a fault of the
    server's own (a busy database) as an error event rather than a broken stream."""
    if isinstance(exc, TurnRejected):
        code, message = code_and_message(exc.kind, exc.detail)
    else:
        code, message = fault_code_and_message(fault_of(exc, "ADP turn"))
    return rejection(code, message, chat.turn.request_id)


async def single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def event_stream(body: AsyncIterator[bytes]) -> EventStreamResponse:
    return EventStreamResponse(body, headers=SSE_HEADERS)
