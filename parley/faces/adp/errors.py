"""ADP error codes and their documented messages, and the mapping from engine errors."""

from __future__ import annotations

from parley.engine.errors import ErrorKind
from parley.faces.faults import BUSY_MESSAGE, Fault

BAD_REQUEST = 400
MODEL_FAILED = 500
"""Parley's own code (ADP documents none) for an upstream model error or an internal fault."""
WORKFLOW_FAILED = 501
"""Parley's own code (ADP documents none) for a failed workflow node; the message carries its FailMessage."""

MESSAGES = {
    400: "Request parameter error",
    460001: "Token Verification Failure",
    460004: "The application does not exist.",
    460006: "Message does not exist or insufficient permissions.",
    460008: "Fail to render Prompt",
    460010: "The session does not exist or insufficient permissions.",
    460011: "Exceed the concurrency limit",
    460020: "Model request timeout",
    460024: "Invalid tag",
    460025: "Image Analysis failed.",
    460031: "The number of connections in this application has exceeded the request limit. Try again later.",
    460034: "Content too long",
    4505004: "APPKEY is invalid, please verify the source of APPKEY",
    500: "Model call failed",
    501: "Workflow node failed",
}

CODES = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.APP_KEY_INVALID: 4505004,
    ErrorKind.APP_NOT_FOUND: 460004,
    ErrorKind.APP_NOT_PUBLISHED: 460004,
    ErrorKind.SESSION_FORBIDDEN: 460010,
    ErrorKind.CONCURRENCY_EXCEEDED: 460011,
    ErrorKind.RATE_LIMITED: 460011,
    ErrorKind.INVALID_LABEL: 460024,
    ErrorKind.TOO_MANY_CONNECTIONS: 460031,
    ErrorKind.CONTENT_TOO_LONG: 460034,
    ErrorKind.ROLE_TOO_LONG: 460034,
    ErrorKind.PROMPT_RENDER_FAILED: 460008,
    ErrorKind.MODEL_TIMEOUT: 460020,
    ErrorKind.MODEL_FAILED: MODEL_FAILED,
    ErrorKind.WORKFLOW_FAILED: WORKFLOW_FAILED,
    ErrorKind.IMAGE_FAILED: 460025,
    ErrorKind.STORE_BUSY: 460011,
    ErrorKind.BUS_UNAVAILABLE: 460011,
    ErrorKind.INTERNAL: MODEL_FAILED,
}


def code_and_message(kind: ErrorKind | str, detail: str = "") -> tuple[int, str]:
    code = CODES.get(ErrorKind(kind), MODEL_FAILED)
    message = MESSAGES[code]
    return code, f"{message}: {detail}" if detail else message


def fault_code_and_message(fault: Fault) -> tuple[int, str]:
    """The server's own failure as an ADP error: a busy database as 460011 (the documented
    "try again later" refusal), anything else as Parley's 500; never the exception's text."""
    if fault is Fault.BUSY:
        return 460011, f"{MESSAGES[460011]}: {BUSY_MESSAGE}"
    return MODEL_FAILED, "Internal error"
