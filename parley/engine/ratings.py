"""Which answers a visitor may rate, and how a rating is kept.

ADP's rule: a bot answer can be liked (1), disliked (2) or the rating withdrawn (0),
with optional reasons of up to 20 characters each; greetings, the concurrency-exceeded
reply and real-time-document replies cannot be rated.
"""

from __future__ import annotations

import time
from typing import Any

from parley.engine.events import ReplyMethod
from parley.store.conversations import IN_PROGRESS, INTERRUPTED, RecordRow

SCORES = (0, 1, 2)
REASON_MAX_CHARS = 20
FEEDBACK_MAX_CHARS = 1000
UNRATABLE_METHODS = frozenset({ReplyMethod.GREETING, ReplyMethod.CONCURRENCY_EXCEEDED, ReplyMethod.REALTIME_DOCUMENT})


class RecordNotFound(Exception):
    """No such record in that application."""


class RatingRefused(Exception):
    """The rating breaks a rule; the message says which."""


_UNRATABLE_STATUSES = ("failed", INTERRUPTED, IN_PROGRESS)


def can_rate(record: RecordRow) -> bool:
    return (
        not record.is_from_self
        and record.reply_method not in UNRATABLE_METHODS
        and record.status not in _UNRATABLE_STATUSES
    )


def check_rating(record: RecordRow, score: int, reasons: list[str], feedback: str) -> None:
    if score not in SCORES:
        raise RatingRefused("Score must be 0 (withdraw), 1 (like) or 2 (dislike)")
    for reason in reasons:
        if len(reason) > REASON_MAX_CHARS:
            raise RatingRefused(f"each reason must be at most {REASON_MAX_CHARS} characters")
    if len(feedback) > FEEDBACK_MAX_CHARS:
        raise RatingRefused(f"FeedbackContent must be at most {FEEDBACK_MAX_CHARS} characters")
    if record.is_from_self:
        raise RatingRefused("only the bot's answers can be rated, not the visitor's messages")
    if record.reply_method in UNRATABLE_METHODS:
        raise RatingRefused("greetings, concurrency-exceeded and real-time-document replies cannot be rated")
    if record.status in ("failed", INTERRUPTED):
        raise RatingRefused("a failed answer cannot be rated")
    if record.status == IN_PROGRESS:
        raise RatingRefused("an answer cannot be rated while it is being written")


def rated_extra(record: RecordRow, score: int, reasons: list[str], feedback: str) -> dict[str, Any] | None:
    """The record's `extra` with the rating's reasons and feedback set (or cleared with score 0)."""
    extra = dict(record.extra or {})
    if score == 0:
        extra.pop("rating", None)
    else:
        extra["rating"] = {"reasons": reasons, "feedback": feedback, "rated_at": int(time.time() * 1000)}
    return extra or None
