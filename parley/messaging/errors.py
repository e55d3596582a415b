"""Why the messaging domain refused an operation; the IM face maps each to its API's code."""

from __future__ import annotations

from enum import Enum


class Problem(str, Enum):
    INVALID_ACCOUNT = "invalid_account"
    SENDER_UNKNOWN = "sender_unknown"
    RECEIVER_UNKNOWN = "receiver_unknown"
    NOT_A_ROBOT = "not_a_robot"
    ROBOT_LIMIT = "robot_limit"
    ROBOT_NOT_FOUND = "robot_not_found"
    MESSAGE_NOT_FOUND = "message_not_found"
    STREAM_MISMATCH = "stream_mismatch"
    STREAM_ENDED = "stream_ended"
    INTERRUPT_FORBIDDEN = "interrupt_forbidden"
    INTERNAL = "internal"


class MessagingError(Exception):
    def __init__(self, problem: Problem, detail: str = "") -> None:
        super().__init__(f"{problem.value}: {detail}" if detail else problem.value)
        self.problem = problem
        self.detail = detail or problem.value.replace("_", " ")
