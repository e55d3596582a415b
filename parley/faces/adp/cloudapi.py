"""`POST /`: the Tencent Cloud API 3.0 calls ADP clients make (service `lke`, version 2023-11-30).

The action is named by the `X-TC-Action` header, under the service of the signature's
credential scope and the `X-TC-Version` (cloud_services.py), and its parameters are the
JSON body.
Every answer is HTTP 200 with `application/json`, as Tencent answers: success is
`{"Response": {...fields, "RequestId"}}` and failure `{"Response": {"Error": {"Code",
"Message"}, "RequestId"}}`; the official SDKs raise on the `Error` key (and treat any
other status as a network fault). Signatures are TC3-HMAC-SHA256 (tc3.py) against the
SecretId/SecretKey pairs the operator configures under `[cloud_api]`.

The actions themselves are in cloud_actions.py; this module is transport only.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from parley.faces.adp import adp_actions, lkeap, tc3
from parley.faces.adp.cloud_actions import ACTIONS
from parley.faces.adp.cloud_params import CloudApiError, Params
from parley.faces.adp.cloud_services import CloudServices, changes_state
from parley.faces.faults import Fault, fault_of
from parley.faces.bodies import BodyLimit
from parley.services import Services

log = logging.getLogger(__name__)

CLOUD_SERVICES = CloudServices()
CLOUD_SERVICES.register("lke", "2023-11-30", ACTIONS)
CLOUD_SERVICES.register(adp_actions.SERVICE, adp_actions.VERSION, adp_actions.ACTIONS)
CLOUD_SERVICES.register(lkeap.SERVICE, lkeap.VERSION, lkeap.ACTIONS)
MAX_BODY = 10 * 1024 * 1024
"""Tencent accepts TC3-signed POST bodies up to 10 MB."""


def _json(data: dict[str, Any]) -> Response:
    # Exactly `application/json`: the Python SDK only looks for `Error` under that type.
    return Response(orjson.dumps(data), status_code=200, media_type="application/json")


def error_response(code: str, message: str, request_id: str) -> Response:
    return _json({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}})


def authenticate(request: Request, headers: dict[str, str], body: bytes, services: Services) -> tc3.Authorization | None:
    """The request's verified authorization; None when signatures are not checked."""
    settings = services.settings.cloud_api
    if not settings.verify_signatures:
        return None
    try:
        auth = tc3.verify(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers=headers,
            body=body,
            secrets={c.secret_id: c.secret_key for c in settings.credentials},
            now=time.time(),
            max_age=settings.signature_max_age,
        )
    except tc3.SignatureError as exc:
        raise CloudApiError(exc.code, exc.message) from None
    if settings.require_signed_action and "x-tc-action" not in auth.signed_headers:
        raise CloudApiError("AuthFailure.InvalidAuthorization", "SignedHeaders must include x-tc-action.")
    return auth


async def bind_signature(
    request: Request, auth: tc3.Authorization, action: str, version: str, body: bytes, services: Services
) -> None:
    """Refuses a call that changes something on a signature already used for another call
    over another connection (see parley.bus.signatures). With the body unsigned
    (`X-TC-Content-SHA256: UNSIGNED-PAYLOAD`) reads are bound alike: the signature covers no
    parameter, and a replayed read could name any conversation.

    A signature stays acceptable while its timestamp is within `signature_max_age` of the
    clock, on either side: twice that covers its whole life.
    """
    call = hashlib.sha256(b"\0".join([action.encode(), version.encode(), hashlib.sha256(body).digest()])).digest()
    keep_for = 2 * services.settings.cloud_api.signature_max_age
    # Port 0: the client's address came from a proxy's X-Forwarded-For (uvicorn trusts one on
    # loopback), which names a host, not a connection: every connection from it would match.
    origin = f"{request.client.host}:{request.client.port}" if request.client and request.client.port else None
    unsigned = request.headers.get("x-tc-content-sha256") == tc3.UNSIGNED_PAYLOAD
    exclusive = unsigned or changes_state(action)
    if not await services.signatures.claim(auth.signature, call, keep_for, exclusive=exclusive, origin=origin):
        raise CloudApiError(
            "AuthFailure.SignatureFailure",
            f"This signature was already used for another call; {action} needs a signature of its own "
            "(sign it again: a second later the signature differs).",
        )


async def cloud_api(request: Request) -> Response:
    services: Services = request.app.state.services
    request_id = str(uuid.uuid4())
    try:
        body = await _read_body(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        action = headers.get("x-tc-action", "")
        if not action:
            raise CloudApiError("MissingParameter", "The request is missing the X-TC-Action header.")
        auth = authenticate(request, headers, body, services)
        version = headers.get("x-tc-version", "")
        if not version:
            raise CloudApiError("MissingParameter", "The request is missing the X-TC-Version header.")
        handler = CLOUD_SERVICES.resolve(action, version, auth.service if auth else None)
        if auth is not None:
            await bind_signature(request, auth, action, version, body, services)
        result = await handler(Params(_parse(body), origin=str(request.base_url).rstrip("/")), services)
    except CloudApiError as exc:
        return error_response(exc.code, exc.message, request_id)
    except ClientDisconnect:  # gone, or cut off past the body limit (and answered already)
        return error_response("InvalidParameter", "The request body was not received whole.", request_id)
    except Exception as exc:
        if fault_of(exc, f"cloud API call {request.headers.get('x-tc-action')}") is Fault.BUSY:
            return error_response("FailedOperation", "The server's database is busy; try again shortly.", request_id)
        return error_response("InternalError", "An internal error occurred.", request_id)
    if isinstance(result, Response):  # a streamed answer (lkeap ChatCompletions)
        return result
    return _json({"Response": {**result, "RequestId": request_id}})


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise CloudApiError("RequestSizeLimitExceeded", "The request body exceeds 10 MB.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CloudApiError("InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise CloudApiError("InvalidParameter", "The request body must be a JSON object.")
    return data


routes = [Route("/", cloud_api, methods=["POST"])]


def too_large(scope: Scope, limit: int) -> Response:
    return error_response("RequestSizeLimitExceeded", f"The request body exceeds {limit} bytes.", str(uuid.uuid4()))


def body_limit(limit: int) -> BodyLimit:
    """`POST /` only: the path no other face has."""
    return BodyLimit(lambda path: path == "/", limit, too_large)
