"""The IM face's routes in the OpenAPI document (see parley.faces.openapi): one operation per
REST call Parley serves (calls.CALLS), the catch-all that refuses the rest, and users'
subscriptions. Every answer is HTTP 200 with `ActionStatus`, `ErrorCode` and `ErrorInfo`.
"""

from __future__ import annotations

from typing import Any

from parley.faces.im.calls import CALLS, MAX_BATCH, MAX_LIFETIME, MAX_PROFILE_BYTES, ROAM_MAX_COUNT
from parley.faces.im.fields import ELEMENT_TYPES, U32_MAX
from parley.faces.openapi import PathItems, Schema, answer, array, json_body, obj, operation, parameter, string

ENVELOPE = answer(
    "Always 200: `ActionStatus` OK or FAIL, `ErrorCode` (0 on success), `ErrorInfo`, and the call's fields",
    schema=obj({"ActionStatus": {"type": "string", "enum": ["OK", "FAIL"]}, "ErrorCode": {"type": "integer"},
                "ErrorInfo": string()}, ["ActionStatus", "ErrorCode", "ErrorInfo"]),
)
U32: Schema = {"type": "integer", "minimum": 0, "maximum": U32_MAX}
PROFILE = string(description=f"At most {MAX_PROFILE_BYTES} bytes")
ACCOUNT = string(minLength=1)
ELEMENTS = array(obj({"MsgType": {"type": "string", "enum": sorted(ELEMENT_TYPES)}, "MsgContent": {"type": "object"}},
                     ["MsgType", "MsgContent"]), min_items=1)

BODIES: dict[str, Schema] = {
    "im_open_login_svc/account_import": obj({"UserID": ACCOUNT, "Nick": PROFILE, "FaceUrl": PROFILE}, ["UserID"]),
    "im_open_login_svc/multiaccount_import": obj({
        "AccountList": array(obj({"UserID": ACCOUNT, "Nick": PROFILE, "FaceUrl": PROFILE}, ["UserID"]), MAX_BATCH),
        "Accounts": array(ACCOUNT, MAX_BATCH),
    }),
    "im_open_login_svc/account_check": obj({"CheckItem": array(obj({"UserID": string()}, ["UserID"]), MAX_BATCH)},
                                           ["CheckItem"]),
    "openim_robot_http_svc/create_robot": obj({"UserID": ACCOUNT, "Nick": PROFILE, "FaceUrl": PROFILE,
                                               "SelfSignature": PROFILE}, ["UserID"]),
    "openim_robot_http_svc/delete_robot": obj({"Robot_Account": ACCOUNT}, ["Robot_Account"]),
    "openim_robot_http_svc/get_all_robots": obj({}),
    "openim_robot_http_svc/send_stream_msg": obj({"From_Account": ACCOUNT, "To_Account": ACCOUNT, "Chunk": string(),
                                                  "MsgKey": string(), "Finish": {"type": "integer", "enum": [0, 1]}},
                                                 ["From_Account", "To_Account", "Chunk"]),
    "openim/sendmsg": obj({
        "From_Account": string(), "To_Account": ACCOUNT, "MsgRandom": U32, "MsgSeq": U32,
        "MsgTimeStamp": {**U32, "minimum": 1}, "SyncOtherMachine": {"type": "integer", "enum": [1, 2]},
        "MsgLifeTime": {"type": "integer", "minimum": 0, "maximum": MAX_LIFETIME}, "CloudCustomData": string(),
        "MsgBody": ELEMENTS,
    }, ["To_Account", "MsgRandom", "MsgBody"]),
    "openim/modify_c2c_msg": obj({"From_Account": ACCOUNT, "To_Account": ACCOUNT, "MsgKey": ACCOUNT,
                                  "MsgBody": ELEMENTS}, ["From_Account", "To_Account", "MsgKey", "MsgBody"]),
    "openim/admin_getroammsg": obj({
        "Operator_Account": ACCOUNT, "Peer_Account": ACCOUNT, "MaxCnt": {"type": "integer", "minimum": 1,
                                                                         "maximum": ROAM_MAX_COUNT},
        "MinTime": U32, "MaxTime": U32, "LastMsgKey": string(),
    }, ["Operator_Account", "Peer_Account"]),
}
"""Each REST call's body; a call without one fails at import."""

SIGNED_QUERY = [
    parameter("sdkappid", "query", string(pattern="^[0-9]{1,12}$"), required=True),
    parameter("identifier", "query", string(minLength=1), required=True),
    parameter("usersig", "query", string(minLength=1), required=True),
    parameter("random", "query", U32),
    parameter("contenttype", "query", {"type": "string", "enum": ["json"]}),
]


def _rest(summary: str, body: Schema | None, *, path_params: bool = False) -> dict[str, Any]:
    params = list(SIGNED_QUERY)
    if path_params:
        params = [parameter("service", "path"), parameter("command", "path"), *params]
    return operation(summary, {200: ENVELOPE}, tags=["im"], parameters=params,
                     body=json_body(body, required=False) if body is not None else None, security=["imUserSig"])


def _paths() -> PathItems:
    paths: PathItems = {f"/v4/{name}": {"post": _rest(f"v4/{name}", BODIES[name])} for name in CALLS}
    refused = "Any other method: 60002; any other service/command: 60009"
    paths["/v4/{service}/{command}"] = {
        method: _rest(refused, {"type": "object"} if method == "post" else None, path_params=True)
        for method in ("get", "post", "put", "delete", "patch")
    }
    paths["/im/v1/subscribe"] = {"get": operation(
        "A user's live messages (server-sent events, until the client leaves)",
        {200: answer("`event: Ready|MessageReceived|MessageModified` frames, each with an `id:`, or the IM "
                     "envelope when refused", "text/event-stream", string())},
        tags=["im"], parameters=[*SIGNED_QUERY[:3], parameter(
            "Last-Event-ID", "header", {"type": "string", "maxLength": 100},
            description="The `id:` of the last event received: what was delivered since comes first (docs/im.md).")],
        security=["imUserSig"])}
    paths["/im/v1/sendmsg"] = {"post": operation(
        "sendmsg as the authenticated user", {200: ENVELOPE}, tags=["im"], parameters=SIGNED_QUERY[:3],
        body=json_body(BODIES["openim/sendmsg"]), security=["imUserSig"])}
    paths["/im/v1/ws"] = {"x-parley-websocket": "A user's live messages over WebSocket; see docs/im.md."}
    return paths


paths = _paths()
