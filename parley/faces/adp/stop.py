"""`POST /v1/qbot/chat/stop`: stops an answer in progress for an SSE client (Parley's own call).

Socket.IO clients stop an answer with `stop_generation` on their connection; an SSE client
has no channel back into its stream, so it names the answer instead: the same `bot_app_key`,
`visitor_biz_id` and `session_id` as the chat request, and the answer's `record_id` (from its
reply events). The answer may run on any instance: the stop reaches it through the bus. The
answer then ends as the Socket.IO stop ends it: recorded as stopped, with a final reply.

Every answer is HTTP 200 with a JSON body, as ADP's errors are: `{"type": "stop", ...}` when
the answer was stopped, else the `error` event's data (`error: {code, message}`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.engine.errors import TurnRejected
from parley.engine.faces import Face
from parley.faces.adp.errors import MESSAGES, code_and_message, fault_code_and_message
from parley.faces.adp.render import error_body
from parley.faces.adp.request import SESSION_ID, BadRequest, parse_body, string_field
from parley.faces.faults import fault_of
from parley.services import Services

PATH = "/v1/qbot/chat/stop"
NO_SUCH_MESSAGE = 460006
RECORD_ID_DIGITS = 20


async def chat_stop(request: Request) -> Response:
    services: Services = request.app.state.services
    data: dict[str, Any] = {}
    try:
        data = parse_body(await request.body())
        request_id = string_field(data, "request_id", 255)
        session_id = string_field(data, "session_id", 64, required=True)
        if not SESSION_ID.match(session_id):
            raise BadRequest("session_id must match ^[a-zA-Z0-9_-]{2,64}$")
        app_key = string_field(data, "bot_app_key", 128, required=True, non_empty=True)
        visitor_id = string_field(data, "visitor_biz_id", 64, required=True, non_empty=True)
        record_id = _record_id(data.get("record_id"))
    except BadRequest as exc:
        return _error(*code_and_message("bad_request", str(exc)), _request_id_of(data))
    try:
        stopped = await services.engine.stop_visitor_turn(app_key, visitor_id, session_id, Face.ADP, record_id)
    except TurnRejected as exc:
        return _error(*code_and_message(exc.kind, exc.detail), request_id)
    except Exception as exc:
        return _error(*fault_code_and_message(fault_of(exc, "ADP stop")), request_id)
    if not stopped:
        message = f"{MESSAGES[NO_SUCH_MESSAGE]}: no answer {record_id} in progress in this session"
        return _error(NO_SUCH_MESSAGE, message, request_id)
    return _json({"type": "stop", "request_id": request_id, "payload": {"record_id": str(record_id), "request_id": request_id}})


def _record_id(value: Any) -> int:
    """The answer's record id: a string of digits as reply events carry it (a JSON number is taken too)."""
    if isinstance(value, bool) or value is None or value == "":
        raise BadRequest("record_id is required: the answer's record_id from its reply events")
    text = str(value) if isinstance(value, int) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > RECORD_ID_DIGITS:
        raise BadRequest("record_id must be a record id (digits)")
    return int(text)


def _request_id_of(data: dict[str, Any]) -> str:
    value = data.get("request_id")
    return value if isinstance(value, str) and len(value) <= 255 else ""


def _error(code: int, message: str, request_id: str) -> Response:
    return _json(error_body(code, message, request_id))


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


routes = [Route(PATH, chat_stop, methods=["POST"])]
