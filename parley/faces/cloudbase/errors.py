"""CloudBase error bodies `{"code", "message", "requestId"}`, their HTTP statuses, and the
mapping from the channel's and the engine's refusals.

Codes: MISSING_CREDENTIALS and INVALID_CREDENTIALS (401) and INVALID_PATH (404) are
CloudBase gateway codes; AGENT_INVALID_PARAM, AGENT_GET_INFO_ERROR, AGENT_REQUEST_LLM_ERROR
and AGENT_SERVER_ERR are the aibot API's own; PERMISSION_DENIED (403), RESOURCE_NOT_FOUND
(404) and EXCEED_RATELIMIT (429) follow CloudBase's status groups. REQUEST_ENTITY_TOO_LARGE
(413, a body over `body_limits.cloudbase`) is Parley's own.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from parley.channels.cloudbase import Problem
from parley.engine.errors import ErrorKind
from parley.faces.faults import BUSY_MESSAGE, INTERNAL_MESSAGE, RETRY_AFTER_SECONDS, Fault

INVALID_PARAM = "AGENT_INVALID_PARAM"
LLM_ERROR = "AGENT_REQUEST_LLM_ERROR"
SERVER_ERROR = "AGENT_SERVER_ERR"
TOO_LARGE = "REQUEST_ENTITY_TOO_LARGE"

STATUS = {
    "MISSING_CREDENTIALS": 401,
    "INVALID_CREDENTIALS": 401,
    "PERMISSION_DENIED": 403,
    "AGENT_GET_INFO_ERROR": 404,
    "RESOURCE_NOT_FOUND": 404,
    "INVALID_PATH": 404,
    "METHOD_NOT_ALLOWED": 405,
    TOO_LARGE: 413,
    INVALID_PARAM: 400,
    "EXCEED_RATELIMIT": 429,
    LLM_ERROR: 502,
    SERVER_ERROR: 500,
}

PROBLEM_CODES = {
    Problem.MISSING_CREDENTIALS: "MISSING_CREDENTIALS",
    Problem.INVALID_CREDENTIALS: "INVALID_CREDENTIALS",
    Problem.FORBIDDEN: "PERMISSION_DENIED",
    Problem.BOT_NOT_FOUND: "AGENT_GET_INFO_ERROR",
    Problem.NOT_FOUND: "RESOURCE_NOT_FOUND",
    Problem.INVALID: INVALID_PARAM,
}

TURN_CODES = {
    ErrorKind.BAD_REQUEST: INVALID_PARAM,
    ErrorKind.APP_KEY_INVALID: "AGENT_GET_INFO_ERROR",
    ErrorKind.APP_NOT_FOUND: "AGENT_GET_INFO_ERROR",
    ErrorKind.APP_NOT_PUBLISHED: "AGENT_GET_INFO_ERROR",
    ErrorKind.SESSION_FORBIDDEN: "PERMISSION_DENIED",
    ErrorKind.CONCURRENCY_EXCEEDED: "EXCEED_RATELIMIT",
    ErrorKind.RATE_LIMITED: "EXCEED_RATELIMIT",
    ErrorKind.TOO_MANY_CONNECTIONS: "EXCEED_RATELIMIT",
    ErrorKind.CONTENT_TOO_LONG: INVALID_PARAM,
    ErrorKind.ROLE_TOO_LONG: INVALID_PARAM,
    ErrorKind.PROMPT_RENDER_FAILED: SERVER_ERROR,
    ErrorKind.MODEL_TIMEOUT: LLM_ERROR,
    ErrorKind.MODEL_FAILED: LLM_ERROR,
    ErrorKind.IMAGE_FAILED: INVALID_PARAM,
    ErrorKind.STORE_BUSY: SERVER_ERROR,
    ErrorKind.BUS_UNAVAILABLE: SERVER_ERROR,
    ErrorKind.INTERNAL: SERVER_ERROR,
}

TURN_MESSAGES = {
    ErrorKind.APP_NOT_PUBLISHED: "the bot's application is not published",
    ErrorKind.SESSION_FORBIDDEN: "the conversation belongs to another user",
    ErrorKind.CONCURRENCY_EXCEEDED: "too many conversations with this bot are in progress; try again shortly",
    ErrorKind.MODEL_TIMEOUT: "the model did not answer in time",
    ErrorKind.MODEL_FAILED: "the model call failed",
    ErrorKind.IMAGE_FAILED: "an image of the message could not be read",
    ErrorKind.STORE_BUSY: "the server's database is busy; try again shortly",
    ErrorKind.BUS_UNAVAILABLE: "the server cannot check its limits now; try again shortly",
    ErrorKind.INTERNAL: "internal error",
}


class FaceError(Exception):
    """A call refused by the face itself (bad input, unknown path)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def turn_code(kind: ErrorKind | str) -> str:
    try:
        return TURN_CODES.get(ErrorKind(kind), SERVER_ERROR)
    except ValueError:
        return SERVER_ERROR


def turn_message(kind: ErrorKind | str, detail: str) -> str:
    try:
        base = TURN_MESSAGES.get(ErrorKind(kind), "")
    except ValueError:
        base = ""
    if base and detail:
        return f"{base}: {detail}"
    return detail or base or str(kind)


def error_response(code: str, message: str, request_id: str) -> Response:
    body = orjson.dumps({"code": code, "message": message, "requestId": request_id})
    return Response(body, status_code=STATUS.get(code, 400), media_type="application/json")


def turn_refusal(kind: ErrorKind, detail: str, request_id: str) -> Response:
    """The engine's refusal of a turn; one it may accept shortly (its limits cannot be checked
    now) is AGENT_SERVER_ERR with 503 and Retry-After, as a busy database is."""
    response = error_response(turn_code(kind), turn_message(kind, detail), request_id)
    if kind is ErrorKind.BUS_UNAVAILABLE:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def fault_response(fault: Fault, request_id: str) -> Response:
    """The server's own failure: AGENT_SERVER_ERR, with HTTP 503 and Retry-After when the
    database is busy (the same call may succeed shortly), else 500."""
    if fault is Fault.BUSY:
        response = error_response(SERVER_ERROR, BUSY_MESSAGE, request_id)
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return error_response(SERVER_ERROR, INTERNAL_MESSAGE, request_id)
