"""The `/v1/aibot` endpoint family, mounted as one ASGI app.

Every response carries `X-Request-Id`; every refusal is `{"code", "message", "requestId"}`
as `application/json` with a matching HTTP status, which `@cloudbase/ai` turns into an
error for streaming calls too. Streams are `text/event-stream` (see render.py, stream.py).

`history` in send-message is checked but the context comes from the conversation's stored
records: the engine has no way yet to take history from the client. `searchEnable` searches
the web when the bot's own switch is on too. Endpoints of the family that Parley does not serve
(bot create/update/delete, files, speech, image and bot generation, WeChat) answer
INVALID_PATH or METHOD_NOT_ALLOWED.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.channels.cloudbase import (
    Bot,
    Caller,
    ChannelError,
    CloudBaseChannel,
    ConversationRow,
    FeedbackQuery,
    FeedbackRow,
)
from parley.engine.engine import RecordRow
from parley.engine.errors import TurnRejected
from parley.faces import resume
from parley.faces.bodies import BodyLimit
from parley.faces.cloudbase import request as read
from parley.faces.cloudbase.errors import (
    INVALID_PARAM,
    LLM_ERROR,
    PROBLEM_CODES,
    SERVER_ERROR,
    TOO_LARGE,
    FaceError,
    error_response,
    fault_response,
    turn_refusal,
)
from parley.faces.cloudbase.render import DONE, ChunkRenderer
from parley.faces.cloudbase.stream import event_stream
from parley.faces.faults import fault_of
from parley.faces.resume import EventNumbering
from parley.ids import new_id
from parley.services import Services

log = logging.getLogger(__name__)

REQUEST_ID = "parley.cloudbase.request_id"
SENDER_FILTERS = ("include", "exclude", "equal", "unequal", "prefix")
MAX_PAGE = 1_000_000
MAX_OFFSET = 100_000_000


@dataclass(slots=True)
class Call:
    """One authenticated call: what a handler needs."""

    request: Request
    services: Services
    channel: CloudBaseChannel
    caller: Caller
    request_id: str

    @property
    def query(self) -> dict[str, str]:
        return read.query_of(self.request.scope.get("query_string", b""))

    async def body(self) -> dict[str, Any]:
        return read.json_body(await self.request.body())

    async def bot(self, usable: bool = False) -> Bot:
        bot_id = self.request.path_params["bot_id"]
        if usable:
            return await self.channel.usable_bot(self.caller, bot_id)
        return await self.channel.bot(self.caller, bot_id)


Handler = Callable[[Call], Awaitable[Response]]


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        request_id = request.scope[REQUEST_ID]
        services: Services = request.app.state.services
        channel = services.cloudbase
        try:
            caller = await channel.authenticate(request.headers.get("authorization"))
            return await handler(Call(request, services, channel, caller, request_id))
        except ChannelError as exc:
            return error_response(PROBLEM_CODES[exc.problem], exc.message, request_id)
        except FaceError as exc:
            return error_response(exc.code, exc.message, request_id)

    return endpoint


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- bots ---------------------------------------------------------------------------


def bot_json(bot: Bot, caller: Caller) -> dict[str, Any]:
    config = bot.config
    data = {
        "botId": bot.bot_id,
        "name": config.name,
        "introduction": config.description,
        "welcomeMessage": config.greeting,
        "avatar": config.avatar,
        "background": bot.row.background,
        "isNeedRecommend": bot.row.need_recommend,
        "type": "text",
        "searchEnable": bot.row.search_enable,
        "multiConversationEnable": bot.row.multi_conversation,
        "initQuestions": list(config.opening_questions),
        "knowledgeBase": [],
        "tags": [],
        "enable": bot.row.enabled,
        "createTime": _iso(bot.row.created_at),
        "updateTime": _iso(bot.row.updated_at),
    }
    if caller.is_operator:
        data["agentSetting"] = config.system_role
        data["model"] = config.model or ""
    return data


async def list_bots(call: Call) -> Response:
    query = call.query
    page_size = read.integer(query, "pageSize", 10, 1, 100)
    page_number = read.integer(query, "pageNumber", 1, 1, MAX_PAGE)
    bots = await call.channel.bots(
        call.caller, name=query.get("name", ""), introduction=query.get("introduction", ""),
        information=query.get("information", ""), enable=read.boolean(query, "enable"),
    )
    start = (page_number - 1) * page_size
    return _json({"botList": [bot_json(b, call.caller) for b in bots[start:start + page_size]], "total": len(bots)})


async def get_bot(call: Call) -> Response:
    return _json(bot_json(await call.bot(), call.caller))


# --- send-message ---------------------------------------------------------------------


async def send_message(call: Call) -> Response:
    """Starts a turn and streams it; with a Last-Event-ID, the rest of that turn's stream."""
    try:
        resume_at = resume.resume_point(call.request.headers.get(resume.HEADER))
    except resume.MalformedEventId as exc:
        raise FaceError(INVALID_PARAM, str(exc)) from None
    body = await call.body()
    message = read.string(body, "msg", 100_000, required=True)
    if not message.strip():
        raise read.invalid("msg must not be empty")
    history = read.history(body)
    files = read.files(body)
    search_wanted = read.boolean(body, "searchEnable")
    conversation_id = read.string(body, "conversationId", 64) or None
    bot = await call.bot(usable=True)
    conversation = await call.channel.conversation(call.caller, bot, conversation_id)
    turn = call.channel.turn_request(
        call.caller, bot, conversation, message, files=files, request_id=call.request_id, history=history,
        search=bool(search_wanted and bot.row.search_enable),  # CloudBase: the bot's switch and the request's
    )
    engine = call.services.engine
    try:
        if resume_at is not None:
            info = await engine.resume_turn(turn, resume_at.turn_id)
        else:
            info = await engine.start_turn(turn)
    except TurnRejected as exc:
        return turn_refusal(exc.kind, exc.detail, call.request_id)
    if resume_at is None:
        await call.channel.message_accepted(conversation, message)
    settings = call.services.settings.cloudbase
    renderer = ChunkRenderer(str(info.answer_record_id), info.model, settings.model_version, info.timestamp)
    numbered = EventNumbering(info.turn_id, resume_at.events_sent if resume_at is not None else 0)
    return event_stream(_answer(call.services, info.turn_id, renderer, numbered), settings.heartbeat_interval)


async def _answer(
    services: Services, turn_id: int, renderer: ChunkRenderer, numbered: EventNumbering
) -> AsyncIterator[bytes]:
    """The turn's chunks, each with its id; whatever happens, an error chunk if it did not finish,
    then [DONE]. A client that leaves before the end may resume (faces/resume.py)."""
    last = b""
    try:
        async for event in services.engine.events(turn_id):
            last = renderer.render(event)
            frame = numbered(last)
            if frame:
                yield frame
            if renderer.finished:
                break
        if not renderer.finished:
            yield numbered(renderer.error(SERVER_ERROR, "the answer ended without a result"))
    except Exception:
        log.exception("CloudBase stream of turn %s failed", turn_id)
        yield numbered(renderer.error(SERVER_ERROR, "internal error"))
    finally:
        if not renderer.finished:
            services.engine.keep_events(turn_id)
    # A client that read past the end this stream has (resume.EventNumbering.short_end) still gets the end.
    yield numbered(DONE) or numbered.short_end(last + DONE)


# --- recommend-questions --------------------------------------------------------------


async def recommend_questions(call: Call) -> Response:
    body = await call.body()
    message = read.string(body, "msg", 100_000)
    history = read.history(body)
    for name in ("name", "introduction", "agentSetting"):
        read.string(body, name, 100_000)
    bot = await call.bot(usable=True)
    settings = call.services.settings.cloudbase
    model = bot.config.model or call.services.models.default_name
    renderer = ChunkRenderer(str(new_id()), model, settings.model_version, int(time.time()))
    return event_stream(_questions(call.channel, bot, message, history, renderer), settings.heartbeat_interval)


async def _questions(
    channel: CloudBaseChannel, bot: Bot, message: str, history: list[Any], renderer: ChunkRenderer
) -> AsyncIterator[bytes]:
    try:
        async for text in channel.recommend_questions(bot, message, history):
            yield renderer.text(text)
        yield renderer.final()
    except ChannelError as exc:
        yield renderer.error(PROBLEM_CODES[exc.problem], exc.message)
    except Exception as exc:  # the model failed or timed out: say so in the stream
        log.warning("recommend-questions for bot %s failed: %s", bot.bot_id, exc)
        yield renderer.error(LLM_ERROR, f"the model call failed: {getattr(exc, 'message', None) or type(exc).__name__}")
    yield DONE


# --- records --------------------------------------------------------------------------


def record_json(record: RecordRow, bot_id: str, conversation_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "botId": bot_id,
        "recordId": str(record.id),
        "role": "user" if record.is_from_self else "assistant",
        "content": record.content,
        "conversation": conversation_id,
        "type": "text",
        "image": "",
        "triggerSrc": "",
        "replyTo": str(record.related_record_id) if record.related_record_id else "",
        # An answer is stamped when it was stored: the engine keeps its start only to the second.
        "createTime": _iso(record.created_at if record.is_from_self else record.finished_at or record.created_at),
    }
    if record.reasoning:
        data["reasoningContent"] = record.reasoning
    if not record.is_from_self and record.status != "success":
        data["status"] = record.status  # stopped, failed, streaming, interrupted (docs/applications.md)
    if record.is_from_self:
        data["fileInfos"] = [
            {"cloudId": f.get("file_url", ""), "fileName": f.get("file_name", ""), "type": f.get("file_type", ""), "bytes": 0}
            for f in record.file_infos or []
        ]
    return data


async def get_records(call: Call) -> Response:
    query = call.query
    sort = query.get("sort")
    if sort not in ("asc", "desc"):
        raise read.invalid('sort is required: "asc" or "desc"')
    page_size = read.integer(query, "pageSize", 10, 1, 100)
    page_number = read.integer(query, "pageNumber", 1, 1, MAX_PAGE)
    bot = await call.bot()
    rows, total, conversation_id = await call.channel.records(
        call.caller, bot, query.get("conversationId"), sort == "desc", page_size, page_number
    )
    return _json({"recordList": [record_json(r, bot.bot_id, conversation_id) for r in rows], "total": total})


# --- feedback -------------------------------------------------------------------------


def feedback_json(row: FeedbackRow, bot_id: str) -> dict[str, Any]:
    return {
        "recordId": str(row.record_id),
        "type": row.type,
        "botId": bot_id,
        "comment": row.comment,
        "rating": row.rating,
        "tags": row.tags,
        "input": row.input,
        "aiAnswer": row.ai_answer,
        "sender": row.sender,
        "createTime": _iso(row.created_at),
    }


async def send_feedback(call: Call) -> Response:
    feedback = read.feedback(await call.body())
    bot = await call.bot()
    await call.channel.submit_feedback(call.caller, bot, feedback)
    return _json({"status": "success"})


async def get_feedback(call: Call) -> Response:
    query = call.query
    kind = query.get("type")
    if kind is not None and kind not in ("upvote", "downvote"):
        raise read.invalid('type must be "upvote" or "downvote"')
    sender_filter = query.get("senderFilter", "equal")
    if sender_filter not in SENDER_FILTERS:
        raise read.invalid(f"senderFilter must be one of {', '.join(SENDER_FILTERS)}")
    feedback_query = FeedbackQuery(
        type=kind,
        sender=query.get("sender"),
        sender_filter=sender_filter,
        min_rating=read.integer(query, "minRating", 0, 0, read.MAX_RATING) if "minRating" in query else None,
        max_rating=read.integer(query, "maxRating", 0, 0, read.MAX_RATING) if "maxRating" in query else None,
        since_ms=read.timestamp_ms(query, "from"),
        until_ms=read.timestamp_ms(query, "to"),
    )
    page_size = read.integer(query, "pageSize", 10, 1, 100)
    page_number = read.integer(query, "pageNumber", 1, 1, MAX_PAGE)
    bot = await call.bot()
    rows, total = await call.channel.feedback(call.caller, bot, feedback_query, page_size, page_number)
    return _json({"feedbackList": [feedback_json(r, bot.bot_id) for r in rows], "total": total})


# --- conversations --------------------------------------------------------------------


def conversation_json(row: ConversationRow) -> dict[str, Any]:
    return {
        "conversationId": row.conversation_id,
        "title": row.title,
        "isDefault": row.is_default,
        "createTime": _iso(row.created_at),
        "updateTime": _iso(row.updated_at),
    }


async def create_conversation(call: Call) -> Response:
    body = await call.body()
    title = read.string(body, "title", 256)
    bot = await call.bot()
    row = await call.channel.create_conversation(call.caller, bot, title)
    return _json(conversation_json(row), 201)


async def list_conversations(call: Call) -> Response:
    query = call.query
    limit = read.integer(query, "limit", 10, 1, 100)
    offset = read.integer(query, "offset", 0, 0, MAX_OFFSET)
    is_default = read.boolean(query, "isDefault")
    bot = await call.bot()
    rows, total = await call.channel.conversations(call.caller, bot, is_default, offset, limit)
    return _json({"data": [conversation_json(r) for r in rows], "total": total})


async def update_conversation(call: Call) -> Response:
    body = await call.body()
    title = read.string(body, "title", 256, required=True)
    bot = await call.bot()
    row = await call.channel.rename_conversation(call.caller, bot, call.request.path_params["conversation_id"], title)
    return _json(conversation_json(row))


async def delete_conversation(call: Call) -> Response:
    bot = await call.bot()
    conversation_id = call.request.path_params["conversation_id"]
    await call.channel.delete_conversation(call.caller, bot, conversation_id)
    return _json({"conversationId": conversation_id, "status": "success"})


# --- the mounted app ------------------------------------------------------------------


async def not_served(scope: Scope, receive: Receive, send: Send) -> None:
    message = f"{scope.get('method', '')} {scope.get('path', '')} is not served by Parley"
    response = error_response("INVALID_PATH", message, scope[REQUEST_ID])
    await response(scope, receive, send)


class RequestIds:
    """Gives every call a request id: in the `X-Request-Id` header, and in error bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @property
    def routes(self) -> list[BaseRoute]:
        """The wrapped router's routes, so that the Mount lists them (url_path_for, the OpenAPI test)."""
        return getattr(self.app, "routes", [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        scope[REQUEST_ID] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except HTTPException as exc:  # the router's 404 and 405
            if started:
                raise
            code = "METHOD_NOT_ALLOWED" if exc.status_code == 405 else "INVALID_PATH"
            await error_response(code, exc.detail, request_id)(scope, receive, send_with_id)
        except ClientDisconnect:  # gone, or cut off past the body limit (and answered already)
            return
        except Exception as exc:
            if started:
                raise
            await fault_response(fault_of(exc, "CloudBase call"), request_id)(scope, receive, send_with_id)


BOT = "/bots/{bot_id}"
router = Router(
    routes=[
        Route("/bots", authenticated(list_bots), methods=["GET"]),
        Route(BOT, authenticated(get_bot), methods=["GET"]),
        Route(BOT + "/send-message", authenticated(send_message), methods=["POST"]),
        Route(BOT + "/recommend-questions", authenticated(recommend_questions), methods=["POST"]),
        Route(BOT + "/records", authenticated(get_records), methods=["GET"]),
        Route(BOT + "/feedback", authenticated(send_feedback), methods=["POST"]),
        Route(BOT + "/feedback", authenticated(get_feedback), methods=["GET"]),
        Route(BOT + "/conversation", authenticated(create_conversation), methods=["POST"]),
        Route(BOT + "/conversation", authenticated(list_conversations), methods=["GET"]),
        Route(BOT + "/conversation/{conversation_id}", authenticated(update_conversation), methods=["PATCH"]),
        Route(BOT + "/conversation/{conversation_id}", authenticated(delete_conversation), methods=["DELETE"]),
    ],
    default=not_served,
    redirect_slashes=False,  # `/conversation/` is a path CloudBase does not serve, not a redirect
)

routes = [Mount("/v1/aibot", app=RequestIds(router))]


def too_large(scope: Scope, limit: int) -> Response:
    request_id = str(uuid.uuid4())
    response = error_response(TOO_LARGE, f"the request body is larger than {limit} bytes", request_id)
    response.headers["X-Request-Id"] = request_id
    return response


def body_limit(limit: int) -> BodyLimit:
    return BodyLimit(lambda path: path.startswith("/v1/aibot"), limit, too_large)
