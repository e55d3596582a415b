"""Why the engine refused or failed a turn, in terms every face can map to its own codes.

`is_busy` (the database stayed locked past the wait allowed) is the store's judgement,
re-exported here so that faces can tell a busy database from a defect without importing the store.
"""

from __future__ import annotations

from enum import Enum

from parley.store.database import is_busy

__all__ = ["ErrorKind", "TurnRejected", "is_busy"]


class ErrorKind(str, Enum):
    BAD_REQUEST = "bad_request"
    APP_KEY_INVALID = "app_key_invalid"
    APP_NOT_FOUND = "app_not_found"
    APP_NOT_PUBLISHED = "app_not_published"
    SESSION_FORBIDDEN = "session_forbidden"
    CONCURRENCY_EXCEEDED = "concurrency_exceeded"
    RATE_LIMITED = "rate_limited"
    INVALID_LABEL = "invalid_label"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    CONTENT_TOO_LONG = "content_too_long"
    ROLE_TOO_LONG = "role_too_long"
    PROMPT_RENDER_FAILED = "prompt_render_failed"
    MODEL_TIMEOUT = "model_timeout"
    MODEL_FAILED = "model_failed"
    WORKFLOW_FAILED = "workflow_failed"
    """A workflow node failed; the message names the node and says why (its FailMessage)."""
    IMAGE_FAILED = "image_failed"
    """An image of the question could not be read (refused, unreachable, too large, not an image)."""
    STORE_BUSY = "store_busy"
    """The database stayed locked by another writer past the busy timeout: try again shortly."""
    BUS_UNAVAILABLE = "bus_unavailable"
    """The shared bus (Redis) cannot be reached, so what it checks across instances (limits,
    one-time tokens) cannot be checked: refused rather than admitted unchecked; try again shortly."""
    INTERNAL = "internal"


class TurnRejected(Exception):
    """The turn was refused before anything was recorded."""

    def __init__(self, kind: ErrorKind, detail: str = "") -> None:
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)
        self.kind = kind
        self.detail = detail
