"""The CloudBase face's routes (`/v1/aibot/...`) in the OpenAPI document (see parley.faces.openapi).

Every refusal is `{"code", "message", "requestId"}` with the status errors.STATUS gives it;
streams are `text/event-stream` ending with `data: [DONE]`.
"""

from __future__ import annotations

from typing import Any

from parley.faces.cloudbase.request import HISTORY_ROLES, MAX_FILES, MAX_HISTORY
from parley.faces.cloudbase.routes import SENDER_FILTERS
from parley.faces.openapi import PathItems, answer, array, json_body, last_event_id, obj, operation, parameter, string

BASE = "/v1/aibot"
BOT = BASE + "/bots/{bot_id}"
ERROR = answer("Refused", schema=obj({"code": string(), "message": string(), "requestId": string()},
                                     ["code", "message", "requestId"]))
STREAM = answer("`data: {...}` chunks, then `data: [DONE]`", "text/event-stream", string())
HISTORY = array(obj({"role": {"type": "string", "enum": list(HISTORY_ROLES)}, "content": string()}, ["role", "content"]),
                MAX_HISTORY)
QUERY = {
    "sort": {"type": "string", "enum": ["asc", "desc"]},
    "senderFilter": {"type": "string", "enum": list(SENDER_FILTERS)},
    "type": {"type": "string", "enum": ["upvote", "downvote"]},
    "enable": {"type": "string", "enum": ["true", "false"]},
    "isDefault": {"type": "string", "enum": ["true", "false"]},
    **{name: {"type": "integer", "minimum": 0} for name in (
        "pageSize", "pageNumber", "minRating", "maxRating", "from", "to", "limit", "offset")},
}
"""Query values as @cloudbase/ai writes them (`undefined` is absent)."""


def call(summary: str, ok: dict[str, Any] | None = None, *, status: int = 200, conversation: bool = False,
         bot: bool = True, query: tuple[str, ...] = (), body: dict[str, Any] | None = None,
         resumable: bool = False) -> dict[str, Any]:
    params = [last_event_id()] if resumable else []
    if bot:
        params.append(parameter("bot_id", "path"))
    if conversation:
        params.append(parameter("conversation_id", "path"))
    params += [parameter(name, "query", QUERY.get(name)) for name in query]
    responses = {status: ok or answer("Done"), "4XX": ERROR}
    return operation(summary, responses, tags=["cloudbase"], parameters=params, body=body, security=["cloudbaseKey"])


paths: PathItems = {
    BASE + "/bots": {
        "get": call("Bots the key may use", bot=False,
                    query=("pageSize", "pageNumber", "name", "introduction", "information", "enable")),
    },
    BOT: {"get": call("A bot")},
    BOT + "/send-message": {
        "post": call("Send a message; the answer streams back", STREAM, body=json_body(obj({
            "msg": string(100_000, minLength=1), "history": HISTORY,
            "files": array(string(2048, pattern="^(cloud|https?)://"), MAX_FILES),
            "searchEnable": {"type": "boolean"}, "conversationId": string(64),
        }, ["msg"])), resumable=True),
    },
    BOT + "/recommend-questions": {
        "post": call("Suggested follow-up questions", STREAM, body=json_body(obj({
            "msg": string(100_000), "history": HISTORY, "name": string(100_000), "introduction": string(100_000),
            "agentSetting": string(100_000),
        }), required=False)),
    },
    BOT + "/records": {
        "get": call("A conversation's records", query=("sort", "pageSize", "pageNumber", "conversationId")),
    },
    BOT + "/feedback": {
        "post": call("Rate an answer", body=json_body(obj({
            "recordId": string(32, pattern="^[0-9]+$"), "type": {"type": "string", "enum": ["upvote", "downvote"]},
            "rating": {"type": "integer", "minimum": 0, "maximum": 10}, "comment": string(2000),
            "tags": array(string(64), 20), "input": string(20000), "aiAnswer": string(20000),
        }, ["recordId", "type"]))),
        "get": call("Feedback on the bot's answers", query=(
            "type", "sender", "senderFilter", "minRating", "maxRating", "from", "to", "pageSize", "pageNumber")),
    },
    BOT + "/conversation": {
        "post": call("Create a conversation", status=201, body=json_body(obj({"title": string(256)}), required=False)),
        "get": call("The caller's conversations", query=("limit", "offset", "isDefault")),
    },
    BOT + "/conversation/{conversation_id}": {
        "patch": call("Rename a conversation", conversation=True,
                      body=json_body(obj({"title": string(256)}, ["title"]))),
        "delete": call("Delete a conversation", conversation=True),
    },
}
