"""ADP over WebSocket (Socket.IO v4 at /v1/qbot/chat/conn/), with python-socketio and with raw frames."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import socketio
import websockets
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lke.v20231130 import lke_client, models

from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley

SECRET_ID = "AKIDwstest"
SECRET_KEY = "ws-test-secret-key"
CONFIG = f"""
[cloud_api]
[[cloud_api.credentials]]
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"
"""
PATH = "v1/qbot/chat/conn"
EVENTS = ("reply", "token_stat", "reference", "thought", "error")


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    server = start_parley(tmp_path_factory.mktemp("ws"), default_config(scripted_model) + CONFIG, database_args)
    yield server
    server.close()


@pytest.fixture(scope="module")
def app(server: ParleyServer) -> dict[str, Any]:
    return server.create_app("ws-bot")


def ws_token(server: ParleyServer, app_key: str, visitor: str = "v-ws") -> str:
    """A token from GetWsToken, fetched with the official SDK."""
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.url.removeprefix("http://")))
    client = lke_client.LkeClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    request = models.GetWsTokenRequest()
    request.from_json_string(json.dumps({"Type": 5, "BotAppKey": app_key, "VisitorBizId": visitor}))
    return client.GetWsToken(request).Token


class Listener:
    """A python-socketio client that queues every ADP event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for name in EVENTS:
            self.client.on(name, self._handler(name))

    def _handler(self, name: str):
        async def handle(data: dict[str, Any]) -> None:
            await self.events.put((name, data))
        return handle

    async def connect(self, server: ParleyServer, token: str) -> None:
        await self.client.connect(server.url, socketio_path=PATH, transports=["websocket"], auth={"token": token})

    async def next(self, timeout: float = 20) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def until_final(self, request_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Events up to the final answer reply (or an error) of the turn with `request_id`."""
        seen = []
        while True:
            name, data = await self.next()
            payload = data.get("payload", {})
            if request_id is not None and payload.get("request_id") != request_id:
                continue
            seen.append((name, data))
            if name == "error" or (name == "reply" and payload["is_final"] and not payload["is_from_self"]):
                return seen


async def test_a_turn_over_socketio_has_the_sse_events_in_order(server, app, model):
    listener = Listener()
    await listener.connect(server, ws_token(server, app["app_key"]))
    try:
        await listener.client.emit("send", {"payload": {"request_id": "r1", "session_id": "s-ws-1", "content": "hello socket"}})
        events = await listener.until_final()
    finally:
        await listener.client.disconnect()
    names = [n for n, _ in events]
    first_name, first = events[0]
    assert first_name == "reply" and first["type"] == "reply"
    echo = first["payload"]
    assert echo["is_from_self"] is True and echo["content"] == "hello socket" and echo["can_rating"] is False
    assert echo["request_id"] == "r1" and echo["session_id"] == "s-ws-1"
    assert "token_stat" in names
    final = events[-1][1]["payload"]
    assert final["content"] == "Echo: hello socket"
    assert final["related_record_id"] == echo["record_id"]
    assert all(d["type"] == n for n, d in events)


async def test_a_send_without_a_session_id_gets_an_error_event(server, app):
    listener = Listener()
    await listener.connect(server, ws_token(server, app["app_key"]))
    try:
        await listener.client.emit("send", {"payload": {"request_id": "bad", "content": "no session"}})
        name, data = await listener.next()
    finally:
        await listener.client.disconnect()
    assert name == "error"
    assert data["error"]["code"] == 400 and data["payload"]["error"]["code"] == 400
    assert data["payload"]["request_id"] == "bad"


async def test_a_token_opens_one_connection_only(server, app):
    token = ws_token(server, app["app_key"])
    first = Listener()
    await first.connect(server, token)
    await first.client.disconnect()
    second = Listener()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await second.connect(server, token)


async def test_an_unknown_token_is_refused(server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        await Listener().connect(server, "not-a-token")


async def test_several_turns_run_on_one_connection_for_different_sessions(server, app, model):
    model.script("slow pair", content="abcdefghij", chunk_size=2, delay=0.1)
    listener = Listener()
    await listener.connect(server, ws_token(server, app["app_key"]))
    try:
        await listener.client.emit("send", {"payload": {"request_id": "ra", "session_id": "s-ws-a", "content": "slow pair a"}})
        await listener.client.emit("send", {"payload": {"request_id": "rb", "session_id": "s-ws-b", "content": "slow pair b"}})
        finals: dict[str, dict[str, Any]] = {}
        while len(finals) < 2:
            name, data = await listener.next()
            payload = data["payload"]
            if name == "reply" and payload["is_final"] and not payload["is_from_self"]:
                finals[payload["request_id"]] = payload
    finally:
        await listener.client.disconnect()
    assert finals["ra"]["content"] == finals["rb"]["content"] == "abcdefghij"
    assert finals["ra"]["session_id"] == "s-ws-a" and finals["rb"]["session_id"] == "s-ws-b"
    assert model.stats()["max_concurrent"] == 2


async def test_stop_generation_stops_the_turn_and_the_model_call(server, app, model):
    model.script("stop me", content="x" * 400, chunk_size=1, delay=0.05)
    listener = Listener()
    await listener.connect(server, ws_token(server, app["app_key"]))
    try:
        await listener.client.emit("send", {"payload": {"request_id": "rs", "session_id": "s-ws-stop", "content": "stop me"}})
        while True:  # wait until the answer is streaming
            name, data = await listener.next()
            if name == "reply" and not data["payload"]["is_from_self"]:
                record_id = data["payload"]["record_id"]
                break
        await listener.client.emit("stop_generation", {"payload": {"record_id": record_id}})
        rest = await listener.until_final("rs")
    finally:
        await listener.client.disconnect()
    final = rest[-1][1]["payload"]
    assert final["is_final"] is True and final["record_id"] == record_id
    assert len(final["content"]) < 400
    stats = [d["payload"]["status_summary"] for n, d in rest if n == "token_stat"]
    assert stats[-1] == "stop"
    for _ in range(50):  # the upstream stream was closed, not left to finish
        if model.stats()["closed_early"] >= 1:
            break
        await asyncio.sleep(0.1)
    assert model.stats()["closed_early"] >= 1
    assert model.stats()["completed"] == 0


async def test_stop_generation_for_an_unknown_record_is_an_error(server, app):
    listener = Listener()
    await listener.connect(server, ws_token(server, app["app_key"]))
    try:
        await listener.client.emit("stop_generation", {"payload": {"record_id": "123"}})
        name, data = await listener.next()
    finally:
        await listener.client.disconnect()
    assert name == "error" and data["error"]["code"] == 460006


# -- raw Engine.IO / Socket.IO frames ---------------------------------------------------------


def raw_url(server: ParleyServer) -> str:
    return server.url.replace("http://", "ws://") + "/v1/qbot/chat/conn/?EIO=4&transport=websocket"


async def test_raw_frames_handshake_send_and_reply(server, app, model):
    token = ws_token(server, app["app_key"])
    async with websockets.connect(raw_url(server)) as ws:
        opening = await asyncio.wait_for(ws.recv(), 10)
        assert opening.startswith("0")
        handshake = json.loads(opening[1:])
        assert handshake["pingInterval"] == 25000 and handshake["pingTimeout"] == 5000
        assert handshake["upgrades"] == [] and handshake["sid"]
        await ws.send("40" + json.dumps({"token": token}))
        connected = await asyncio.wait_for(ws.recv(), 10)
        assert connected.startswith("40") and "sid" in json.loads(connected[2:])
        await ws.send("42" + json.dumps(["send", {"payload": {"request_id": "raw", "session_id": "s-raw", "content": "raw hello"}}]))
        replies = []
        while True:
            frame = await asyncio.wait_for(ws.recv(), 20)
            if frame == "2":
                await ws.send("3")
                continue
            assert frame.startswith("42")
            name, data = json.loads(frame[2:])
            if name == "reply":
                replies.append(data["payload"])
                if data["payload"]["is_final"] and not data["payload"]["is_from_self"]:
                    break
    assert replies[0]["is_from_self"] is True
    assert replies[-1]["content"] == "Echo: raw hello"


async def test_raw_frames_bad_token_gets_connect_error(server):
    async with websockets.connect(raw_url(server)) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        await ws.send('40{"token":"nope"}')
        refused = await asyncio.wait_for(ws.recv(), 10)
    assert refused.startswith("44")
    body = json.loads(refused[2:])
    assert body["data"]["code"] == 460001




async def test_a_client_starting_on_long_polling_works_too(server, app, model):
    """socket.io-client lists `polling` among its transports: the handshake over long-polling, then the upgrade."""
    listener = Listener()
    await listener.client.connect(server.url, socketio_path=PATH, transports=["polling", "websocket"],
                                  auth={"token": ws_token(server, app["app_key"])})
    try:
        await listener.client.emit("send", {"payload": {"request_id": "rp", "session_id": "s-poll", "content": "polled"}})
        events = await listener.until_final("rp")
    finally:
        await listener.client.disconnect()
    assert events[-1][1]["payload"]["content"] == "Echo: polled"


async def test_an_unknown_event_gets_an_error(server, app):
    listener = Listener()
    await listener.connect(server, ws_token(server, app["app_key"]))
    try:
        await listener.client.emit("no_such_event", {"payload": {}})
        name, data = await listener.next()
    finally:
        await listener.client.disconnect()
    assert name == "error" and data["error"]["code"] == 460002


# -- ADP v2 at /adp/v2/chat/conn/: `42["request",{"Type":"request","Request":{...}}]` ------------

V2_URL_PATH = "/adp/v2/chat/conn/?language=zh-CN&EIO=4&transport=websocket"


async def v2_exchange(
    server: ParleyServer, token: str, request: dict[str, Any], last: set[str], stop: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """Sends one v2 request over raw Socket.IO frames; the events received until one named in `last`.
    With `stop`, asks for the answer to stop once its first text arrives."""
    async with websockets.connect(server.url.replace("http://", "ws://") + V2_URL_PATH) as ws:
        assert (await asyncio.wait_for(ws.recv(), 10)).startswith("0")
        await ws.send("40" + json.dumps({"token": token}))
        assert (await asyncio.wait_for(ws.recv(), 10)).startswith("40")
        await ws.send("42" + json.dumps(["request", {"Type": "request", "Request": request}]))
        events = []
        while True:
            frame = await asyncio.wait_for(ws.recv(), 20)
            if frame == "2":
                await ws.send("3")
                continue
            assert frame.startswith("42")
            name, data = json.loads(frame[2:])
            events.append((name, data))
            if name in last:
                return events
            if stop and name == "text.delta":
                stop = False
                record_id = next(d["Response"]["RecordId"] for n, d in events if n == "response.created")
                await ws.send("42" + json.dumps(["stop_generation", {"RecordId": record_id}]))


async def test_a_v2_turn_over_the_v2_socket(server, app, model):
    model.script("v2 socket", content="Answered over the v2 socket.", chunk_size=3)
    conversation_id = "c-" + "0123456789abcdef" * 2
    request = {"RequestId": "r-v2-socket", "ConversationId": conversation_id, "Incremental": True,
               "Contents": [{"Type": "text", "Text": "v2 socket please"}]}
    events = await v2_exchange(server, ws_token(server, app["app_key"], visitor="v-ws2"), request, {"response.completed", "error"})
    names = [name for name, _ in events]
    assert names[:2] == ["request_ack", "response.created"] and names[-2:] == ["message.done", "response.completed"]
    assert {"message.added", "content.added", "text.delta", "message.processing"} <= set(names)
    assert all(data["Type"] == name for name, data in events)
    assert "".join(d["Text"] for n, d in events if n == "text.delta") == "Answered over the v2 socket."
    acknowledged = events[0][1]["RequestAck"]
    assert acknowledged["ConversationId"] == conversation_id and acknowledged["ExtraInfo"]["RequestId"] == "r-v2-socket"
    assert events[-1][1]["Response"]["Status"] == "success"
    records = server.records("ws-bot", conversation_id)  # the token's visitor and application
    assert [r["content"] for r in records] == ["v2 socket please", "Answered over the v2 socket."]


async def test_a_bad_v2_request_over_the_socket_gets_a_v2_error(server, app):
    request = {"RequestId": "r-bad", "ConversationId": "short", "Contents": [{"Type": "text", "Text": "x"}]}
    events = await v2_exchange(server, ws_token(server, app["app_key"]), request, {"error"})
    assert events == [("error", {"Type": "error", "Error": {"Code": 400, "Message": events[0][1]["Error"]["Message"],
                                                                "RequestId": "r-bad"}})]
    assert "ConversationId" in events[0][1]["Error"]["Message"]


async def test_the_v2_socket_refuses_an_unknown_token(server):
    async with websockets.connect(server.url.replace("http://", "ws://") + V2_URL_PATH) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        await ws.send('40{"token":"nope"}')
        refused = await asyncio.wait_for(ws.recv(), 10)
    assert refused.startswith("44") and json.loads(refused[2:])["data"]["code"] == 460001


async def test_stop_generation_on_the_v2_socket_stops_the_answer(server, app, model):
    model.script("stop v2", content="y" * 400, chunk_size=1, delay=0.05)
    request = {"ConversationId": "c-" + "fedcba9876543210" * 2, "Incremental": True,
               "Contents": [{"Type": "text", "Text": "stop v2"}]}
    events = await v2_exchange(server, ws_token(server, app["app_key"]), request, {"response.completed", "error"}, stop=True)
    completed = events[-1][1]["Response"]
    assert events[-1][0] == "response.completed" and completed["Status"] == "stop"
    assert len(completed["Messages"][-1]["Contents"][0]["Text"]) < 400


# -- a client that reconnects re-subscribes to its turn: `resume` (v1 and v2) ------------------

RESUMED_TEXT = "A socket that reconnects picks its answer up again, with nothing repeated and nothing missing."


@dataclass
class SocketFace:
    """How one of the ADP sockets asks for a turn, resumes it and stops it, and what its events say."""

    name: str
    path: str
    ask: Callable[[str, str], tuple[str, dict[str, Any]]]  # (session, question) -> (event, data)
    resume: Callable[[str, Any, Any], tuple[str, dict[str, Any]]]  # (session, record id, offset) -> (event, data)
    stop: Callable[[Any], tuple[str, dict[str, Any]]]
    turn_of: Callable[[dict[str, Any]], str]  # the turn's (answer's) record id, from its first event
    is_last: Callable[[str, dict[str, Any]], bool]
    text: Callable[[list[tuple[str, dict[str, Any]]]], str]
    status: Callable[[list[tuple[str, dict[str, Any]]]], str]
    error_code: Callable[[dict[str, Any]], int]


def v1_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(d["payload"]["content"] for n, d in events if n == "reply" and not d["payload"]["is_from_self"])


def v2_socket_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    text = ""
    for name, data in events:
        if name == "text.delta" and data["MessageId"].endswith("_reply"):
            text += data["Text"]
        elif name == "text.replace" and data["MessageId"].endswith("_reply"):
            text = data["Text"]
    return text


V1_RENDERING = {"incremental": True, "streaming_throttle": 4}
V2_RENDERING = {"Incremental": True, "StreamingThrottle": 4}
SOCKET_FACES = [
    SocketFace(
        "v1", PATH,
        ask=lambda session, question: ("send", {"payload": {"session_id": session, "content": question, **V1_RENDERING}}),
        resume=lambda session, record_id, offset: (
            "resume", {"payload": {"session_id": session, "record_id": record_id, "offset": offset, **V1_RENDERING}}),
        stop=lambda record_id: ("stop_generation", {"payload": {"record_id": record_id}}),
        turn_of=lambda first: first["payload"]["trace_id"],
        is_last=lambda name, data: name == "error" or (
            name == "reply" and data["payload"]["is_final"] and not data["payload"]["is_from_self"]),
        text=v1_text,
        status=lambda events: [d["payload"]["status_summary"] for n, d in events if n == "token_stat"][-1],
        error_code=lambda data: data["error"]["code"],
    ),
    SocketFace(
        "v2", "adp/v2/chat/conn",
        ask=lambda session, question: ("request", {"Type": "request", "Request": {
            "ConversationId": session, "Contents": [{"Type": "text", "Text": question}], **V2_RENDERING}}),
        resume=lambda session, record_id, offset: ("resume", {"Type": "resume", "Request": {
            "ConversationId": session, "RecordId": record_id, "Offset": offset, **V2_RENDERING}}),
        stop=lambda record_id: ("stop_generation", {"RecordId": record_id}),
        turn_of=lambda first: first["RequestAck"]["ExtraInfo"]["TraceId"],
        is_last=lambda name, data: name in ("response.completed", "error"),
        text=v2_socket_text,
        status=lambda events: events[-1][1]["Response"]["Status"],
        error_code=lambda data: data["Error"]["Code"],
    ),
]


class Follower:
    """A python-socketio client on one of the ADP sockets that queues every event it receives."""

    def __init__(self, face: SocketFace) -> None:
        self.face = face
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.client.on("*", self._any)

    async def _any(self, name: str, data: dict[str, Any]) -> None:
        await self.events.put((name, data))

    @classmethod
    async def connect(cls, server: ParleyServer, face: SocketFace, token: str) -> Follower:
        follower = cls(face)
        await follower.client.connect(server.url, socketio_path=face.path, transports=["websocket"], auth={"token": token})
        return follower

    async def emit(self, event: tuple[str, dict[str, Any]]) -> None:
        await self.client.emit(*event)

    async def take(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        return [await asyncio.wait_for(self.events.get(), 20) for _ in range(count)]

    async def until_last(self) -> list[tuple[str, dict[str, Any]]]:
        """Events up to the turn's last (its final answer, or an error)."""
        seen = []
        while True:
            name, data = await asyncio.wait_for(self.events.get(), 20)
            seen.append((name, data))
            if self.face.is_last(name, data):
                return seen

    async def close(self) -> None:
        await self.client.disconnect()


async def resumed(server: ParleyServer, app: dict[str, Any], face: SocketFace, session: str, record_id: Any,
                  offset: Any, visitor: str = "v-resume") -> list[tuple[str, dict[str, Any]]]:
    """The events a new connection (with a new token) gets for `resume` until the turn's last."""
    follower = await Follower.connect(server, face, ws_token(server, app["app_key"], visitor))
    try:
        await follower.emit(face.resume(session, record_id, offset))
        return await follower.until_last()
    finally:
        await follower.close()


async def dropped(server: ParleyServer, app: dict[str, Any], face: SocketFace, question: str, events: int,
                  visitor: str = "v-resume") -> tuple[str, list[tuple[str, dict[str, Any]]], str]:
    """Asks `question` in a new session, reads the turn's first `events` events and drops the
    connection: (the session, the events, the answer's record id)."""
    session = uuid.uuid4().hex
    first = await Follower.connect(server, face, ws_token(server, app["app_key"], visitor))
    try:
        await first.emit(face.ask(session, question))
        got = await first.take(events)
    finally:
        await first.close()  # the connection drops mid-answer
    return session, got, face.turn_of(got[0][1])


async def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("face", SOCKET_FACES, ids=lambda f: f.name)
@pytest.mark.parametrize("when", ["while-it-runs", "after-it-ended"])
async def test_a_socket_client_that_reconnects_resumes_its_turn_from_the_next_event(server, app, model, face, when):
    model.script("resume socket", content=RESUMED_TEXT, chunk_size=2, delay=0.03)
    session, got, record_id = await dropped(server, app, face, "resume socket", 6)
    if when == "after-it-ended":  # nobody reads the rest of the turn while it ends
        await wait_for(lambda: model.stats()["completed"] == 1)
        await asyncio.sleep(0.3)
    rest = await resumed(server, app, face, session, record_id, len(got))
    whole = got + rest
    assert face.text(whole) == RESUMED_TEXT
    if when == "while-it-runs":
        assert model.stats()["completed"] == 0 or len(rest) > 5
    assert model.stats()["calls"] == 1  # no second turn
    # The turn read from the start (offset 0) is the same, event for event; from any offset, exactly the rest.
    assert await resumed(server, app, face, session, record_id, 0) == whole
    assert await resumed(server, app, face, session, int(record_id), 7) == whole[7:]


@pytest.mark.parametrize("face", SOCKET_FACES, ids=lambda f: f.name)
async def test_stop_generation_on_the_resuming_connection_stops_the_turn(server, app, model, face):
    model.script("resume then stop", content="z" * 400, chunk_size=1, delay=0.05)
    session, got, record_id = await dropped(server, app, face, "resume then stop", 3)
    second = await Follower.connect(server, face, ws_token(server, app["app_key"], "v-resume"))
    try:
        await second.emit(face.resume(session, record_id, len(got)))
        await second.take(2)  # the turn is followed on this connection
        await second.emit(face.stop(record_id))
        rest = await second.until_last()
    finally:
        await second.close()
    assert face.status(rest) == "stop"
    assert len(face.text(got + rest)) < 400
    await wait_for(lambda: model.stats()["closed_early"] >= 1)  # the upstream call was closed
    assert model.stats()["completed"] == 0


@pytest.mark.parametrize("face", SOCKET_FACES, ids=lambda f: f.name)
async def test_resume_is_refused_for_another_visitor_or_session_an_unknown_turn_or_bad_fields(server, app, model, face):
    model.script("resume refused", content=RESUMED_TEXT, chunk_size=2, delay=0.03)
    session, _, record_id = await dropped(server, app, face, "resume refused", 3, visitor="v-owner")

    async def refusal(session: str, record_id: Any, offset: Any, visitor: str = "v-owner") -> tuple[int, str]:
        events = await resumed(server, app, face, session, record_id, offset, visitor)
        assert len(events) == 1 and events[0][0] == "error", events
        error = events[0][1]
        return face.error_code(error), json.dumps(error)

    assert (await refusal(session, record_id, 3, visitor="v-thief"))[0] == 460010
    assert (await refusal(uuid.uuid4().hex, record_id, 3))[0] == 460010
    code, message = await refusal(session, "98765", 0)
    assert code == 400 and "no longer" in message
    for bad_id in ("not-a-number", "", None, -1, True):
        code, message = await refusal(session, bad_id, 0)
        assert code == 400 and "record" in message.lower(), (bad_id, message)
    code, message = await refusal(session, record_id, -1)
    assert code == 400 and "ffset" in message
    assert model.stats()["calls"] == 1


# -- a workflow's turn over both sockets, with python-socketio (issue 17) ----------------------

WORKFLOW = {
    "name": "ws-flow",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "note", "type": "message", "text": "Looking it up..."},
        {"id": "ask", "type": "llm", "name": "Lookup", "prompt": "Flow: {{sys.query}}"},
        {"id": "end", "type": "end", "reply": "{{ask.text}}"},
    ],
    "edges": [{"source": "start", "target": "note"}, {"source": "note", "target": "ask"}, {"source": "ask", "target": "end"}],
}


async def socket_turn(server: ParleyServer, token: str, path: str, event: str, data: dict[str, Any],
                      last: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """One turn with python-socketio: every event up to one named in `last` (a final reply for v1)."""
    client = socketio.AsyncClient(reconnection=False)
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @client.on("*")
    async def any_event(name: str, payload: dict[str, Any]) -> None:
        await events.put((name, payload))

    await client.connect(server.url, socketio_path=path, transports=["websocket"], auth={"token": token})
    seen = []
    try:
        await client.emit(event, data)
        while True:
            name, payload = await asyncio.wait_for(events.get(), 20)
            seen.append((name, payload))
            final_v1 = name == "reply" and payload["payload"]["is_final"] and not payload["payload"]["is_from_self"]
            if name in last or final_v1:
                return seen
    finally:
        await client.disconnect()


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_workflow_answers_over_both_sockets(server, model, version):
    app = server.create_app(f"ws-flow-{version}", workflow=WORKFLOW)
    model.script("Flow: hours", content="Nine to five.", usage={"prompt_tokens": 3, "completion_tokens": 4})
    token = ws_token(server, app["app_key"], visitor=f"v-flow-{version}")
    if version == "v1":
        events = await socket_turn(server, token, PATH, "send",
                                   {"payload": {"request_id": "r-flow", "session_id": "s-ws-flow", "content": "hours"}}, {"error"})
        final = events[-1][1]["payload"]
        assert final["content"] == "Looking it up...\n\nNine to five." and final["reply_method"] == 16
        nodes = [d["payload"]["work_flow"]["current_node"]["NodeID"] for n, d in events
                 if n == "reply" and d["payload"].get("work_flow") and not d["payload"]["is_final"]]
        assert nodes == ["start", "start", "note", "note", "ask", "ask", "end", "end"]
        thoughts = [d["payload"] for n, d in events if n == "thought"]
        assert thoughts[-1]["is_workflow"] and thoughts[-1]["workflow_name"] == "ws-flow"
        assert [p["title"] for p in thoughts[-1]["procedures"]] == ["start", "note", "Lookup", "end"]
        stat = [d["payload"] for n, d in events if n == "token_stat"][-1]
        assert [(p["title"], p["count"]) for p in stat["procedures"]] == [("工作流", 0), ("Lookup", 7)]
        assert stat["token_count"] == 7
    else:
        request = {"RequestId": "r-flow-v2", "ConversationId": "c-" + "0a1b2c3d4e5f6789" * 2, "Incremental": True,
                   "Contents": [{"Type": "text", "Text": "hours"}]}
        events = await socket_turn(server, token, "adp/v2/chat/conn", "request", {"Type": "request", "Request": request},
                                   {"response.completed", "error"})
        completed = events[-1][1]["Response"]
        assert events[-1][0] == "response.completed" and completed["ExtraInfo"]["ReplyMethod"] == 16
        assert completed["Messages"][-1]["Contents"][0]["Text"] == "Looking it up...\n\nNine to five."
        [procedure] = completed["Procedures"]
        assert [n["NodeId"] for n in procedure["Workflow"]["RunNodes"]] == ["start", "note", "ask", "end"]
        assert [(s["NodeName"], s["TotalTokens"]) for s in procedure["StatInfos"]] == [("Lookup", 7)]
