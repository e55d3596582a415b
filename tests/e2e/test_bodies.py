"""Request bodies against a real server: every face refuses a body over its limit in its own
shape, before the client has sent it whole and without holding it in memory; the upload path
parses aws-chunked bodies strictly and caps a multipart upload as a whole."""

from __future__ import annotations

import hashlib
import json
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import h11
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from TLSSigAPIv2 import TLSSigAPIv2
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley

LIMIT = 256 * 1024
"""Every face's limit in this server (uploads: `upload_max_bytes`)."""
SENT = 48 * 1024 * 1024
"""What the client offers to send: far more than the limit and than the sockets' buffers."""
BLOCK = 64 * 1024

CONFIG = f"""
[cloud_api]
verify_signatures = false
upload_max_bytes = {LIMIT}

[knowledge]
max_file_mb = 0.25

[[im.apps]]
sdkappid = 1400000001
secret_key = "bodies-im-key"

[body_limits]
adp_chat = {LIMIT}
socketio = {LIMIT}
cloud_api = {LIMIT}
im = {LIMIT}
cloudbase = {LIMIT}
admin = {LIMIT}
other = {LIMIT}
websocket = {LIMIT}
"""


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """One server per database (SQLite, then PostgreSQL) for the module's tests."""
    server = start_parley(tmp_path_factory.mktemp("bodies"), default_config(scripted_model) + CONFIG, database_args)
    yield server
    server.close()


@pytest.fixture(scope="module")
def app(server: ParleyServer) -> dict[str, Any]:
    return server.create_app("bodies-bot")


def grant_for(server: ParleyServer, app: dict[str, Any], public: bool = True) -> dict[str, Any]:
    """DescribeStorageCredential, unsigned (this server does not verify signatures)."""
    response = httpx.post(server.url + "/", json={"BotBizId": app["id"], "FileType": "md", "IsPublic": public,
                                                  "TypeKey": "realtime"},
                          headers={"X-TC-Action": "DescribeStorageCredential", "X-TC-Version": "2023-11-30"})
    return response.json()["Response"]


def s3_for(server: ParleyServer, grant: dict[str, Any]):
    creds = grant["Credentials"]
    return boto3.client(
        "s3", endpoint_url=server.url, region_name=grant["Region"],
        aws_access_key_id=creds["TmpSecretId"], aws_secret_access_key=creds["TmpSecretKey"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def healthy(server: ParleyServer) -> bool:
    return httpx.get(server.url + "/healthz", timeout=30).json()["status"] == "ok"


# -- a client that keeps sending until it is answered ------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int
    """Body bytes the client had sent when the answer came."""

    def json(self) -> Any:
        return json.loads(self.body)


def offer_body(url: str, method: str, target: str, headers: dict[str, str], *, chunked: bool, total: int = SENT) -> Answer:
    """Sends `total` body bytes (declared with Content-Length, or chunked without a length), a
    block at a time, and stops as soon as the server answers."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    client = h11.Connection(h11.CLIENT)
    length = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(total))]
    request = h11.Request(method=method, target=target, headers=[("Host", parts.netloc), *headers.items(), *length])
    sock.sendall(client.send(request))
    block = b"x" * BLOCK
    framed = b"%x\r\n%s\r\n" % (BLOCK, block) if chunked else block
    sent, pending = 0, b""
    sock.setblocking(False)
    try:
        while sent < total or pending:
            readable, writable, _ = select.select([sock], [sock], [], 60)
            if readable:
                break
            if not writable:
                raise AssertionError("the server neither read the body nor answered")
            if not pending:
                pending = framed
                sent += BLOCK
            try:
                pending = pending[sock.send(pending):]
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(60)
        return read_answer(sock, sent)
    finally:
        sock.close()


def read_answer(sock: socket.socket, sent: int) -> Answer:
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    parser.send(h11.EndOfMessage())
    status, headers, body = 0, {}, b""
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            try:
                parser.receive_data(sock.recv(65536))
            except ConnectionResetError:
                parser.receive_data(b"")
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {name.decode(): value.decode() for name, value in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return Answer(status, headers, body, sent)


def peak_rss(pid: int) -> int:
    """The process's peak resident size in bytes since the last reset."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def current_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- each face's refusal -----------------------------------------------------------------------------


def sse_error(answer: Answer) -> None:
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    event = json.loads(answer.body.decode().split("data:", 1)[1])
    assert event["type"] == "error" and event["error"]["code"] == 400
    assert "larger than" in event["error"]["message"]


def v2_sse_error(answer: Answer) -> None:
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    event = json.loads(answer.body.decode().split("data:", 1)[1].split("\n", 1)[0])
    assert event["Type"] == "error" and event["Error"]["Code"] == 400
    assert "larger than" in event["Error"]["Message"] and "data:[DONE]" in answer.body.decode()


def cloud_api_error(answer: Answer) -> None:
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    response = answer.json()["Response"]
    assert response["Error"]["Code"] == "RequestSizeLimitExceeded" and response["RequestId"]


def im_error(answer: Answer) -> None:
    assert answer.status == 200
    assert answer.json() == {"ActionStatus": "FAIL", "ErrorCode": 90010, "ErrorInfo": f"the request body is larger than {LIMIT} bytes"}


def cloudbase_error(answer: Answer) -> None:
    assert answer.status == 413 and answer.headers["x-request-id"]
    body = answer.json()
    assert body["code"] == "REQUEST_ENTITY_TOO_LARGE" and body["requestId"] == answer.headers["x-request-id"]


def admin_error(answer: Answer) -> None:
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "body_too_large"


def s3_error(answer: Answer) -> None:
    assert answer.status == 400 and answer.headers["content-type"] == "application/xml"
    assert b"<Code>EntityTooLarge</Code>" in answer.body


def engineio_error(answer: Answer) -> None:
    assert answer.status == 400 and answer.body == b'"Bad Request"'


@dataclass
class Context:
    """What a request needs to get past each face's credential checks to its body."""

    server: ParleyServer
    grant: dict[str, Any]
    cloudbase_bot: str
    cloudbase_key: str

    @property
    def admin(self) -> dict[str, str]:
        return self.server.admin_headers


def polling_session(server: ParleyServer, prefix: str = "v1/qbot") -> str:
    """A new Engine.IO long-polling session (its open packet is `0{"sid": ...}`)."""
    response = httpx.get(server.url + f"/{prefix}/chat/conn/?EIO=4&transport=polling")
    return json.loads(response.text[1:])["sid"]


IM_APP = 1400000001
IM_KEY = "bodies-im-key"
JSON = {"Content-Type": "application/json"}
Face = tuple[str, Callable[[Context], str], Callable[[Context], dict[str, str]], Callable[[Answer], None]]
FACES: dict[str, Face] = {
    "adp-sse": ("POST", lambda c: "/v1/qbot/chat/sse", lambda c: JSON, sse_error),
    "adp-v2-sse": ("POST", lambda c: "/adp/v2/chat", lambda c: JSON, v2_sse_error),
    "docparse": ("POST", lambda c: "/v1/qbot/chat/docParse", lambda c: JSON, sse_error),
    "cloud-api": ("POST", lambda c: "/", lambda c: {"X-TC-Action": "GetWsToken", "X-TC-Version": "2023-11-30"},
                  cloud_api_error),
    "im": ("POST", lambda c: f"/v4/openim/sendmsg?sdkappid={IM_APP}&identifier=administrator&random=1&contenttype=json"
                             f"&usersig={TLSSigAPIv2(IM_APP, IM_KEY).gen_sig('administrator', 3600)}",
           lambda c: JSON, im_error),
    "cloudbase": ("POST", lambda c: f"/v1/aibot/bots/{c.cloudbase_bot}/send-message",
                  lambda c: {**JSON, "Authorization": f"Bearer {c.cloudbase_key}"}, cloudbase_error),
    "admin": ("POST", lambda c: "/admin/apps", lambda c: {**JSON, **c.admin}, admin_error),
    "admin-kb-file": ("POST", lambda c: "/admin/apps/bodies-bot/kb/documents?name=big.md", lambda c: c.admin, admin_error),
    "upload": ("PUT", lambda c: f"/{c.grant['Bucket']}{c.grant['UploadPath']}", lambda c: {}, s3_error),
    "socketio": ("POST", lambda c: f"/v1/qbot/chat/conn/?EIO=4&transport=polling&sid={polling_session(c.server)}",
                 lambda c: {"Content-Type": "text/plain"}, engineio_error),
    "socketio-v2": ("POST", lambda c: f"/adp/v2/chat/conn/?EIO=4&transport=polling&sid={polling_session(c.server, 'adp/v2')}",
                    lambda c: {"Content-Type": "text/plain"}, engineio_error),
}


@pytest.fixture(scope="module")
def cloudbase_bot(server: ParleyServer, app: dict[str, Any]) -> dict[str, str]:
    response = server.admin("POST", f"/admin/apps/{app['name']}/cloudbase/keys", json={"kind": "api"})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("face", list(FACES))
def test_a_body_over_the_limit_is_refused_in_the_faces_shape_before_it_is_sent_whole(server, app, cloudbase_bot, face, chunked):
    method, target, headers, check = FACES[face]
    context = Context(server, grant_for(server, app), cloudbase_bot["botId"], cloudbase_bot["key"])
    pid = server.process.pid
    reset_peak_rss(pid)
    before = current_rss(pid)
    answer = offer_body(server.url, method, target(context), headers(context), chunked=chunked)
    check(answer)
    assert answer.headers.get("connection") == "close"
    assert answer.sent < SENT / 2  # answered long before the body was sent whole
    assert peak_rss(pid) - before < SENT / 4  # and never held in memory
    assert healthy(server)


def im_usersig(identifier: str) -> str:
    return TLSSigAPIv2(IM_APP, IM_KEY).gen_sig(identifier, 3600)


def test_a_websocket_message_over_the_limit_closes_the_connection(server):
    query = f"sdkappid={IM_APP}&identifier=administrator&usersig={im_usersig('administrator')}&random=1&contenttype=json"
    imported = httpx.post(f"{server.url}/v4/im_open_login_svc/account_import?{query}", json={"UserID": "wendy"}).json()
    assert imported["ErrorCode"] == 0
    url = server.url.replace("http://", "ws://") + f"/im/v1/ws?sdkappid={IM_APP}&identifier=wendy&usersig={im_usersig('wendy')}"
    with ws_connect(url, open_timeout=30, max_size=None) as socket:
        assert json.loads(socket.recv(timeout=30))["Event"] == "Ready"
        socket.send(json.dumps({"Event": "Ping", "Padding": "x" * 2 * LIMIT}))
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(5):  # keep-alives may come first; any answer means the message was read
                assert json.loads(socket.recv(timeout=30))["Event"] == "KeepAlive"
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert healthy(server)


@pytest.mark.parametrize("size_line", [b"-a", b"zz", b"-6", b"5;chunk-signature=nothex", b"+5"])
def test_a_malformed_aws_chunked_body_is_an_s3_error_and_the_server_keeps_answering(server, app, size_line):
    grant = grant_for(server, app)
    body = size_line + b"\r\nhello\r\n0\r\n\r\n"
    response = httpx.put(server.url + f"/{grant['Bucket']}{grant['UploadPath']}", content=body, timeout=30, headers={
        "Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})
    assert response.status_code == 400 and response.headers["content-type"] == "application/xml"
    assert "<Code>InvalidRequest</Code>" in response.text
    assert healthy(server)
    assert httpx.get(grant["FileUrl"]).status_code == 404  # nothing stored


def test_an_aws_chunked_body_that_ends_early_is_incomplete(server, app):
    grant = grant_for(server, app)
    response = httpx.put(server.url + f"/{grant['Bucket']}{grant['UploadPath']}", content=b"a\r\nhello", timeout=30,
                         headers={"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "10"})
    assert response.status_code == 400 and "<Code>IncompleteBody</Code>" in response.text
    assert httpx.get(grant["FileUrl"]).status_code == 404


def test_an_aws_chunked_body_is_stored_decoded(server, app):
    grant = grant_for(server, app)
    payload = b"# Notes\n\n" + b"0123456789" * 2000
    chunks = [payload[i : i + 8192] for i in range(0, len(payload), 8192)]
    body = b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), b"ab" * 32, c) for c in chunks) + b"0\r\n\r\n"
    response = httpx.put(server.url + f"/{grant['Bucket']}{grant['UploadPath']}", content=body, timeout=30, headers={
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    assert response.status_code == 200 and response.headers["etag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    assert httpx.get(grant["FileUrl"]).content == payload


def test_a_single_put_over_the_limit_is_refused_by_boto3s_own_request(server, app):
    grant = grant_for(server, app)
    with pytest.raises(ClientError) as info:
        s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"x" * (LIMIT + 1))
    assert info.value.response["Error"]["Code"] == "EntityTooLarge"
    assert httpx.get(grant["FileUrl"]).status_code == 404
    assert healthy(server)


def test_a_multipart_upload_over_the_cap_is_refused_and_nothing_is_stored(server, app):
    grant = grant_for(server, app)
    s3 = s3_for(server, grant)
    bucket, key = grant["Bucket"], grant["UploadPath"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = int(LIMIT * 0.45)
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=bytes([64 + n]) * part)["ETag"]
             for n in (1, 2)]
    with pytest.raises(ClientError) as info:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=3, Body=b"C" * part)
    assert info.value.response["Error"]["Code"] == "EntityTooLarge"
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, 1)]})  # the two parts that fit
    assert httpx.get(grant["FileUrl"]).content == b"A" * part + b"B" * part


def test_a_multipart_upload_under_the_cap_gives_the_right_bytes_and_etag(server, app):
    grant = grant_for(server, app)
    s3 = s3_for(server, grant)
    bucket, key = grant["Bucket"], grant["UploadPath"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    data = {1: b"first " * 20000, 2: b"second " * 10000, 3: b"third"}
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=body)["ETag"]}
             for n, body in sorted(data.items(), reverse=True)]
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                        MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])})
    whole = data[1] + data[2] + data[3]
    assert len(whole) <= LIMIT
    assert done["ETag"] == f'"{hashlib.md5(whole).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == whole


def test_flipping_an_upload_grants_visibility_is_refused(server, app):
    grant = grant_for(server, app, public=False)
    assert grant["UploadPath"].startswith("/private/")
    flipped = grant["UploadPath"].replace("/private/", "/public/", 1)
    with pytest.raises(ClientError) as info:
        s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=flipped, Body=b"# flipped")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"# as granted")
