"""The IM response envelope and the error codes each API family uses (protocols/im.md, section 2).

Every answer is HTTP 200 with `ActionStatus`, `ErrorCode` and `ErrorInfo`; the codes
60000-79999 are common to all calls, the rest belong to one family of APIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from parley.faces.faults import BUSY_MESSAGE, Fault

# common codes
HTTP_PARSE_ERROR = 60002
JSON_PARSE_ERROR = 60003
ACCOUNT_OR_SIGNATURE = 60004
SDKAPPID_INVALID = 60006
CALL_RATE_EXCEEDED = 60007
UNKNOWN_COMMAND = 60009
NEEDS_ADMIN = 60010
APP_RATE_EXCEEDED = 60011
SDKAPPID_MISSING = 60012
SDKAPPID_DISABLED = 60016
SDKAPPID_UNKNOWN = 70020
ACCOUNT_NOT_IMPORTED = 70107


class IMError(Exception):
    def __init__(self, code: int, info: str) -> None:
        super().__init__(f"{code}: {info}")
        self.code = code
        self.info = info


@dataclass(frozen=True, slots=True)
class Family:
    """The codes one family of APIs answers with for the failures every call can meet."""

    name: str
    needs_admin: int
    bad_json: int
    invalid: int
    internal: int


LOGIN = Family("im_open_login_svc", needs_admin=70403, bad_json=JSON_PARSE_ERROR, invalid=70402, internal=70500)
OPENIM = Family("openim", needs_admin=90009, bad_json=90001, invalid=90010, internal=90994)
ROBOT = Family("openim_robot_http_svc", needs_admin=10008, bad_json=JSON_PARSE_ERROR, invalid=10004, internal=10002)


def envelope(code: int = 0, info: str = "", **fields: Any) -> dict[str, Any]:
    return {"ActionStatus": "OK" if code == 0 else "FAIL", "ErrorInfo": info, "ErrorCode": code, **fields}


def json_response(data: dict[str, Any]) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def failure(code: int, info: str) -> Response:
    return json_response(envelope(code, info))


def fault_envelope(fault: Fault, family: Family) -> dict[str, Any]:
    """The server's own failure: the family's internal-error code ("please retry"), saying
    whether the database was busy; never the exception's text."""
    return envelope(family.internal, BUSY_MESSAGE if fault is Fault.BUSY else "internal error, please retry")


def fault_failure(fault: Fault, family: Family) -> Response:
    return json_response(fault_envelope(fault, family))
