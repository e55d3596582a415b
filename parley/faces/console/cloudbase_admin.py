"""Admin API for the CloudBase face: publish an application as a bot, issue and revoke its keys.

Under /admin, guarded by the admin token like the rest of the console; errors are
`{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.channels.cloudbase import Bot, KeyKind, KeyRow, OperatorError
from parley.faces.console.admin import error_response, guarded, json_body, json_response
from parley.ids import parse_id
from parley.services import Services

BOT_FIELDS = {
    "botId": "bot_id",
    "enable": "enabled",
    "searchEnable": "search_enable",
    "multiConversationEnable": "multi_conversation",
    "isNeedRecommend": "need_recommend",
    "background": "background",
}


def bot_json(bot: Bot) -> dict[str, Any]:
    return {
        "botId": bot.bot_id,
        "application": bot.app.name,
        "published": bot.app.published,
        "enable": bot.row.enabled,
        "searchEnable": bot.row.search_enable,
        "multiConversationEnable": bot.row.multi_conversation,
        "isNeedRecommend": bot.row.need_recommend,
        "background": bot.row.background,
        "created_at": bot.row.created_at,
        "updated_at": bot.row.updated_at,
    }


def key_json(key: KeyRow) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "kind": key.kind,
        "name": key.name,
        "prefix": key.key_prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


async def publish_bot(request: Request, services: Services) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    options: dict[str, Any] = {}
    for wire, name in BOT_FIELDS.items():
        value = data.get(wire)
        if value is None:
            continue
        expected = str if name in ("bot_id", "background") else bool
        if not isinstance(value, expected):
            return error_response(400, "bad_request", f"{wire} must be a {'string' if expected is str else 'boolean'}")
        options[name] = value
    try:
        bot = await services.cloudbase.publish_bot(request.path_params["name"], **options)
    except OperatorError as exc:
        return error_response(400, "invalid_bot", str(exc))
    return json_response(bot_json(bot))


async def get_bot(request: Request, services: Services) -> Response:
    bot = await services.cloudbase.bot_of_app(request.path_params["name"])
    if bot is None:
        return error_response(404, "not_found", f"{request.path_params['name']!r} is not published as a CloudBase bot")
    return json_response(bot_json(bot))


async def create_key(request: Request, services: Services) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    kind, name = data.get("kind", "api"), data.get("name", "")
    if kind not in ("api", "publishable"):
        return error_response(400, "bad_request", 'kind must be "api" or "publishable"')
    if not isinstance(name, str):
        return error_response(400, "bad_request", "name must be a string")
    try:
        issued = await services.cloudbase.issue_key(request.path_params["name"], KeyKind(kind), name)
    except OperatorError as exc:
        return error_response(400, "invalid_key", str(exc))
    bot = await services.cloudbase.bot_of_app(request.path_params["name"])
    return json_response({**key_json(issued.row), "key": issued.secret, "botId": bot.bot_id if bot else None}, 201)


async def list_keys(request: Request, services: Services) -> Response:
    try:
        keys = await services.cloudbase.list_keys(request.path_params["name"])
    except OperatorError as exc:
        return error_response(404, "not_found", str(exc))
    return json_response([key_json(k) for k in keys])


async def revoke_key(request: Request, services: Services) -> Response:
    raw = request.path_params["key_id"]
    if not (raw.isascii() and raw.isdigit()):
        return error_response(400, "bad_request", "a key id is a string of decimal digits")
    key_id = parse_id(raw)
    if key_id is None:  # beyond any id there can be
        return error_response(404, "not_found", f"no active key {raw}")
    if not await services.cloudbase.revoke_key(key_id):
        return error_response(404, "not_found", f"no active key {key_id}")
    return Response(status_code=204)


routes = [
    Route("/admin/apps/{name}/cloudbase", guarded(publish_bot), methods=["POST", "PUT"]),
    Route("/admin/apps/{name}/cloudbase", guarded(get_bot), methods=["GET"]),
    Route("/admin/apps/{name}/cloudbase/keys", guarded(create_key), methods=["POST"]),
    Route("/admin/apps/{name}/cloudbase/keys", guarded(list_keys), methods=["GET"]),
    Route("/admin/cloudbase/keys/{key_id}", guarded(revoke_key), methods=["DELETE"]),
]
