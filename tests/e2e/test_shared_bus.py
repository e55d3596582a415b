"""Three Parley processes on loopback sharing one PostgreSQL database and one Redis bus behave
as one server: limits hold across them, a publish on one is served by the others at once, an
IM message sent through one reaches a subscriber on another, a one-time token issued by one is
redeemed on another. Without its Redis, an instance refuses turns rather than admit them unchecked.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lke.v20231130 import lke_client, models
from TLSSigAPIv2 import TLSSigAPIv2

from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.redis import RedisServer
from tests.support.sse import post_chat, read_by_json_type

SECRET_ID = "AKIDmanytest"
SECRET_KEY = "many-instances-secret-key"
IM_APP = 1400000001
IM_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
ROBOT = "@RBT#cluster"
WAIT = 20  # seconds to wait for what should come at once (a failure bound, never a timed assertion)

CONFIG = f"""
[cloud_api]
[[cloud_api.credentials]]
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"

[im]
subscription_keepalive = 0.5

[[im.apps]]
sdkappid = {IM_APP}
secret_key = "{IM_KEY}"
admins = ["administrator"]

[im.apps.robots]
"{ROBOT}" = "cluster-robot"
"""


@pytest.fixture(scope="module")
def cluster(scripted_model: ScriptedModel, postgres, redis_server: RedisServer, tmp_path_factory) -> Iterator[list[ParleyServer]]:
    database, bus = postgres.new_database(), redis_server.new_url()
    servers: list[ParleyServer] = []
    try:
        for name in "abc":
            servers.append(start_parley(
                tmp_path_factory.mktemp(f"instance-{name}"), default_config(scripted_model) + CONFIG,
                ["--no-demo", "--database-url", database, "--bus-url", bus],
            ))
        yield servers
    finally:
        for server in servers:
            server.close()


def body(app: dict[str, Any], content: str, session_id: str, visitor: str = "v1") -> dict[str, Any]:
    return {"bot_app_key": app["app_key"], "visitor_biz_id": visitor, "session_id": session_id, "content": content}


def test_a_concurrency_limit_holds_across_three_instances(cluster, model):
    app = cluster[0].create_app("cluster-limit", concurrency=5, queue_timeout=60, max_streams=1000)
    model.script("share the slots", content="Served.", ttft=0.2)

    async def turns() -> list[list[tuple[str, dict[str, Any]]]]:
        limits = httpx.Limits(max_connections=120, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=180, limits=limits) as client:

            async def one(i: int) -> list[tuple[str, dict[str, Any]]]:
                server = cluster[i % 3]
                request = body(app, "share the slots", f"slots-{i}")
                async with client.stream("POST", f"{server.url}/v1/qbot/chat/sse", json=request) as response:
                    return read_by_json_type(await response.aread())

            return await asyncio.gather(*(one(i) for i in range(100)))

    results = asyncio.run(turns())
    stats = model.stats()
    finals = [events[-1] for events in results]
    assert all(name == "reply" and data["payload"]["is_final"] for name, data in finals), \
        [f for f in finals if f[0] != "reply"][:3]
    assert stats["calls"] == 100
    assert stats["max_concurrent"] <= 5, stats["max_concurrent"]


def test_a_publish_on_one_instance_is_served_by_another_on_the_next_turn(cluster, model):
    a, b = cluster[0], cluster[1]
    app = a.create_app("cluster-publish", system_role="Marker role one.")
    model.script("which role", content="Noted.")

    def role_seen(server: ParleyServer, session: str) -> str:
        stream = post_chat(server.url, body(app, "which role", session))
        assert stream.names()[-1] == "reply", stream.events[-1]
        return model.stats()["requests"][-1]["messages"][0]["content"]

    assert role_seen(b, "publish-1") == "Marker role one."  # b now keeps the release in its cache
    a.create_app("cluster-publish", system_role="Marker role two.")  # replaced and published on a
    assert role_seen(b, "publish-2") == "Marker role two."
    assert role_seen(cluster[2], "publish-3") == "Marker role two."


def usersig(identifier: str) -> str:
    return TLSSigAPIv2(IM_APP, IM_KEY).gen_sig(identifier, 3600)


def im_call(server: ParleyServer, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    params = {"sdkappid": IM_APP, "identifier": "administrator", "usersig": usersig("administrator"),
              "random": 1, "contenttype": "json"}
    data = httpx.post(f"{server.url}/v4/{path}", params=params, json=payload, timeout=30).json()
    assert data["ErrorCode"] == 0, data
    return data


class Subscriber:
    """A user's SSE subscription, read line by line in a thread: (id, event, data) triples."""

    def __init__(self, server: ParleyServer, user: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        params = {"sdkappid": IM_APP, "identifier": user, "usersig": usersig(user)}
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        request = self._client.build_request("GET", f"{server.url}/im/v1/subscribe", params=params, headers=headers)
        self._response = self._client.send(request, stream=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event_id, event = "", ""
        try:
            for line in self._response.iter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    self.events.put((event_id, event, json.loads(line[6:])))
        except httpx.HTTPError:
            pass

    def next(self, *names: str) -> tuple[str, str, dict[str, Any]]:
        while True:
            item = self.events.get(timeout=WAIT)
            if not names or item[1] in names:
                return item

    def close(self) -> None:
        self._response.close()
        self._client.close()


def chatbot(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(message["MsgBody"][0]["MsgContent"]["Data"])


def test_an_im_message_sent_through_one_instance_reaches_a_subscriber_on_another(cluster):
    a, b, c = cluster
    im_call(a, "im_open_login_svc/multiaccount_import", {"AccountList": [{"UserID": u} for u in ("alice", "bob")]})
    subscriber = Subscriber(b, "bob")
    try:
        _, event, ready = subscriber.next()
        assert event == "Ready" and ready["ErrorCode"] == 0
        text = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello from a"}}]
        sent = im_call(a, "openim/sendmsg", {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 11, "MsgBody": text})
        first_id, event, data = subscriber.next("MessageReceived")
        assert data["Message"]["MsgKey"] == sent["MsgKey"] and data["Message"]["MsgBody"] == text
        # The same message again within the dedup window, through another instance: one message.
        again = im_call(c, "openim/sendmsg", {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 11, "MsgBody": text})
        assert again["MsgKey"] == sent["MsgKey"]
    finally:
        subscriber.close()
    # What bob missed while away comes on reconnection to a third instance, once.
    second = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "while you were away"}}]
    im_call(a, "openim/sendmsg", {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 12, "MsgBody": second})
    back = Subscriber(c, "bob", last_event_id=first_id)
    try:
        _, event, ready = back.next()
        assert event == "Ready" and ready["Resumed"] is True
        _, event, data = back.next("MessageReceived", "MessageModified")
        assert data["Message"]["MsgBody"] == second
        third = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "live again"}}]
        im_call(b, "openim/sendmsg", {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 13, "MsgBody": third})
        _, event, data = back.next("MessageReceived", "MessageModified")
        assert data["Message"]["MsgBody"] == third  # nothing repeated in between
    finally:
        back.close()


def test_a_robots_stream_grown_through_two_instances_keeps_every_chunk(cluster):
    a, b, c = cluster
    im_call(a, "im_open_login_svc/multiaccount_import", {"AccountList": [{"UserID": "carol"}]})
    im_call(a, "openim_robot_http_svc/create_robot", {"UserID": "@RBT#streamer"})
    subscriber = Subscriber(c, "carol")
    try:
        subscriber.next("Ready")
        send = lambda server, **fields: im_call(server, "openim_robot_http_svc/send_stream_msg",  # noqa: E731
                                                {"From_Account": "@RBT#streamer", "To_Account": "carol", **fields})
        key = send(a, Chunk="one ")["MsgKey"]
        for n, server in enumerate((b, a, b, a)):
            send(server, Chunk=f"{n} ", MsgKey=key)
        send(b, Chunk="end", MsgKey=key, Finish=1)
        seen = []
        while not seen or not seen[-1]["isFinished"]:
            _, _, data = subscriber.next("MessageReceived", "MessageModified")
            seen.append(chatbot(data["Message"]))
        assert seen[-1]["chunks"] == ["one ", "0 ", "1 ", "2 ", "3 ", "end"]
    finally:
        subscriber.close()


def test_a_users_interrupt_through_another_instance_stops_the_robots_turn(cluster, model):
    a, b, _ = cluster
    a.create_app("cluster-robot")
    im_call(a, "im_open_login_svc/multiaccount_import", {"AccountList": [{"UserID": "dave"}]})
    im_call(a, "openim_robot_http_svc/create_robot", {"UserID": ROBOT})
    model.script("talk slowly", content="word " * 200, chunk_size=5, delay=0.1)
    subscriber = Subscriber(b, "dave")
    try:
        subscriber.next("Ready")
        question = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "talk slowly"}}]
        user_params = {"sdkappid": IM_APP, "identifier": "dave", "usersig": usersig("dave")}
        sent = httpx.post(f"{a.url}/im/v1/sendmsg", params=user_params, timeout=30,
                          json={"To_Account": ROBOT, "MsgRandom": 21, "MsgBody": question}).json()
        assert sent["ErrorCode"] == 0, sent
        while True:  # the answer streams (its turn runs on a, which received the question)
            _, _, data = subscriber.next("MessageReceived", "MessageModified")
            if data["Message"]["From_Account"] == ROBOT and chatbot(data["Message"]).get("chunks"):
                answer_key = data["Message"]["MsgKey"]
                break
        interrupt = [{"MsgType": "TIMCustomElem", "MsgContent": {
            "Data": json.dumps({"chatbotPlugin": 2, "src": 22, "msgKey": answer_key}), "Desc": "", "Ext": ""}}]
        stopped = httpx.post(f"{b.url}/im/v1/sendmsg", params=user_params, timeout=30,
                             json={"To_Account": ROBOT, "MsgRandom": 22, "MsgBody": interrupt}).json()
        assert stopped["ErrorCode"] == 0, stopped
        deadline = time.monotonic() + WAIT
        while model.stats()["concurrent"] and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = model.stats()
        assert stats["concurrent"] == 0 and stats["closed_early"] == 1 and stats["completed"] == 0
    finally:
        subscriber.close()


def ws_token(server: ParleyServer, app_key: str) -> str:
    """A token from GetWsToken, fetched with the official SDK."""
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.url.removeprefix("http://")))
    client = lke_client.LkeClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
    request = models.GetWsTokenRequest()
    request.from_json_string(json.dumps({"Type": 5, "BotAppKey": app_key, "VisitorBizId": "v-ws"}))
    return client.GetWsToken(request).Token


def test_a_ws_token_issued_on_one_instance_is_redeemed_once_on_another(cluster):
    a, b, c = cluster
    app = a.create_app("cluster-ws")
    token = ws_token(a, app["app_key"])

    async def connect(server: ParleyServer) -> None:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, socketio_path="v1/qbot/chat/conn", transports=["websocket"], auth={"token": token})
        await client.disconnect()

    asyncio.run(connect(b))
    with pytest.raises(socketio.exceptions.ConnectionError):
        asyncio.run(connect(c))  # used once already, on another instance


async def refused_connection(server: ParleyServer, token: str) -> list[Any]:
    """What a Socket.IO client's connect_error handler receives when the connection is refused."""
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", lambda data: refusals.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, socketio_path="v1/qbot/chat/conn", transports=["websocket"], auth={"token": token})
    return refusals


def test_without_its_redis_an_instance_refuses_turns_in_the_protocols_shape(scripted_model, postgres, model, tmp_path):
    bus = RedisServer()
    server = None
    try:
        server = start_parley(tmp_path, default_config(scripted_model) + CONFIG,
                              ["--no-demo", "--database-url", postgres.new_database(), "--bus-url", bus.new_url()])
        app = server.create_app("cluster-no-redis")
        assert post_chat(server.url, body(app, "hello", "before")).names()[-1] == "reply"
        calls = model.stats()["calls"]
        token = ws_token(server, app["app_key"])
        bus.close()  # Redis goes away
        refused = post_chat(server.url, body(app, "hello", "after"))
        assert refused.status == 200 and refused.names() == ["error"]
        error = refused.of("error")[0]["error"]
        assert error["code"] == 460011 and "try again" in error["message"]
        assert model.stats()["calls"] == calls  # not admitted unchecked
        assert server.records("cluster-no-redis", "after") == []
        (refusal,) = asyncio.run(refused_connection(server, token))  # a token issued before: it cannot be checked
        assert refusal["data"]["code"] == 460011 and "try again" in refusal["data"]["message"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        if server is not None:
            server.close()
        bus.close()
