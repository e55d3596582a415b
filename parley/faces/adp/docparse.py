"""`POST /v1/qbot/chat/docParse`: parse an uploaded file for a chat session (ADP real-time documents).

The body names the upload (`cos_bucket`, `cos_url` = the UploadPath from
DescribeStorageCredential) and the chat `session_id` the document is for; without one, the
document goes to the first chat session that names it with its file URL. The answer is
an SSE stream, HTTP 200 like the chat endpoint: `parsing` events whose payload carries
`doc_id`, `process` (percent), `status` (`RUNNING`, then `SUCCESS` or `FAILED`),
`error_message` and `is_final`. ADP documents neither the event name nor the status
values; clients read the `data:` lines. A request refused before parsing starts gets an
`error` event, as the chat endpoint does. The `doc_id` then goes into the chat request's
`file_infos`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Scope

from parley.faces.adp.errors import MESSAGES, fault_code_and_message
from parley.faces.adp.render import error_frame, frame
from parley.faces.adp.request import SESSION_ID, BadRequest, parse_body, string_field
from parley.faces.bodies import BodyLimit
from parley.faces.faults import fault_of
from parley.knowledge.realtime_docs import DocumentError
from parley.services import Services

PATH = "/v1/qbot/chat/docParse"
EVENT = "parsing"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _refuse(code: int, detail: str, request_id: str) -> StreamingResponse:
    message = MESSAGES.get(code, "Request parameter error")
    return _stream(_single(error_frame(code, f"{message}: {detail}", request_id)))


async def doc_parse(request: Request) -> StreamingResponse:
    services: Services = request.app.state.services
    request_id = ""
    try:
        data = parse_body(await request.body())
        request_id = string_field(data, "request_id", 255)
        session_id = string_field(data, "session_id", 64)  # absent: the first chat naming the document
        if session_id and not SESSION_ID.match(session_id):
            raise BadRequest("session_id must match ^[a-zA-Z0-9_-]{2,64}$")
        app_key = string_field(data, "bot_app_key", 128, required=True, non_empty=True)
        bucket = string_field(data, "cos_bucket", 128)
        file_type = string_field(data, "file_type", 128, required=True, non_empty=True)
        file_name = string_field(data, "file_name", 512, required=True, non_empty=True)
        cos_url = string_field(data, "cos_url", 1024, required=True, non_empty=True)
        for name in ("cos_hash", "e_tag", "size"):
            string_field(data, name, 128)
        if bucket and bucket != services.settings.cloud_api.storage_bucket:
            raise BadRequest("cos_bucket is not the bucket DescribeStorageCredential gave")
    except BadRequest as exc:
        return _refuse(400, str(exc), request_id)
    try:
        row, release = await services.apps.released_by_key(app_key)
    except Exception as exc:
        code, message = fault_code_and_message(fault_of(exc, "docParse"))
        return _stream(_single(error_frame(code, message, request_id)))
    if row is None:
        return _refuse(4505004, "no application has this bot_app_key", request_id)
    if row.deleted or release is None:
        return _refuse(460004, "the application does not exist or is not published", request_id)
    if services.documents is None:
        return _refuse(400, "real-time documents are not enabled on this server", request_id)
    origin = str(request.base_url).rstrip("/")
    file_url = f"{origin}/{services.settings.cloud_api.storage_bucket}/{cos_url.lstrip('/')}"

    async def events() -> AsyncIterator[bytes]:
        common = {"request_id": request_id, "session_id": session_id, "file_name": file_name}
        yield frame(EVENT, {**common, "doc_id": "", "process": 0, "status": "RUNNING", "error_message": "",
                            "is_final": False, "timestamp": int(time.time())})
        try:
            doc = await services.documents.parse(row.id, session_id, cos_url, file_name, file_type, file_url)
        except DocumentError as exc:
            doc_id, status, error = "", "FAILED", str(exc)
        except Exception as exc:
            doc_id, status, error = "", "FAILED", fault_code_and_message(fault_of(exc, "docParse"))[1]
        else:
            doc_id = str(doc.id)
            status, error = ("SUCCESS", "") if doc.status == "success" else ("FAILED", doc.error_message or "")
        yield frame(EVENT, {**common, "doc_id": doc_id, "process": 100, "status": status, "error_message": error,
                            "is_final": True, "file_url": file_url, "timestamp": int(time.time())})

    return _stream(events())


routes = [Route(PATH, doc_parse, methods=["POST"])]


def too_large(scope: Scope, limit: int) -> Response:
    """A body over the limit: an `error` event (HTTP 200), code 400, as for any refused request."""
    message = f"{MESSAGES[400]}: the request body is larger than {limit} bytes"
    return Response(error_frame(400, message), media_type="text/event-stream", headers=SSE_HEADERS)


def body_limit(limit: int) -> BodyLimit:
    return BodyLimit(lambda path: path == PATH, limit, too_large)
