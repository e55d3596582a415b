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
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.services import Services
from parley.store.objects import ObjectError, clean_key

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_STATUS = {"AccessDenied": 403, "NoSuchKey": 404, "NoSuchUpload": 404, "MethodNotAllowed": 405}


def _xml(root: str, fields: dict[str, str], status: int = 200) -> Response:
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    namespace = "" if root == "Error" else f' xmlns="{S3_NAMESPACE}"'  # S3's errors carry none
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{namespace}>{inner}</{root}>'
    return Response(body, status_code=status, media_type="application/xml")


def _error(exc: ObjectError, key: str) -> Response:
    return _xml("Error", {"Code": exc.code, "Message": exc.message, "Key": key}, _STATUS.get(exc.code, 400))


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an `aws-chunked` body: `hex-size[;chunk-signature=...]\\r\\n data \\r\\n ... 0\\r\\n`."""
    out = bytearray()
    position = 0
    while True:
        end = body.find(b"\r\n", position)
        if end < 0:
            raise ObjectError("IncompleteBody", "malformed aws-chunked body")
        size = int(body[position:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        start = end + 2
        out += body[start : start + size]
        position = start + size + 2


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ObjectError("EntityTooLarge", f"uploads are limited to {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "")
    if "aws-chunked" in encoding or request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        body = decode_aws_chunked(body)
    return body


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
            body = await _read_body(request, limit)
            if "uploadId" in query:
                number = query.get("partNumber", "")
                if not number.isdigit():
                    raise ObjectError("InvalidArgument", "partNumber must be a number")
                etag = await documents.objects.put_part(key, query["uploadId"], int(number), body)
            else:
                etag = await documents.objects.put(key, body)
            return Response(b"", headers={"ETag": f'"{etag}"'})
        bucket = services.settings.cloud_api.storage_bucket
        if request.method == "POST" and "uploads" in query:
            upload_id = await documents.objects.start_multipart(key)
            return _xml("InitiateMultipartUploadResult", {"Bucket": bucket, "Key": key, "UploadId": upload_id})
        if request.method == "POST" and "uploadId" in query:
            await _read_body(request, 1024 * 1024)  # the part list; parts are joined in number order
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
        return _error(exc, raw_key)


def routes(bucket: str) -> list[Route]:
    return [Route(f"/{bucket}/{{key:path}}", objects, methods=["GET", "HEAD", "PUT", "POST", "DELETE"])]
