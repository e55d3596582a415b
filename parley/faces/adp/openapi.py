"""The ADP face's routes in the OpenAPI document (see parley.faces.openapi): the SSE chat,
docParse, the cloud API's `POST /` and the upload path. Limits come from the validators."""

from __future__ import annotations

from parley.faces.adp.cloudapi import CLOUD_SERVICES
from parley.faces.adp.request import FILE_INFO_FIELDS, INT32_MAX, SESSION_ID, SWITCH_VALUES
from parley.faces.adp.v2_request import CONTENT_TYPES, CONVERSATION_ID
from parley.faces.openapi import (
    OBJECT,
    PathItems,
    answer,
    array,
    json_body,
    last_event_id,
    obj,
    operation,
    parameter,
    raw_body,
    string,
)

SWITCH = {"type": "string", "enum": list(SWITCH_VALUES)}
SESSION = string(64, pattern=SESSION_ID.pattern)

CHAT_REQUEST = obj(
    {
        "request_id": string(255),
        "session_id": SESSION,
        "bot_app_key": string(128, minLength=1),
        "visitor_biz_id": string(64, minLength=1),
        "content": string(description="Required unless file_infos are given."),
        "file_infos": array(obj({name: string() for name in FILE_INFO_FIELDS}, FILE_INFO_FIELDS)),
        "streaming_throttle": {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
        "incremental": {"type": "boolean"},
        "system_role": string(),
        "model_name": string(128),
        "tcadp_user_id": string(255),
        "custom_variables": {"type": "object", "additionalProperties": string()},
        "visitor_labels": array(obj({"name": string(), "values": array(string())}, ["name"])),
        "tool_ouputs": array({}),
        "agent_config": OBJECT,
        "stream": SWITCH,
        "search_network": SWITCH,
        "workflow_status": SWITCH,
    },
    ["session_id", "bot_app_key", "visitor_biz_id"],
)

V2_CONTENT = obj(
    {
        "Type": {"type": "string", "enum": list(CONTENT_TYPES)},
        "Text": string(),
        "Image": obj({"Url": string(minLength=1)}, ["Url"]),
        "File": obj({"FileName": string(), "FileSize": {"type": ["string", "integer"]}, "FileUrl": string(),
                     "FileType": string(), "DocId": string()}),
        "CustomVariables": {"type": "object", "additionalProperties": string()},
    },
    ["Type"],
)

V2_CHAT_REQUEST = obj(
    {
        "RequestId": string(255),
        "ConversationId": string(64, pattern=CONVERSATION_ID.pattern),
        "AppKey": string(128, minLength=1),
        "VisitorId": string(64, minLength=1),
        "Contents": array(V2_CONTENT, min_items=1),
        "Incremental": {"type": "boolean"},
        "StreamingThrottle": {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
        "Stream": SWITCH,
        "SearchNetwork": SWITCH,
        "WorkflowStatus": SWITCH,
        "SystemRole": string(),
        "ModelName": string(128),
        "EnableMultiIntent": {"type": "boolean"},
    },
    ["ConversationId", "AppKey", "VisitorId", "Contents"],
)

STOP_REQUEST = obj(
    {
        "request_id": string(255),
        "session_id": SESSION,
        "bot_app_key": string(128, minLength=1),
        "visitor_biz_id": string(64, minLength=1),
        "record_id": string(20, pattern="^[0-9]{1,20}$", description="The answer's record_id, from its reply events."),
    },
    ["session_id", "bot_app_key", "visitor_biz_id", "record_id"],
)

STOP_ANSWER = answer(
    "Always 200: `{type: \"stop\", payload: {record_id}}` when the answer was stopped, else "
    "`{type: \"error\", error: {code, message}}` (460006: no such answer in progress in this session).",
    "application/json",
    obj({"type": string(), "request_id": string(), "payload": OBJECT,
         "error": obj({"code": {"type": "integer"}, "message": string()})}, ["type"]),
)

DOC_PARSE_REQUEST = obj(
    {
        "request_id": string(255),
        "session_id": SESSION,
        "bot_app_key": string(128, minLength=1),
        "cos_bucket": string(128),
        "file_type": string(128, minLength=1),
        "file_name": string(512, minLength=1),
        "cos_url": string(1024, minLength=1, description="The UploadPath from DescribeStorageCredential."),
        "cos_hash": string(128),
        "e_tag": string(128),
        "size": string(128),
    },
    ["bot_app_key", "file_type", "file_name", "cos_url"],
)

EVENT_STREAM = answer(
    "Always 200: `event:NAME` / `data:JSON` frames; a refusal is an `error` event carrying "
    "`error: {code, message}` (docs/adp.md).",
    "text/event-stream",
    string(),
)

CLOUD_ANSWER = answer(
    "Always 200: `{Response: {...fields, RequestId}}`, or `{Response: {Error: {Code, Message}, RequestId}}`.",
    schema=obj({"Response": obj({"RequestId": string(), "Error": obj({"Code": string(), "Message": string()})},
                                ["RequestId"])}, ["Response"]),
)

S3_ERROR = answer("S3's `<Error><Code/><Message/><Key/></Error>`", "application/xml", string())


def _s3(summary: str, ok: dict, *, body: dict | None = None, query: tuple[str, ...] = ()) -> dict:
    params = [parameter("key", "path", description="An UploadPath granted by DescribeStorageCredential")]
    params += [parameter(name, "query") for name in query]
    return operation(summary, {200: ok, 204: {"description": "Aborted"}, "4XX": S3_ERROR}, tags=["adp uploads"],
                     parameters=params, body=body)


def paths(bucket: str) -> PathItems:
    """The ADP face's path items; uploads live under the configured bucket's name."""
    return {
        "/v1/qbot/chat/sse": {
            "post": operation(
                "Chat over server-sent events", {200: EVENT_STREAM}, tags=["adp"], body=json_body(CHAT_REQUEST),
                parameters=[last_event_id()],
                description="The application is named by `bot_app_key`; see docs/adp.md.",
            )
        },
        "/v1/qbot/chat/stop": {
            "post": operation(
                "Stop an answer in progress (for SSE clients; on any instance)", {200: STOP_ANSWER}, tags=["adp"],
                body=json_body(STOP_REQUEST),
                description="Parley's own call: Socket.IO clients use `stop_generation`. See docs/adp.md.",
            )
        },
        "/adp/v2/chat": {
            "post": operation(
                "Chat over server-sent events, ADP v2", {200: EVENT_STREAM}, tags=["adp"], body=json_body(V2_CHAT_REQUEST),
                parameters=[last_event_id()],
                description="v2 events (`request_ack` ... `response.completed`, then `data:[DONE]`); the same body "
                "is also accepted on /v1/qbot/chat/sse. See docs/adp.md.",
            )
        },
        "/v1/qbot/chat/docParse": {
            "post": operation(
                "Parse an uploaded file for a chat session", {200: EVENT_STREAM}, tags=["adp"],
                body=json_body(DOC_PARSE_REQUEST),
            )
        },
        "/": {
            "post": operation(
                "A Tencent Cloud API 3.0 call (services lke, lkeap, adp)",
                {200: CLOUD_ANSWER},
                tags=["adp cloud api"],
                parameters=[
                    parameter("X-TC-Action", "header", {"type": "string", "enum": CLOUD_SERVICES.actions()}, required=True),
                    parameter("X-TC-Version", "header", {"type": "string", "enum": CLOUD_SERVICES.versions()}, required=True),
                    parameter("X-TC-Timestamp", "header", {"type": "string", "pattern": "^[0-9]{1,12}$"}),
                    parameter("X-TC-Region", "header"),
                ],
                body=json_body({"type": "object", "description": "The action's parameters, named and typed as "
                                "in the official SDKs' models (`tencentcloud.lke.v20231130`, `tencentcloud.lkeap.v20240522`, "
                                "`tencentcloud.adp.v20260520`)."}, required=False),
                security=["tc3"],
                description="Actions and their parameters: docs/adp-cloud-api.md.",
            )
        },
        f"/{bucket}/{{key}}": {
            "get": _s3("Download an uploaded file", answer("The file", "application/octet-stream", string())),
            "head": _s3("An uploaded file's size and type", {"description": "Headers only"}),
            "put": _s3("Upload a file, or one part of a multipart upload",
                       {"description": "Stored; the ETag header names the data"},
                       body=raw_body(), query=("partNumber", "uploadId")),
            "post": _s3("Start (`?uploads`) or complete (`?uploadId=`) a multipart upload",
                        answer("InitiateMultipartUploadResult or CompleteMultipartUploadResult", "application/xml", string()),
                        body=raw_body("application/xml", required=False), query=("uploads", "uploadId")),
            "delete": _s3("Abort a multipart upload (`?uploadId=`)", {"description": "Aborted"}, query=("uploadId",)),
        },
        "/v1/qbot/chat/conn/": {
            "x-parley-websocket": "Socket.IO v4 (Engine.IO 4): connect with `auth: {token}` from GetWsToken; "
                                  "events `send` and `stop_generation`; see docs/adp-cloud-api.md.",
        },
    }
