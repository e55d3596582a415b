"""`POST /v4/{service}/{command}?sdkappid=&identifier=&usersig=&random=&contenttype=json`.

The checks run in this order, each failure answered with HTTP 200 and its code: POST
(60002); sdkappid present (60012), well-formed (60006), known (70020), enabled (60016);
the command exists (60009); the UserSig (700xx); the identifier is an admin (60010 or the
family's own code); the frequency limits of the application (60011) and of the call
(60007); the body is a JSON object (60003, 90001 for `openim`); then the call itself.
"""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from parley.engine.limits import LimitsUnavailable
from parley.faces.faults import fault_of
from parley.faces.bodies import BodyLimit
from parley.faces.im import errors
from parley.faces.im.calls import CALLS, Call
from parley.faces.im.context import im_context
from parley.faces.im.errors import LOGIN, IMError, envelope, failure, fault_failure, json_response

MAX_REQUEST_BYTES = 1024 * 1024


async def rest_call(request: Request) -> Response:
    if request.method != "POST":
        return failure(errors.HTTP_PARSE_ERROR, "REST calls are HTTPS POST requests")
    query = request.query_params
    name = f"{request.path_params['service']}/{request.path_params['command']}"
    try:
        context = await im_context(request)
        app = context.app(query.get("sdkappid"))
        spec = CALLS.get(name)
        if spec is None:
            raise IMError(errors.UNKNOWN_COMMAND, f"unknown service or command: v4/{name}")
        identifier = context.verify(app, query.get("identifier"), query.get("usersig"))
        if identifier not in app.admins:
            raise IMError(spec.family.needs_admin, "this request needs the App admin identifier")
        limiter = context.messaging.limiter
        per_second = app.rate_limits.get(name, context.settings.rate_limits.get(name, spec.per_second))
        try:
            if not await limiter.allow(f"{app.sdkappid}", context.settings.app_rate_limit):
                raise IMError(errors.APP_RATE_EXCEEDED, "SDKAppID request frequency over limit")
            if not await limiter.allow(f"{app.sdkappid}/{name}", per_second):
                raise IMError(errors.CALL_RATE_EXCEEDED, f"REST API call frequency over limit ({per_second:g}/s)")
        except LimitsUnavailable:  # refused, not let through unchecked
            raise IMError(errors.APP_RATE_EXCEEDED, "the server cannot check its call limits now; try again shortly") from None
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            raise IMError(spec.family.invalid, "the request body is too large")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise IMError(spec.family.bad_json, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise IMError(spec.family.bad_json, "the request body must be a JSON object")
        result = await spec.handler(Call(context, app, identifier, body))
    except IMError as exc:
        return failure(exc.code, exc.info)
    except ClientDisconnect:  # gone, or cut off past the body limit (and answered already)
        return failure(errors.HTTP_PARSE_ERROR, "the request body was not received whole")
    except Exception as exc:
        spec = CALLS.get(name)
        return fault_failure(fault_of(exc, f"IM call {name}"), spec.family if spec else LOGIN)
    return json_response(envelope(**result))


routes = [Route("/v4/{service}/{command}", rest_call, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]


def too_large(scope: Scope, limit: int) -> Response:
    """The call's own "invalid request" code: its family's for a REST call, `openim`'s for the users'
    own calls, 60002 (HTTP parse error) when the path names no call."""
    path: str = scope["path"]
    spec = CALLS.get(path.removeprefix("/v4/"))
    if spec is not None:
        code = spec.family.invalid
    else:
        code = errors.OPENIM.invalid if path.startswith("/im/") else errors.HTTP_PARSE_ERROR
    return failure(code, f"the request body is larger than {limit} bytes")


def body_limit(limit: int) -> BodyLimit:
    """The REST API (`/v4/...`) and the users' own calls (`/im/v1/...`)."""
    return BodyLimit(lambda path: path.startswith(("/v4/", "/im/")), limit, too_large)
