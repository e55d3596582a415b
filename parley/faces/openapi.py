"""`GET /openapi.json`: an OpenAPI 3.1 document for the admin API and the faces' HTTP calls.

Each face package describes its own routes next to them (its `openapi` module's `paths`,
built with the helpers below from the same constants and pydantic models its validation
uses); the server hands those parts to `document()`. A test checks that every
route the server mounts appears here, so a new route cannot be left out.

The document describes what a request may carry and what shape every answer has; the
protocols' own pages (docs/) say what the fields mean. Each face keeps its own error shape
and status rules (ADP and IM answer errors with HTTP 200), written as the responses below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PathItems = dict[str, dict[str, Any]]
Schema = dict[str, Any]

REF = "#/components/schemas/{model}"

STRING: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}

SECURITY_SCHEMES = {
    "adminToken": {"type": "http", "scheme": "bearer", "description": "The server's admin token."},
    "cloudbaseKey": {"type": "http", "scheme": "bearer", "description": "A CloudBase API or publishable key."},
    "tc3": {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "TC3-HMAC-SHA256 over the request, with a SecretId/SecretKey pair from `[cloud_api]`.",
    },
    "imUserSig": {
        "type": "apiKey", "in": "query", "name": "usersig",
        "description": "A UserSig for `identifier` (tls-sig-api-v2), with `sdkappid` and `identifier` in the query.",
    },
}


def string(max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def array(items: Schema, max_items: int | None = None, *, min_items: int = 0) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def obj(properties: Mapping[str, Schema], required: Iterable[str] = ()) -> Schema:
    """An object with these fields; others are allowed (every face ignores unknown fields)."""
    schema: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return schema


_MODELS: dict[str, type[BaseModel]] = {}
"""The pydantic models the faces' descriptions refer to, by name."""


def model_ref(model: type[BaseModel]) -> Schema:
    """A reference to the schema of the pydantic model that validates a body; `document()`
    puts that schema under components."""
    _MODELS[model.__name__] = model
    return {"$ref": REF.format(model=model.__name__)}


def json_body(schema: Schema, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def raw_body(media_type: str = "application/octet-stream", *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}


def parameter(name: str, where: str, schema: Schema | None = None, *, required: bool = False, description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": where, "required": required or where == "path", "schema": schema or STRING}
    if description:
        param["description"] = description
    return param


def path_params(*names: str) -> list[dict[str, Any]]:
    return [parameter(name, "path") for name in names]


def answer(description: str, media_type: str = "application/json", schema: Schema | None = None) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema or OBJECT}}}


def last_event_id() -> dict[str, Any]:
    """The header a client sends to resume a stream it lost (faces/resume.py)."""
    return parameter("Last-Event-ID", "header", {"type": "string", "maxLength": 64},
                     description="The `id:` of the last event received, to resume that turn's stream (docs/adp.md).")


def operation(
    summary: str,
    responses: Mapping[str | int, Any],
    *,
    tags: Iterable[str] = (),
    parameters: Iterable[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
    security: Iterable[str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {str(k): v for k, v in responses.items()}}
    if description:
        op["description"] = description
    if tags:
        op["tags"] = list(tags)
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = body
    if security is not None:
        op["security"] = [{name: []} for name in security]
    return op


def document(parts: Iterable[PathItems], *, version: str = "") -> dict[str, Any]:
    """One OpenAPI document from the faces' path items (a path described twice is merged by method)."""
    paths: PathItems = {}
    for part in parts:
        for path, item in part.items():
            merged = paths.setdefault(path, {})
            overlap = set(merged) & set(item) - {"parameters", "summary", "description"}
            if overlap:
                raise ValueError(f"{path}: {sorted(overlap)} described twice")
            merged.update(item)
    _, definitions = models_json_schema([(model, "validation") for model in _MODELS.values()], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley",
            "version": version or "0",
            "description": "The admin API and the HTTP faces (ADP, Tencent Cloud API 3.0, Tencent Cloud Chat, "
                           "CloudBase AI bot) of a Parley server. See docs/ for each protocol.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": definitions.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
    }


def route(spec: dict[str, Any]) -> Route:
    """`GET /openapi.json` serving `spec`, serialised once."""
    body = orjson.dumps(spec)

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route("/openapi.json", openapi_json, methods=["GET"])


paths: PathItems = {
    "/openapi.json": {"get": operation("This document", {200: answer("The OpenAPI document")}, tags=["meta"])},
}
