"""`/{bucket}/{key}`: the upload path DescribeStorageCredential hands out, speaking enough S3.

ADP clients upload real-time documents and chat images to COS with an S3 client
(adp-chat-client: boto3, path-style, endpoint = Parley): a single `PUT`, or a multipart
upload (`POST ?uploads`, `PUT ?partNumber=&uploadId=`, `POST ?uploadId=`, `DELETE
?uploadId=`). Parley answers those calls with S3's XML and headers. The request's own
signature is not checked: a write is allowed only under a key Parley granted, until the
grant expires (parley.knowledge.realtime_docs). `GET` serves an uploaded file back by
its unguessable key (FileUrl).
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from xml.sax.saxutils import escape

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from parley.faces.adp.aws_chunked import AwsChunkedDecoder, ChunkedBodyError
from parley.faces.bodies import BodyLimit
from parley.knowledge.realtime_docs import ObjectError, clean_key
from parley.services import Services

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_STATUS = {"AccessDenied": 403, "NoSuchKey": 404, "NoSuchUpload": 404, "MethodNotAllowed": 405}
COMPLETION_MAX_BYTES = 1024 * 1024
FRAMING_ALLOWANCE = 64 * 1024
"""Bytes allowed on the wire beyond `upload_max_bytes` (plus 1/64 of it) for aws-chunked framing:
about 90 bytes a chunk, under 1.2 % for chunks of 8 KiB, S3's smallest but the last."""


def _xml(root: str, fields: dict[str, str], status: int = 200) -> Response:
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    namespace = "" if root == "Error" else f' xmlns="{S3_NAMESPACE}"'  # S3's errors carry none
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{namespace}>{inner}</{root}>'
    return Response(body, status_code=status, media_type="application/xml")


def _error(exc: ObjectError, key: str) -> Response:
    return _xml("Error", {"Code": exc.code, "Message": exc.message, "Key": key}, _STATUS.get(exc.code, 400))


def is_aws_chunked(request: Request) -> bool:
    encoding = request.headers.get("content-encoding", "")
    return "aws-chunked" in encoding or request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")


def _declared(request: Request, header: str) -> int | None:
    value = request.headers.get(header, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 20 else None


async def payload(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The uploaded bytes as they arrive, aws-chunked bodies decoded. A body declared larger
    than `limit` is refused before it is read (the store counts what actually arrives)."""
    if is_aws_chunked(request):
        declared = _declared(request, "x-amz-decoded-content-length")
        if declared is None and "x-amz-decoded-content-length" in request.headers:
            raise ObjectError("InvalidArgument", "x-amz-decoded-content-length must be a number of bytes")
        if declared is not None and declared > limit:
            raise ObjectError("EntityTooLarge", f"uploads are limited to {limit} bytes")
        decoder = AwsChunkedDecoder()
        try:
            async for chunk in request.stream():
                if data := decoder.feed(chunk):
                    yield data
            decoder.finish()
        except ChunkedBodyError as exc:
            raise ObjectError(exc.code, exc.message) from None
        if declared is not None and declared != decoder.payload_size:
            raise ObjectError("IncompleteBody", "the payload is not x-amz-decoded-content-length bytes long")
        return
    declared = _declared(request, "content-length")
    if declared is not None and declared > limit:
        raise ObjectError("EntityTooLarge", f"uploads are limited to {limit} bytes")
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _read_small(request: Request, limit: int) -> bytes:
    """A small body (the multipart completion's part list), read whole within `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ObjectError("EntityTooLarge", f"this request's body is limited to {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def objects(request: Request) -> Response:
    services: Services = request.app.state.services
    documents = services.documents
    raw_key = request.path_params["key"]
    if documents is None:
        return _error(ObjectError("AccessDenied", "uploads are not enabled on this server"), raw_key)
    query = request.query_params
    try:
        key = clean_key(raw_key)
        if request.method in ("GET", "HEAD"):
            documents.granted_app(key, for_writing=False)
            data = await documents.objects.get(key)
            if data is None:
                raise ObjectError("NoSuchKey", "the object does not exist")
            media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
            return Response(b"" if request.method == "HEAD" else data, media_type=media_type,
                            headers={"Content-Length": str(len(data))})
        documents.granted_app(key, for_writing=True)
        limit = services.settings.cloud_api.upload_max_bytes
        if request.method == "PUT":
            if "uploadId" in query:
                number = query.get("partNumber", "")
                # isdigit() alone also takes other scripts' digits, which int() refuses
                if not (number.isascii() and number.isdigit() and len(number) <= 5 and 1 <= int(number) <= 10000):
                    raise ObjectError("InvalidArgument", "partNumber must be a number between 1 and 10000")
                etag = await documents.objects.put_part(key, query["uploadId"], int(number), payload(request, limit))
            else:
                etag = await documents.objects.put(key, payload(request, limit))
            return Response(b"", headers={"ETag": f'"{etag}"'})
        bucket = services.settings.cloud_api.storage_bucket
        if request.method == "POST" and "uploads" in query:
            upload_id = await documents.objects.start_multipart(key)
            return _xml("InitiateMultipartUploadResult", {"Bucket": bucket, "Key": key, "UploadId": upload_id})
        if request.method == "POST" and "uploadId" in query:
            await _read_small(request, COMPLETION_MAX_BYTES)  # the part list; parts are joined in number order
            etag = await documents.objects.complete_multipart(key, query["uploadId"])
            location = f"{str(request.base_url).rstrip('/')}/{bucket}/{key}"
            return _xml(
                "CompleteMultipartUploadResult",
                {"Location": location, "Bucket": bucket, "Key": key, "ETag": f'"{etag}"'},
            )
        if request.method == "DELETE" and "uploadId" in query:
            await documents.objects.abort_multipart(key, query["uploadId"])
            return Response(status_code=204)
        raise ObjectError("MethodNotAllowed", "this operation is not supported on uploads")
    except ObjectError as exc:
        response = _error(exc, raw_key)
        if request.method in ("PUT", "POST"):
            response.headers["Connection"] = "close"  # the rest of a refused body is not read
        return response
    except ClientDisconnect:  # the client left, or its body passed the limit (already answered)
        return Response(status_code=400)


def routes(bucket: str) -> list[Route]:
    return [Route(f"/{bucket}/{{key:path}}", objects, methods=["GET", "HEAD", "PUT", "POST", "DELETE"])]


def body_limit(bucket: str, upload_max_bytes: int) -> BodyLimit:
    """The upload path's limit on the wire: the payload's own limit (checked as it is decoded)
    plus room for aws-chunked framing."""
    prefix = f"/{bucket}/"
    wire = upload_max_bytes + upload_max_bytes // 64 + FRAMING_ALLOWANCE

    def refuse(scope: Scope, limit: int) -> Response:
        key = scope["path"].removeprefix(prefix)
        return _error(ObjectError("EntityTooLarge", f"uploads are limited to {upload_max_bytes} bytes"), key)

    return BodyLimit(lambda path: path.startswith(prefix), wire, refuse)
