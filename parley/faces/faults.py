"""The server's own failures as every face sees them: the database busy, or anything unexpected.

A face catches what its handlers did not, asks `fault_of` which of the two it is, and answers
in its own shape: the admin API with 503 and Retry-After or 500, the cloud API with
FailedOperation or InternalError, and so on. The traceback goes to the log here; no face
sends exception text to a client.
"""

from __future__ import annotations

import logging
from enum import Enum

from parley.engine.errors import is_busy

log = logging.getLogger("parley.faults")

RETRY_AFTER_SECONDS = 1
"""What a "busy" answer suggests waiting (HTTP Retry-After) before the same call again."""
BUSY_MESSAGE = "the server's database is busy; try again shortly"
INTERNAL_MESSAGE = "internal error"


class Fault(str, Enum):
    BUSY = "busy"
    """The database stayed locked past the busy timeout: the same call may succeed later."""
    INTERNAL = "internal"


def fault_of(exc: BaseException, where: str) -> Fault:
    """Which fault `exc` is; logs it (a busy database as a warning, anything else with its traceback)."""
    if is_busy(exc):
        log.warning("%s: the database is busy (%s)", where, exc.__class__.__name__)
        return Fault.BUSY
    log.error("%s failed", where, exc_info=exc)
    return Fault.INTERNAL
