"""Seeded, bounded fuzzing of the ADP faces: SSE chat, Socket.IO (python-socketio payloads and
raw Engine.IO/Socket.IO frames), the cloud API, docParse and the upload path.

Each test sends a batch of generated requests to the shared fuzz server and checks every
answer: no 5xx, no stack trace, and the face's own shape (SSE `event:`/`data:` frames,
Socket.IO packets, the cloud API's `Response` envelope, S3's XML errors). Requests built to
be refused must all be refused, and the admin API's view of the target application (its
definition, the owner's session records, its knowledge base, its CloudBase bot and keys)
must be the same after the batch as before.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from typing import Any

import httpx
import orjson
import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tencentcloud.lke.v20231130 import models as lke_models
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from parley.faces.adp.cloud_actions import ACTIONS
from tests.support.fuzzing import (
    OWNED_SESSION,
    OWNER,
    Credentials,
    assert_no_traceback,
    digit_strings,
    examples_shared,
    garbage_bodies,
    json_values,
    objects_with,
    stored_state,
    texts,
)

FUZZ = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
SIO_PATH = "v1/qbot/chat/conn"
SIO_EVENTS = ("reply", "token_stat", "reference", "thought", "error")


# -- SSE ------------------------------------------------------------------------------------

CHAT_FIELDS = ["request_id", "session_id", "bot_app_key", "visitor_biz_id", "content", "file_infos", "streaming_throttle",
               "incremental", "system_role", "model_name", "tcadp_user_id", "custom_variables", "visitor_labels",
               "tool_ouputs", "agent_config", "stream", "search_network", "workflow_status"]

REFUSED_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "session_id": st.one_of(st.sampled_from(["", "a", "x" * 65, "bad id!", "s/../x", "s\n1"]), st.integers(), st.lists(texts)),
    "streaming_throttle": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31), st.booleans(), texts),
    "incremental": st.one_of(st.integers(), texts, st.lists(st.booleans())),
    "stream": texts.filter(lambda v: v not in ("", "enable", "disable")),
    "custom_variables": st.one_of(st.lists(texts), st.dictionaries(texts, st.integers(), min_size=1)),
    "visitor_labels": st.one_of(st.dictionaries(texts, texts), st.lists(st.integers(), min_size=1)),
    "file_infos": st.one_of(st.dictionaries(texts, texts), st.lists(st.integers(), min_size=1),
                            st.just([{"file_name": 1}])),
    "model_name": st.one_of(st.integers(), st.text(min_size=129, max_size=140)),
    "system_role": st.one_of(st.integers(), st.lists(texts)),
    "request_id": st.text(min_size=256, max_size=300),
    "agent_config": st.one_of(st.lists(texts), st.integers(), texts),
}
"""Values a validator refuses whatever the other fields are."""


@st.composite
def refused_chat_bodies(draw: st.DrawFn, app_key: str) -> bytes:
    """A chat body that must be refused: garbage, or a valid body aimed at the owner's session
    with any other changes plus one that is refused on its own (a bad field, an unknown
    AppKey, or another visitor)."""
    if draw(st.integers(0, 4)) == 0:
        return draw(garbage_bodies)
    body: dict[str, Any] = {"bot_app_key": app_key, "visitor_biz_id": OWNER, "session_id": OWNED_SESSION,
                            "content": "fuzz", "request_id": "r-fuzz"}
    refusal = draw(st.sampled_from([*REFUSED_FIELDS, "bot_app_key", "visitor_biz_id"]))
    protected = {refusal, "session_id", "bot_app_key", "visitor_biz_id"}
    extra = draw(st.dictionaries(st.sampled_from(CHAT_FIELDS).filter(lambda k: k not in protected), json_values, max_size=4))
    body.update(extra)
    if refusal == "bot_app_key":
        body[refusal] = draw(st.one_of(st.sampled_from(["", "no-such-key"]), st.integers(), st.text(min_size=129, max_size=140)))
    elif refusal == "visitor_biz_id":
        body[refusal] = "intruder-" + draw(st.text(alphabet="abc123", max_size=8))  # not the session's owner
    else:
        body[refusal] = draw(REFUSED_FIELDS[refusal])
    return json.dumps(body).encode()  # integers past 64 bits too (orjson refuses to write them)


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The events of an ADP SSE answer, checking its shape: `event:`, `data:` JSON whose type is the event."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        if lines[0].startswith("id:"):  # a turn's events carry their id first (a refusal none)
            lines = lines[1:]
        assert len(lines) == 2 and lines[0].startswith("event:") and lines[1].startswith("data:"), block
        name, data = lines[0][6:], json.loads(lines[1][5:])
        assert data["type"] == name, block
        events.append((name, data))
    return events


def assert_adp_error(data: dict[str, Any]) -> None:
    error = data["error"]
    assert isinstance(error["code"], int) and error["code"] != 500 and isinstance(error["message"], str), data
    assert data["payload"]["error"] == error


def test_sse_refuses_malformed_requests_and_stores_nothing(fuzz_credentials: Credentials) -> None:
    before = stored_state(fuzz_credentials)
    url = f"{fuzz_credentials.server.url}/v1/qbot/chat/sse"

    @examples_shared(fuzz_credentials, FUZZ)
    @given(body=refused_chat_bodies(fuzz_credentials.app_key))
    def check(body: bytes) -> None:
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert_no_traceback(response.text, body.decode("utf-8", "replace"))
        events = sse_events(response)
        assert [name for name, _ in events] == ["error"], events
        assert_adp_error(events[0][1])

    check()
    assert stored_state(fuzz_credentials) == before


# -- Socket.IO ------------------------------------------------------------------------------


def ws_token(credentials: Credentials, visitor: str) -> str:
    response = cloud_call(credentials, "GetWsToken", {"Type": 5, "BotAppKey": credentials.app_key, "VisitorBizId": visitor})
    return response["Response"]["Token"]


@st.composite
def socketio_emits(draw: st.DrawFn) -> tuple[str, Any]:
    """An event and its argument as python-socketio sends them: `send` with a refused body, or
    anything under `send`, `stop_generation` or another name."""
    kind = draw(st.integers(0, 3))
    if kind <= 1:
        fields = {"session_id": OWNED_SESSION, "content": "fuzz", "request_id": "r-sio",
                  **draw(st.dictionaries(st.sampled_from(CHAT_FIELDS).filter(lambda k: k != "session_id"), json_values,
                                         max_size=4))}
        return "send", draw(st.sampled_from([{"payload": fields}, fields]))
    if kind == 2:
        return draw(st.sampled_from(["send", "stop_generation"])), draw(json_values)
    return draw(texts.filter(lambda n: n not in ("send", "stop_generation", "connect", "disconnect", "message", ""))), draw(json_values)


def test_socketio_payloads_get_error_events_and_store_nothing(fuzz_credentials: Credentials) -> None:
    """An intruder's connection: every `send` aims at the owner's session, so every event is refused."""
    before = stored_state(fuzz_credentials)
    client = socketio.SimpleClient()
    # Long-polling, as socket.io-client starts (python-socketio's sync client needs websocket-client
    # for WebSocket; raw WebSocket frames have their own test below).
    client.connect(fuzz_credentials.server.url, socketio_path=SIO_PATH, transports=["polling"],
                   auth={"token": ws_token(fuzz_credentials, "intruder")})
    try:

        @examples_shared(fuzz_credentials, FUZZ, 20)  # long-polling answers take a round trip or two each
        @given(emit=socketio_emits())
        def check(emit: tuple[str, Any]) -> None:
            name, data = emit
            client.emit(name, data)
            event, *args = client.receive(timeout=20)
            assert event == "error", (event, args)
            assert_adp_error(args[0])
            assert_no_traceback(json.dumps(args[0]), json.dumps(data))

        check()
    finally:
        # Closed without waiting for the long-poll in flight, which the server answers only at its
        # next ping (25 s): the session is closed all the same (the close packet is sent first).
        client.client.eio.disconnect(abort=True)
    assert stored_state(fuzz_credentials) == before


ENGINE_IO_FRAMES = st.one_of(
    texts,
    st.binary(max_size=32),
    st.tuples(st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "40", "41", "42", "43", "44", "45", "46", "4/x,"]),
              st.one_of(texts, json_values.map(json.dumps))).map("".join),
    json_values.map(lambda v: "42" + json.dumps(["send", v])),
    json_values.map(lambda v: "42" + json.dumps(["stop_generation", v])),
    json_values.map(lambda v: "42" + json.dumps(v)),
)


def assert_socketio_frame(frame: str | bytes) -> None:
    """A frame the server sends: an Engine.IO packet; Socket.IO events are ADP events with JSON."""
    assert isinstance(frame, str) and frame[:1] in "0123456", frame
    assert_no_traceback(frame)
    if frame.startswith("42"):
        name, data = json.loads(frame[2:])
        assert name in SIO_EVENTS, frame
        if name == "error":
            assert_adp_error(data)
    elif frame.startswith("44"):
        assert isinstance(json.loads(frame[2:]), dict), frame


def test_raw_engineio_frames_get_well_formed_answers(fuzz_credentials: Credentials) -> None:
    """Raw frames after a real handshake; then an upgrade probe (`5`) must still be answered
    with a noop (`6`), or the server has closed that connection; every frame the server sent
    meanwhile is a well-formed packet."""
    before = stored_state(fuzz_credentials)
    url = fuzz_credentials.server.url.replace("http://", "ws://") + f"/{SIO_PATH}/?EIO=4&transport=websocket"

    @examples_shared(fuzz_credentials, FUZZ)
    @given(frames=st.lists(ENGINE_IO_FRAMES, min_size=1, max_size=3))
    def check(frames: list[str | bytes]) -> None:
        token = ws_token(fuzz_credentials, "intruder")
        with ws_connect(url, open_timeout=20) as ws:
            assert ws.recv(timeout=20).startswith("0")
            ws.send("40" + json.dumps({"token": token}))
            assert ws.recv(timeout=20).startswith("40")
            try:
                for frame in frames:
                    ws.send(frame)
                ws.send("5")
                while (frame := ws.recv(timeout=20)) != "6":
                    assert_socketio_frame(frame)
            except ConnectionClosed:
                pass  # the server may drop a connection that broke the protocol
        assert httpx.get(f"{fuzz_credentials.server.url}/healthz", timeout=10).status_code == 200

    check()
    assert stored_state(fuzz_credentials) == before


# -- cloud API ------------------------------------------------------------------------------


def cloud_call(credentials: Credentials, action: str, params: Any, version: str = "2023-11-30") -> dict[str, Any]:
    body = params if isinstance(params, bytes) else orjson.dumps(params)
    response = httpx.post(f"{credentials.server.url}/", content=body, timeout=30, headers={
        "Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": version})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_no_traceback(response.text, body.decode("utf-8", "replace"))
    data = response.json()
    assert isinstance(data["Response"]["RequestId"], str) and data["Response"]["RequestId"]
    return data


def sdk_parameters(action: str) -> list[str]:
    """The action's parameter names, from the official SDK's request model."""
    model = getattr(lke_models, f"{action}Request", None)
    return [name[1:] for name in vars(model()) if name.startswith("_")] if model else []


READ_ONLY = {"ListModel", "DescribeRobotBizIDByAppKey", "DescribeApp", "GetMsgRecord", "DescribeReleaseInfo",
             "DescribeRefer", "ListDoc", "DescribeDoc", "ListQA", "DescribeQA", "ListAttributeLabel",
             "DescribeAttributeLabel", "GetWsToken", "DescribeStorageCredential"}
"""Actions that store nothing: these get the target application's real ids and keys, to reach past lookups."""


@st.composite
def cloud_calls(draw: st.DrawFn, credentials: Credentials) -> tuple[str, Any, bool]:
    action = draw(st.one_of(st.sampled_from(sorted(ACTIONS)), st.sampled_from(sorted(ACTIONS)),
                            st.from_regex(r"\A[A-Za-z0-9.]{0,24}\Z")))  # what a header can carry
    names = sdk_parameters(action) or ["Name"]
    if draw(st.integers(0, 5)) == 0:
        return action, draw(garbage_bodies), False
    values: list[st.SearchStrategy[Any]] = [json_values, digit_strings, st.lists(digit_strings, max_size=3)]
    real = action in READ_ONLY
    if real:
        values += [st.just(credentials.app["id"]), st.just(credentials.app_key), st.just(OWNED_SESSION), st.just(OWNER)]
    params = draw(st.dictionaries(st.one_of(st.sampled_from(names), texts), st.one_of(values), max_size=5))
    return action, params, real


def test_cloud_api_answers_every_call_in_its_envelope(fuzz_credentials: Credentials) -> None:
    before = stored_state(fuzz_credentials)

    @examples_shared(fuzz_credentials, FUZZ, 60)
    @given(call=cloud_calls(fuzz_credentials))
    def check(call: tuple[str, Any, bool]) -> None:
        action, params, _ = call
        data = cloud_call(fuzz_credentials, action, params)
        error = data["Response"].get("Error")
        if error is not None:
            assert isinstance(error["Code"], str) and isinstance(error["Message"], str), data
            assert error["Code"] != "InternalError", (action, params, data)

    check()
    assert stored_state(fuzz_credentials) == before


@pytest.mark.parametrize("value", ["99999999999999999999", "²"])
def test_cloud_api_ids_past_63_bits_are_refused_as_invalid(fuzz_credentials: Credentials, value: str) -> None:
    data = cloud_call(fuzz_credentials, "DescribeApp", {"AppBizId": value})
    assert data["Response"]["Error"]["Code"] in ("InvalidParameterValue", "ResourceNotFound"), data


# -- docParse -------------------------------------------------------------------------------

DOC_FIELDS = ["request_id", "session_id", "bot_app_key", "cos_bucket", "file_type", "file_name", "cos_url", "cos_hash",
              "e_tag", "size"]


def test_doc_parse_answers_with_parsing_or_error_events(fuzz_credentials: Credentials) -> None:
    before = stored_state(fuzz_credentials)
    url = f"{fuzz_credentials.server.url}/v1/qbot/chat/docParse"
    base = {"session_id": OWNED_SESSION, "bot_app_key": fuzz_credentials.app_key, "file_type": "md",
            "file_name": "a.md", "cos_url": "/public/none.md", "request_id": "r-doc"}

    @examples_shared(fuzz_credentials, FUZZ)
    @given(body=st.one_of(garbage_bodies, objects_with(DOC_FIELDS).map(lambda extra: orjson.dumps({**base, **extra}))))
    def check(body: bytes) -> None:
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert_no_traceback(response.text, body.decode("utf-8", "replace"))
        events = sse_events(response)
        names = [name for name, _ in events]
        assert names == ["error"] or (names == ["parsing", "parsing"] and events[-1][1]["payload"]["is_final"]), events
        if names == ["error"]:
            assert_adp_error(events[0][1])

    check()
    assert stored_state(fuzz_credentials) == before


# -- uploads (S3 path) ----------------------------------------------------------------------


def grant(credentials: Credentials) -> dict[str, Any]:
    return cloud_call(credentials, "DescribeStorageCredential", {"BotBizId": credentials.app["id"], "FileType": "md",
                                                                 "IsPublic": True, "TypeKey": "realtime"})["Response"]


def aws_chunked(data: bytes, size: int) -> bytes:
    """A well-formed aws-chunked body. Malformed ones are left out: issue 13 item 1 (owned by
    bodies) — a negative chunk size freezes the server, a non-hex one answers 500."""
    chunks = [data[i:i + size] for i in range(0, len(data), size)] + [b""]
    return b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), b"0" * 64, c) for c in chunks)


@st.composite
def s3_requests(draw: st.DrawFn, granted: dict[str, Any]) -> tuple[str, str, dict[str, str], dict[str, str], bytes]:
    bucket, key = granted["Bucket"], granted["UploadPath"].lstrip("/")
    path_key = draw(st.one_of(st.just(key), st.just(key + "/x"), st.from_regex(r"\Apublic/[0-9a-f]{8}\.md\Z"),
                              st.sampled_from(["../" + key, "%2e%2e/x", "x//y", key.upper(), ""]),
                              st.text(st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="?#"),
                                      max_size=24)))
    method = draw(st.sampled_from(["PUT", "PUT", "POST", "GET", "HEAD", "DELETE"]))
    query = draw(st.dictionaries(st.sampled_from(["uploads", "uploadId", "partNumber", "x-id"]),
                                 st.one_of(texts, st.sampled_from(["²", "-1", "99999999999999999999"]), digit_strings),
                                 max_size=3))
    data = draw(st.binary(max_size=256))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        data = aws_chunked(data, draw(st.integers(1, 64)))
        headers = {"Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    return method, f"/{bucket}/{path_key}", query, headers, data


def test_uploads_answer_in_s3_shape(fuzz_credentials: Credentials) -> None:
    before = stored_state(fuzz_credentials)
    granted = grant(fuzz_credentials)

    @examples_shared(fuzz_credentials, FUZZ)
    @given(request=s3_requests(granted))
    def check(request: tuple[str, str, dict[str, str], dict[str, str], bytes]) -> None:
        method, path, query, headers, data = request
        response = httpx.request(method, fuzz_credentials.server.url + path, params=query, headers=headers,
                                 content=data if method in ("PUT", "POST") else None, timeout=30)
        assert response.status_code < 500, (request, response.status_code, response.text)
        assert_no_traceback(response.text, data.decode("utf-8", "replace"))
        if response.status_code >= 400 and method != "HEAD":
            if response.headers["content-type"].startswith("text/plain"):  # a path outside the bucket
                assert response.status_code == 404 and response.text == "Not Found", (request, response.text)
                return
            assert response.headers["content-type"].startswith("application/xml"), response.text
            error = ElementTree.fromstring(response.content)
            assert error.tag == "Error" and error.findtext("Code"), response.text

    check()
    assert stored_state(fuzz_credentials) == before


@pytest.mark.parametrize("query, headers, body", [
    ({}, {"Content-Encoding": "aws-chunked"}, b"zz\r\nabc\r\n0\r\n\r\n"),  # a chunk size that is not hex
    ({}, {"Content-Encoding": "aws-chunked"}, b"-a\r\nabc\r\n0\r\n\r\n"),  # a negative size (froze the server)
    ({"uploadId": "x", "partNumber": "²"}, {}, b"abc"),  # passes isdigit(), fails int()
    ({"uploadId": "x", "partNumber": "0"}, {}, b"abc"),  # S3 numbers parts from 1
    ({}, {"x-amz-decoded-content-length": "\xb2".encode("latin-1"), "Content-Encoding": "aws-chunked"},
     b"3\r\nabc\r\n0\r\n\r\n"),
], ids=["non-hex-chunk-size", "negative-chunk-size", "part-number-of-other-digits", "part-number-zero",
        "decoded-length-of-other-digits"])
def test_malformed_uploads_get_s3_errors(fuzz_credentials: Credentials, query: dict[str, str],
                                         headers: dict[str, str], body: bytes) -> None:
    granted = grant(fuzz_credentials)
    response = httpx.put(f"{fuzz_credentials.server.url}/{granted['Bucket']}/{granted['UploadPath'].lstrip('/')}",
                         params=query, headers=headers, content=body, timeout=30)
    assert response.status_code == 400, response.text
    assert ElementTree.fromstring(response.content).tag == "Error"
