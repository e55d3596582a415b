"""The IM REST calls Parley answers: request fields in, domain call, response fields out.

Each call is registered under its `service/command` with its family (which decides the
codes for common failures) and its documented frequency limit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from parley.config import IMAppSettings
from parley.faces.im import fields
from parley.faces.im.context import IMContext
from parley.faces.im.errors import LOGIN, OPENIM, ROBOT, Family, IMError
from parley.messaging.errors import MessagingError, Problem
from parley.messaging.service import MessageRow, Outgoing

MAX_PROFILE_BYTES = 500
PROFILE_TOO_LONG = 40601
MAX_BATCH = 100
MAX_LIFETIME = 7 * 86400
ROAM_MAX_BYTES = 13 * 1024
ROAM_MAX_COUNT = 1000

# openim codes from the sendmsg documentation (doc 269/2282)
OPENIM_BAD_BODY = 90002
OPENIM_NO_TO_ACCOUNT = 90003
OPENIM_BAD_RANDOM = 90005
OPENIM_BAD_FROM_ACCOUNT = 90008
OPENIM_TO_NOT_IMPORTED = 90012
OPENIM_BAD_LIFETIME = 90026
OPENIM_TOO_LONG = 93000


@dataclass(slots=True)
class Call:
    context: IMContext
    app: IMAppSettings
    identifier: str
    body: dict[str, Any]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class CallSpec:
    handler: Handler
    family: Family
    per_second: float


CALLS: dict[str, CallSpec] = {}


def call(service: str, command: str, family: Family, per_second: float = 200) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        CALLS[f"{service}/{command}"] = CallSpec(handler, family, per_second)
        return handler

    return register


def _mapped(exc: MessagingError, family: Family, codes: dict[Problem, int]) -> IMError:
    return IMError(codes.get(exc.problem, family.internal if exc.problem is Problem.INTERNAL else family.invalid), exc.detail)


# accounts


def _profile(body: dict[str, Any]) -> tuple[str | None, str | None]:
    nick = fields.string(body, "Nick", LOGIN.invalid, max_bytes=MAX_PROFILE_BYTES, too_long_code=PROFILE_TOO_LONG)
    face = fields.string(body, "FaceUrl", LOGIN.invalid, max_bytes=MAX_PROFILE_BYTES, too_long_code=PROFILE_TOO_LONG)
    return nick, face


@call("im_open_login_svc", "account_import", LOGIN)
async def account_import(c: Call) -> dict[str, Any]:
    user_id = fields.string(c.body, "UserID", LOGIN.invalid, required=True)
    nick, face = _profile(c.body)
    try:
        await c.context.messaging.service.import_account(c.app.sdkappid, user_id, nick, face)  # type: ignore[arg-type]
    except MessagingError as exc:
        raise _mapped(exc, LOGIN, {}) from None
    return {}


@call("im_open_login_svc", "multiaccount_import", LOGIN, per_second=100)
async def multiaccount_import(c: Call) -> dict[str, Any]:
    entries: list[tuple[Any, str | None, str | None]]
    if "AccountList" in c.body:
        items = c.body["AccountList"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise IMError(LOGIN.invalid, "AccountList must be an array of objects")
        entries = [(i.get("UserID"), *_profile(i)) for i in items]
    elif "Accounts" in c.body:
        items = c.body["Accounts"]
        if not isinstance(items, list):
            raise IMError(LOGIN.invalid, "Accounts must be an array of UserIDs")
        entries = [(i, None, None) for i in items]
    else:
        raise IMError(LOGIN.invalid, "AccountList (or Accounts) is required")
    if not entries or len(entries) > MAX_BATCH:
        raise IMError(LOGIN.invalid, f"import 1 to {MAX_BATCH} accounts at a time")
    failed = []
    for user_id, nick, face in entries:
        try:
            if not isinstance(user_id, str):
                raise MessagingError(Problem.INVALID_ACCOUNT)
            await c.context.messaging.service.import_account(c.app.sdkappid, user_id, nick, face)
        except MessagingError:
            failed.append(user_id if isinstance(user_id, str) else str(user_id))
    return {"FailAccounts": failed}


@call("im_open_login_svc", "account_check", LOGIN)
async def account_check(c: Call) -> dict[str, Any]:
    items = c.body.get("CheckItem")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH:
        raise IMError(LOGIN.invalid, f"CheckItem must be an array of 1 to {MAX_BATCH} items")
    user_ids = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("UserID"), str):
            raise IMError(LOGIN.invalid, "each CheckItem needs a UserID string")
        user_ids.append(item["UserID"])
    known = await c.context.messaging.service.known_accounts(c.app.sdkappid, user_ids)
    return {
        "ResultItem": [
            {"UserID": u, "ResultCode": 0, "ResultInfo": "",
             "AccountStatus": "Imported" if u in known else "NotImported"}
            for u in user_ids
        ]
    }


# robots


@call("openim_robot_http_svc", "create_robot", ROBOT)
async def create_robot(c: Call) -> dict[str, Any]:
    user_id = fields.string(c.body, "UserID", ROBOT.invalid, required=True)
    nick = fields.string(c.body, "Nick", ROBOT.invalid, max_bytes=MAX_PROFILE_BYTES)
    face = fields.string(c.body, "FaceUrl", ROBOT.invalid, max_bytes=MAX_PROFILE_BYTES)
    signature = fields.string(c.body, "SelfSignature", ROBOT.invalid, max_bytes=MAX_PROFILE_BYTES)
    try:
        await c.context.messaging.service.create_robot(
            c.app.sdkappid, user_id, c.app.max_robots, nick=nick, face_url=face, self_signature=signature  # type: ignore[arg-type]
        )
    except MessagingError as exc:
        raise _mapped(exc, ROBOT, {Problem.ROBOT_LIMIT: ROBOT.needs_admin}) from None
    return {}


@call("openim_robot_http_svc", "delete_robot", ROBOT)
async def delete_robot(c: Call) -> dict[str, Any]:
    robot = fields.string(c.body, "Robot_Account", ROBOT.invalid, required=True)
    try:
        await c.context.messaging.service.delete_robot(c.app.sdkappid, robot)  # type: ignore[arg-type]
    except MessagingError as exc:
        raise _mapped(exc, ROBOT, {}) from None
    return {}


@call("openim_robot_http_svc", "get_all_robots", ROBOT)
async def get_all_robots(c: Call) -> dict[str, Any]:
    return {"Robot_Account": await c.context.messaging.service.robots(c.app.sdkappid)}


@call("openim_robot_http_svc", "send_stream_msg", ROBOT)
async def send_stream_msg(c: Call) -> dict[str, Any]:
    robot = fields.string(c.body, "From_Account", ROBOT.invalid, required=True)
    user = fields.string(c.body, "To_Account", ROBOT.invalid, required=True)
    chunk = fields.string(c.body, "Chunk", ROBOT.invalid, max_bytes=fields.MAX_BODY_BYTES)
    if chunk is None:
        raise IMError(ROBOT.invalid, "Chunk is required")
    msg_key = fields.string(c.body, "MsgKey", ROBOT.invalid)
    finish = fields.integer(c.body, "Finish", ROBOT.invalid, high=1) == 1
    service = c.context.messaging.service
    try:
        if msg_key:
            message = await service.append_stream(c.app.sdkappid, robot, user, msg_key, chunk, finish)  # type: ignore[arg-type]
        else:
            message = await service.open_stream(c.app.sdkappid, robot, user, [chunk] if chunk else [], finish)  # type: ignore[arg-type]
    except MessagingError as exc:
        raise _mapped(exc, ROBOT, {}) from None
    return {"MsgKey": message.msg_key}


# C2C messages


def read_outgoing(body: dict[str, Any], sender: str | None) -> Outgoing:
    """A sendmsg body as a message to send; `sender` fixes From_Account (a user sending as themself)."""
    from_account = fields.string(body, "From_Account", OPENIM_BAD_FROM_ACCOUNT)
    to_account = fields.string(body, "To_Account", OPENIM_NO_TO_ACCOUNT, required=True)
    msg_random = fields.integer(body, "MsgRandom", OPENIM_BAD_RANDOM, required=True)
    msg_seq = fields.integer(body, "MsgSeq", OPENIM.invalid)
    msg_time = fields.integer(body, "MsgTimeStamp", OPENIM.invalid, low=1)
    sync = fields.integer(body, "SyncOtherMachine", OPENIM.invalid, low=1, high=2)
    lifetime = fields.integer(body, "MsgLifeTime", OPENIM_BAD_LIFETIME, high=MAX_LIFETIME)
    custom = fields.string(body, "CloudCustomData", OPENIM.invalid, max_bytes=fields.MAX_BODY_BYTES)
    elements = fields.message_body(body, OPENIM_BAD_BODY)
    if len(orjson.dumps(elements)) > fields.MAX_BODY_BYTES:
        raise IMError(OPENIM_TOO_LONG, f"MsgBody is longer than {fields.MAX_BODY_BYTES} bytes")
    return Outgoing(
        from_account=sender or from_account or "",
        to_account=to_account,  # type: ignore[arg-type]
        body=elements,
        msg_random=msg_random,  # type: ignore[arg-type]
        msg_seq=msg_seq,
        msg_time=msg_time,
        cloud_custom_data=custom or "",
        sync_other_machine=sync or 1,
        online_only=lifetime == 0,
    )


async def send_c2c(context: IMContext, sdkappid: int, outgoing: Outgoing) -> dict[str, Any]:
    try:
        message, _ = await context.messaging.service.send(sdkappid, outgoing)
    except MessagingError as exc:
        raise _mapped(exc, OPENIM, {
            Problem.SENDER_UNKNOWN: OPENIM_BAD_FROM_ACCOUNT,
            Problem.RECEIVER_UNKNOWN: OPENIM_TO_NOT_IMPORTED,
            Problem.INTERRUPT_FORBIDDEN: OPENIM.needs_admin,
        }) from None
    return {"MsgTime": message.msg_time, "MsgKey": message.msg_key, "MsgId": message.msg_id}


@call("openim", "sendmsg", OPENIM)
async def sendmsg(c: Call) -> dict[str, Any]:
    outgoing = read_outgoing(c.body, None)
    outgoing.from_account = outgoing.from_account or c.identifier
    return await send_c2c(c.context, c.app.sdkappid, outgoing)


@call("openim", "modify_c2c_msg", OPENIM)
async def modify_c2c_msg(c: Call) -> dict[str, Any]:
    from_account = fields.string(c.body, "From_Account", OPENIM_BAD_FROM_ACCOUNT, required=True)
    to_account = fields.string(c.body, "To_Account", OPENIM_NO_TO_ACCOUNT, required=True)
    msg_key = fields.string(c.body, "MsgKey", OPENIM.invalid, required=True)
    elements = fields.message_body(c.body, OPENIM_BAD_BODY)
    if len(orjson.dumps(elements)) > fields.MAX_BODY_BYTES:
        raise IMError(OPENIM_TOO_LONG, f"MsgBody is longer than {fields.MAX_BODY_BYTES} bytes")
    try:
        await c.context.messaging.service.modify(c.app.sdkappid, from_account, to_account, msg_key, elements)  # type: ignore[arg-type]
    except MessagingError as exc:
        raise _mapped(exc, OPENIM, {}) from None
    return {}


def message_json(message: MessageRow) -> dict[str, Any]:
    """A message as admin_getroammsg lists it (and as subscriptions deliver it)."""
    return {
        "From_Account": message.from_account,
        "To_Account": message.to_account,
        "MsgSeq": message.msg_seq,
        "MsgRandom": message.msg_random,
        "MsgTimeStamp": message.msg_time,
        "MsgClientTime": message.msg_time,
        "MsgFlagBits": 0,
        "IsPeerRead": 0,
        "MsgKey": message.msg_key,
        "MsgId": message.msg_id,
        "MsgBody": message.body,
        "CloudCustomData": message.cloud_custom_data,
    }


@call("openim", "admin_getroammsg", OPENIM)
async def admin_getroammsg(c: Call) -> dict[str, Any]:
    # Operator_Account / Peer_Account per the current page; older SDKs send From_Account / To_Account.
    operator_field = "Operator_Account" if "Operator_Account" in c.body else "From_Account"
    peer_field = "Peer_Account" if "Peer_Account" in c.body else "To_Account"
    operator = fields.string(c.body, operator_field, OPENIM_BAD_FROM_ACCOUNT, required=True)
    peer = fields.string(c.body, peer_field, OPENIM_NO_TO_ACCOUNT, required=True)
    max_count = fields.integer(c.body, "MaxCnt", OPENIM.invalid, low=1, high=ROAM_MAX_COUNT) or 100
    min_time = fields.integer(c.body, "MinTime", OPENIM.invalid) or 0
    max_time = fields.integer(c.body, "MaxTime", OPENIM.invalid)
    if max_time is None:
        max_time = int(time.time()) + 86400
    if min_time > max_time:
        raise IMError(OPENIM.invalid, "MinTime must not be after MaxTime")
    last_key = fields.string(c.body, "LastMsgKey", OPENIM.invalid)
    try:
        page = await c.context.messaging.service.roam(
            c.app.sdkappid, operator, peer, max_count=max_count, min_time=min_time, max_time=max_time,  # type: ignore[arg-type]
            last_key=last_key or None, max_bytes=ROAM_MAX_BYTES, measure=lambda m: len(orjson.dumps(message_json(m))),
        )
    except MessagingError as exc:
        raise _mapped(exc, OPENIM, {}) from None
    return {
        "Complete": int(page.complete),
        "MsgCnt": len(page.messages),
        "LastMsgTime": page.oldest.msg_time if page.oldest else 0,
        "LastMsgKey": page.oldest.msg_key if page.oldest else "",
        "MsgList": [message_json(m) for m in page.messages],
    }
