"""The Tencent Cloud Chat (IM) face end to end: a real Parley process over real HTTP and WebSocket.

UserSigs come from the official `tls-sig-api-v2` package; subscribers read SSE with httpx
and WebSocket with `websockets`; the operator's bot receiving callbacks is a small HTTP
server of the test's own; the model is the scripted one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import random
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from TLSSigAPIv2 import TLSSigAPIv2
from websockets.sync.client import connect as ws_connect

from tests.support.processes import ROOT, ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_chat

APP = 1400000001
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
DISABLED_APP = 1400000002
LIMITED_APP = 1400000003
LIMITED_KEY = "a" * 64
CALLBACK_TOKEN = "xxxxyyyy"
ROBOT = "@RBT#parley"
ORPHAN_ROBOT = "@RBT#orphan"
STRICT_ROBOT = "@RBT#strict"
FLOW_ROBOT = "@RBT#flow"
WAIT = 20  # seconds to wait for something that should come at once (a failure, never a timed assertion)


class CallbackReceiver:
    """The operator's own bot: records each callback IM posts to it."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[dict[str, list[str]], dict[str, Any]]] = queue.Queue()
        self.seen: list[tuple[dict[str, list[str]], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                receiver.received.put((parse_qs(urlparse(self.path).query), body))
                answer = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/im-callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_for(self, to_account: str, msg_key: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """The callback for message `msg_key` to `to_account` (others are kept for later)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for item in self.seen:
                if item[1].get("To_Account") == to_account and item[1].get("MsgKey") == msg_key:
                    return item
            try:
                self.seen.append(self.received.get(timeout=0.2))
            except queue.Empty:
                pass
        raise AssertionError(f"no callback for {msg_key} to {to_account}")

    def close(self) -> None:
        self.server.shutdown()


IM_CONFIG = """
[im]
subscription_keepalive = 0.5

[[im.apps]]
sdkappid = {app}
secret_key = "{key}"
admins = ["administrator"]
callback_url = "{callback}"
callback_token = "{token}"

[im.apps.robots]
"{robot}" = "im-bot"
"{orphan}" = "no-such-application"
"{strict}" = "im-strict"
"{flow}" = "im-flow"

[[im.apps]]
sdkappid = {disabled}
secret_key = "{key}"
disabled = true

[[im.apps]]
sdkappid = {limited}
secret_key = "{limited_key}"
max_robots = 20

[im.apps.rate_limits]
"openim_robot_http_svc/get_all_robots" = 1
"""


DESK = {
    "name": "desk",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "note", "type": "message", "text": "Welcome to the desk."},
        {"id": "pick", "type": "option_cards", "text": "Hours or address?", "options": ["Hours", "Address"]},
        {"id": "ask", "type": "llm", "prompt": "Desk: {{sys.query}}"},
        {"id": "hours", "type": "end", "reply": "{{ask.text}}"},
        {"id": "address", "type": "end", "reply": "Main Street 1."},
    ],
    "edges": [{"source": "start", "target": "note"}, {"source": "note", "target": "pick"},
              {"source": "pick", "target": "ask", "port": "Hours"}, {"source": "ask", "target": "hours"},
              {"source": "pick", "target": "address", "port": "Address"}],
}


@pytest.fixture(scope="module")
def callbacks() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, callbacks: CallbackReceiver, database_args: list[str], tmp_path_factory) -> Iterator[ParleyServer]:
    extra = IM_CONFIG.format(
        app=APP, key=KEY, callback=callbacks.url, token=CALLBACK_TOKEN, robot=ROBOT, orphan=ORPHAN_ROBOT, strict=STRICT_ROBOT, flow=FLOW_ROBOT,
        disabled=DISABLED_APP, limited=LIMITED_APP, limited_key=LIMITED_KEY,
    )
    parley = start_parley(tmp_path_factory.mktemp("im"), default_config(scripted_model) + extra, database_args)
    parley.create_app("im-bot", system_role="You answer IM users.")
    parley.create_app("im-strict", sensitive_words=["forbidden"], refusal_reply="I can't say that.")
    parley.create_app("im-flow", workflow=DESK)
    yield parley
    parley.close()


def usersig(identifier: str, sdkappid: int = APP, key: str = KEY, expire: int = 3600) -> str:
    return TLSSigAPIv2(sdkappid, key).gen_sig(identifier, expire)


class IM:
    """An IM server SDK's view: admin REST calls built as the SDKs build them."""

    def __init__(self, base: str, sdkappid: int = APP, key: str = KEY, identifier: str = "administrator") -> None:
        self.base, self.sdkappid, self.key, self.identifier = base, sdkappid, key, identifier
        self.sig = usersig(identifier, sdkappid, key)

    def params(self, **overrides: Any) -> dict[str, Any]:
        params = {"sdkappid": self.sdkappid, "identifier": self.identifier, "usersig": self.sig,
                  "random": random.randint(0, 2**32 - 1), "contenttype": "json", **overrides}
        return {k: v for k, v in params.items() if v is not None}

    def raw(self, path: str, content: bytes, method: str = "POST", **overrides: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}/v4/{path}", params=self.params(**overrides), content=content, timeout=30)

    def call(self, path: str, body: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
        response = self.raw(path, json.dumps(body if body is not None else {}).encode(), **overrides)
        assert response.status_code == 200, response.text
        return response.json()

    def ok(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = self.call(path, body)
        assert (data["ActionStatus"], data["ErrorCode"], data["ErrorInfo"]) == ("OK", 0, ""), data
        return data


def assert_fails(data: dict[str, Any], code: int) -> None:
    assert data["ActionStatus"] == "FAIL" and data["ErrorCode"] == code, data
    assert isinstance(data["ErrorInfo"], str) and data["ErrorInfo"]


@pytest.fixture(scope="module")
def im(server: ParleyServer) -> IM:
    client = IM(server.url)
    client.ok("im_open_login_svc/multiaccount_import", {"AccountList": [{"UserID": u} for u in
              ("user01", "user02", "user03", "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")]})
    client.ok("openim_robot_http_svc/create_robot", {"UserID": ROBOT, "Nick": "Parley"})
    client.ok("openim_robot_http_svc/create_robot", {"UserID": ORPHAN_ROBOT})
    client.ok("openim_robot_http_svc/create_robot", {"UserID": STRICT_ROBOT})
    client.ok("openim_robot_http_svc/create_robot", {"UserID": FLOW_ROBOT})
    client.ok("openim_robot_http_svc/create_robot", {"UserID": "@RBT#my_bot"})
    return client


def text(content: str) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": content}}]


def chatbot_data(message: dict[str, Any]) -> dict[str, Any]:
    (element,) = message["MsgBody"]
    assert element["MsgType"] == "TIMCustomElem"
    return json.loads(element["MsgContent"]["Data"])


def history(im: IM, operator: str, peer: str, **extra: Any) -> dict[str, Any]:
    return im.ok("openim/admin_getroammsg", {"Operator_Account": operator, "Peer_Account": peer, "MaxCnt": 100,
                                             "MinTime": 0, "MaxTime": int(time.time()) + 60, **extra})


# subscribers


class SSESubscriber:
    """A user's client on the SSE subscription, read line by line in a thread."""

    def __init__(self, base: str, user: str, sig: str | None = None, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.ids: list[str] = []  # each event's id, in order
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        params = {"sdkappid": APP, "identifier": user, "usersig": sig or usersig(user)}
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        request = self._client.build_request("GET", f"{base}/im/v1/subscribe", params=params, headers=headers)
        self._response = self._client.send(request, stream=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, event_id = None, ""
        try:
            for line in self._response.iter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    self.ids.append(event_id)
                    self.events.put((event or "", json.loads(line[6:])))
                    event_id = ""
        except httpx.HTTPError:
            pass

    def next(self, *names: str) -> tuple[str, dict[str, Any]]:
        while True:
            event, data = self.events.get(timeout=WAIT)
            if not names or event in names:
                return event, data

    def close(self) -> None:
        self._response.close()
        self._client.close()


class WSSubscriber:
    def __init__(self, base: str, user: str) -> None:
        url = base.replace("http://", "ws://") + f"/im/v1/ws?sdkappid={APP}&identifier={user}&usersig={usersig(user)}"
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(ws_connect(url, open_timeout=WAIT))
        self.pending: list[dict[str, Any]] = []

    def next(self, *events: str, where: Any = None) -> dict[str, Any]:
        for frame in list(self.pending):
            if (not events or frame["Event"] in events) and (where is None or where(frame)):
                self.pending.remove(frame)
                return frame
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            frame = json.loads(self.socket.recv(timeout=WAIT))
            if (not events or frame["Event"] in events) and (where is None or where(frame)):
                return frame
            self.pending.append(frame)
        raise AssertionError(f"no {events} frame")

    def send(self, frame: dict[str, Any]) -> dict[str, Any]:
        req_id = str(random.random())
        self.socket.send(json.dumps({**frame, "ReqId": req_id}))
        return self.next("Response", where=lambda f: f.get("ReqId") == req_id)

    def close(self) -> None:
        self._stack.close()


# REST conventions


def test_every_failure_is_http_200_with_its_documented_code(server, im):
    assert_fails(im.call("im_open_login_svc/no_such_command"), 60009)
    assert_fails(im.call("no_such_service/account_import"), 60009)
    assert_fails(im.call("im_open_login_svc/account_check", sdkappid=None), 60012)
    assert_fails(im.call("im_open_login_svc/account_check", sdkappid="abc"), 60006)
    assert_fails(im.call("im_open_login_svc/account_check", sdkappid=1400009999), 70020)
    assert_fails(im.call("im_open_login_svc/account_check", sdkappid=DISABLED_APP), 60016)
    get = im.raw("openim_robot_http_svc/get_all_robots", b"{}", method="GET")
    assert get.status_code == 200
    assert_fails(get.json(), 60002)


def test_bad_json_is_60003_or_90001_for_openim(im):
    for path, code in (("im_open_login_svc/account_import", 60003), ("openim/sendmsg", 90001),
                       ("openim_robot_http_svc/create_robot", 60003)):
        response = im.raw(path, b'{"UserID": ')
        assert response.status_code == 200
        assert_fails(response.json(), code)
        assert_fails(im.raw(path, b"[1, 2]").json(), code)


def test_only_admins_may_call_and_each_family_says_so_its_way(server):
    user = IM(server.url, identifier="user01")
    assert_fails(user.call("im_open_login_svc/account_import", {"UserID": "x"}), 70403)
    assert_fails(user.call("openim/sendmsg", {"To_Account": "user02", "MsgRandom": 1, "MsgBody": text("hi")}), 90009)
    assert_fails(user.call("openim_robot_http_svc/get_all_robots"), 10008)


def test_forged_expired_and_wrong_app_signatures_are_refused(server, im):
    path = "openim_robot_http_svc/get_all_robots"
    expired = TLSSigAPIv2(APP, KEY).gen_sig("administrator", -10)
    assert_fails(im.call(path, usersig=expired), 70001)
    other_key = TLSSigAPIv2(APP, "f" * 64).gen_sig("administrator")
    assert_fails(im.call(path, usersig=other_key), 70009)
    other_app = TLSSigAPIv2(LIMITED_APP, LIMITED_KEY).gen_sig("administrator")
    assert_fails(im.call(path, usersig=other_app), 70014)
    someone_else = TLSSigAPIv2(APP, KEY).gen_sig("user01")
    assert_fails(im.call(path, usersig=someone_else), 70013)
    assert_fails(im.call(path, usersig=im.sig[:30]), 70003)
    assert_fails(im.call(path, usersig=None), 60004)
    # A forged claim: a genuine signature's validity stretched without the key.
    raw = zlib.decompress(base64.b64decode(im.sig.replace("*", "+").replace("-", "/").replace("_", "=")))
    forged_doc = json.loads(raw)
    forged_doc["TLS.expire"] += 10**6
    forged = base64.b64encode(zlib.compress(json.dumps(forged_doc).encode())).decode()
    assert_fails(im.call(path, usersig=forged.replace("+", "*").replace("/", "-").replace("=", "_")), 70009)
    assert im.ok(path)["Robot_Account"]


def test_the_rate_limit_is_enforced(server):
    limited = IM(server.url, sdkappid=LIMITED_APP, key=LIMITED_KEY)
    answers = [limited.call("openim_robot_http_svc/get_all_robots") for _ in range(12)]
    codes = [a["ErrorCode"] for a in answers]
    assert codes[0] == 0
    assert 60007 in codes, codes
    assert set(codes) <= {0, 60007}


def test_the_operator_command_makes_usable_usersigs(server, im):
    result = subprocess.run(
        [sys.executable, "-m", "parley", "im", "usersig", "--sdkappid", str(APP), "--config", str(server.config_file),
         "--data-dir", str(server.data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    sig = result.stdout.strip()
    claims = json.loads(zlib.decompress(base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))))
    assert (claims["TLS.identifier"], claims["TLS.sdkappid"], claims["TLS.expire"]) == ("administrator", APP, 180 * 86400)
    assert im.call("openim_robot_http_svc/get_all_robots", usersig=sig)["ErrorCode"] == 0


# accounts


def test_accounts_are_imported_and_checked(im):
    im.ok("im_open_login_svc/account_import", {"UserID": "frank", "Nick": "Frank", "FaceUrl": "http://x/f.png"})
    im.ok("im_open_login_svc/account_import", {"UserID": "frank", "Nick": "Frank again"})
    result = im.ok("im_open_login_svc/multiaccount_import", {"Accounts": ["grace", "heidi", "x" * 40, 7]})
    assert result["FailAccounts"] == ["x" * 40, "7"]
    check = im.ok("im_open_login_svc/account_check", {"CheckItem": [{"UserID": u} for u in ("frank", "grace", "nobody")]})
    assert [(i["UserID"], i["AccountStatus"], i["ResultCode"]) for i in check["ResultItem"]] == [
        ("frank", "Imported", 0), ("grace", "Imported", 0), ("nobody", "NotImported", 0)]
    assert_fails(im.call("im_open_login_svc/account_import", {"UserID": "y" * 33}), 70402)
    assert_fails(im.call("im_open_login_svc/account_import", {}), 70402)
    assert_fails(im.call("im_open_login_svc/account_import", {"UserID": "ivan", "Nick": "n" * 501}), 40601)
    assert_fails(im.call("im_open_login_svc/account_import", {"UserID": "@RBT#sneaky"}), 70402)


# robots


def test_robots_are_created_listed_and_deleted(im):
    before = im.ok("openim_robot_http_svc/get_all_robots")["Robot_Account"]
    assert ROBOT in before and "@RBT#my_bot" in before
    im.ok("openim_robot_http_svc/create_robot", {"UserID": "@RBT#temp", "Nick": "Temp", "SelfSignature": "hello"})
    im.ok("openim_robot_http_svc/create_robot", {"UserID": "@RBT#temp"})
    robots = im.ok("openim_robot_http_svc/get_all_robots")["Robot_Account"]
    assert robots.count("@RBT#temp") == 1
    im.ok("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#temp"})
    assert "@RBT#temp" not in im.ok("openim_robot_http_svc/get_all_robots")["Robot_Account"]
    assert_fails(im.call("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#temp"}), 10004)
    assert_fails(im.call("openim_robot_http_svc/create_robot", {"UserID": "not_a_robot"}), 10004)
    assert_fails(im.call("openim_robot_http_svc/create_robot", {"UserID": "@RBT#" + "r" * 28}), 10004)
    assert_fails(im.call("openim_robot_http_svc/create_robot", {}), 10004)
    assert_fails(im.call("openim_robot_http_svc/create_robot", {"UserID": "@RBT#sig", "SelfSignature": "s" * 501}), 10004)


def test_an_application_has_at_most_twenty_robots(server):
    limited = IM(server.url, sdkappid=LIMITED_APP, key=LIMITED_KEY)
    for n in range(20):
        limited.ok("openim_robot_http_svc/create_robot", {"UserID": f"@RBT#r{n}"})
    assert_fails(limited.call("openim_robot_http_svc/create_robot", {"UserID": "@RBT#r20"}), 10008)
    limited.ok("openim_robot_http_svc/create_robot", {"UserID": "@RBT#r3"})  # the same robot again is fine
    limited.ok("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#r0"})
    limited.ok("openim_robot_http_svc/create_robot", {"UserID": "@RBT#r20"})


# streaming messages


def test_a_streamed_message_is_seen_live_over_sse_and_in_history(server, im):
    subscriber = SSESubscriber(server.url, "user01")
    try:
        event, ready = subscriber.next()
        assert event == "Ready" and ready["ErrorCode"] == 0
        first = im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user01", "Chunk": "hello, "})
        key = first["MsgKey"]
        seq, rnd, ts = key.split("_")
        assert seq.isdigit() and rnd.isdigit() and abs(int(ts) - time.time()) < 600

        event, data = subscriber.next("MessageReceived", "MessageModified")
        assert event == "MessageReceived"
        message = data["Message"]
        assert (message["From_Account"], message["To_Account"], message["MsgKey"]) == ("@RBT#my_bot", "user01", key)
        assert chatbot_data(message) == {"chatbotPlugin": 2, "src": 2, "chunks": ["hello, "], "isFinished": 0}

        again = im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user01", "Chunk": "wor", "MsgKey": key})
        assert again["MsgKey"] == key
        event, data = subscriber.next("MessageReceived", "MessageModified")
        assert event == "MessageModified"
        assert chatbot_data(data["Message"]) == {"chatbotPlugin": 2, "src": 2, "chunks": ["hello, ", "wor"], "isFinished": 0}

        im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user01", "Chunk": "ld", "MsgKey": key, "Finish": 1})
        event, data = subscriber.next("MessageReceived", "MessageModified")
        assert chatbot_data(data["Message"]) == {"chatbotPlugin": 2, "src": 2, "chunks": ["hello, ", "wor", "ld"], "isFinished": 1}
    finally:
        subscriber.close()

    late = im.call("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user01", "Chunk": "!", "MsgKey": key})
    assert_fails(late, 10004)
    found = [m for m in history(im, "user01", "@RBT#my_bot")["MsgList"] if m["MsgKey"] == key]
    assert len(found) == 1
    assert chatbot_data(found[0])["chunks"] == ["hello, ", "wor", "ld"] and chatbot_data(found[0])["isFinished"] == 1
    robot_view = [m for m in history(im, "@RBT#my_bot", "user01")["MsgList"] if m["MsgKey"] == key]
    assert chatbot_data(robot_view[0])["isFinished"] == 1


def test_a_subscriber_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice(server, im):
    send = lambda n: im.ok("openim/sendmsg", {"From_Account": "grace", "To_Account": "ivan", "MsgRandom": 500 + n,  # noqa: E731
                                              "MsgBody": text(f"note {n}")})
    im.ok("im_open_login_svc/account_import", {"UserID": "ivan"})
    first = SSESubscriber(server.url, "ivan")
    try:
        assert first.next()[0] == "Ready" and first.ids[0]  # a place to resume from, even before any message
        send(1)
        _, data = first.next("MessageReceived")
        assert data["Message"]["MsgBody"] == text("note 1")
        last_id = first.ids[-1]
    finally:
        first.close()
    send(2)
    key = send(3)["MsgKey"]
    im.ok("openim/modify_c2c_msg", {"From_Account": "grace", "To_Account": "ivan", "MsgKey": key, "MsgBody": text("note 3, edited")})
    again = SSESubscriber(server.url, "ivan", last_event_id=last_id)
    try:
        event, ready = again.next()
        assert event == "Ready" and ready["Resumed"] is True
        missed = [again.next("MessageReceived", "MessageModified") for _ in range(3)]
        assert [(e, d["Message"]["MsgBody"]) for e, d in missed] == [
            ("MessageReceived", text("note 2")), ("MessageReceived", text("note 3")), ("MessageModified", text("note 3, edited")),
        ]
        send(4)
        assert again.next("MessageReceived", "MessageModified")[1]["Message"]["MsgBody"] == text("note 4")
        assert again.ids[0] == last_id and len(set(again.ids)) == len(again.ids)  # Ready keeps the place resumed from
    finally:
        again.close()
    lost = SSESubscriber(server.url, "ivan", last_event_id="not-an-id-of-ours")
    try:
        event, ready = lost.next()
        assert event == "Ready" and ready["Resumed"] is False  # it starts from now and reads history
        send(5)
        assert lost.next("MessageReceived")[1]["Message"]["MsgBody"] == text("note 5")
    finally:
        lost.close()


def test_send_stream_msg_refuses_what_the_seed_refuses(im):
    send = lambda body: im.call("openim_robot_http_svc/send_stream_msg", body)  # noqa: E731
    base = {"From_Account": "@RBT#my_bot", "To_Account": "user02", "Chunk": "a"}
    assert_fails(send({k: v for k, v in base.items() if k != "Chunk"}), 10004)
    assert_fails(send({k: v for k, v in base.items() if k != "To_Account"}), 10004)
    assert_fails(send({**base, "From_Account": "user03"}), 10004)  # not a robot
    assert_fails(send({**base, "To_Account": "nobody-here"}), 10004)
    assert_fails(send({**base, "MsgKey": "1_2_3"}), 10004)
    assert_fails(send({**base, "Finish": "yes"}), 10004)
    key = im.ok("openim_robot_http_svc/send_stream_msg", base)["MsgKey"]
    assert_fails(send({**base, "To_Account": "user03", "MsgKey": key}), 10004)  # another conversation's stream
    assert_fails(send({**base, "From_Account": ROBOT, "MsgKey": key}), 10004)  # another robot's stream
    im.ok("openim_robot_http_svc/send_stream_msg", {**base, "MsgKey": key, "Chunk": "b", "Finish": 1})


def test_a_streamed_message_is_seen_live_over_websocket(server, im):
    subscriber = WSSubscriber(server.url, "user02")
    try:
        assert subscriber.next("Ready")["ErrorCode"] == 0
        key = im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user02", "Chunk": "one "})["MsgKey"]
        frame = subscriber.next("MessageReceived")
        assert frame["Message"]["MsgKey"] == key and chatbot_data(frame["Message"])["chunks"] == ["one "]
        for n, chunk in enumerate(["two ", "three"], start=2):
            im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user02",
                                                            "Chunk": chunk, "MsgKey": key, "Finish": int(n == 3)})
            frame = subscriber.next("MessageModified")
            assert len(chatbot_data(frame["Message"])["chunks"]) == n
        assert chatbot_data(frame["Message"]) == {"chatbotPlugin": 2, "src": 2, "chunks": ["one ", "two ", "three"], "isFinished": 1}
    finally:
        subscriber.close()


def test_subscriptions_need_the_users_own_usersig(server):
    wrong = httpx.get(f"{server.url}/im/v1/subscribe", params={"sdkappid": APP, "identifier": "user01", "usersig": usersig("user02")})
    assert wrong.status_code == 200 and wrong.headers["content-type"].startswith("application/json")
    assert_fails(wrong.json(), 70013)
    nobody = httpx.get(f"{server.url}/im/v1/subscribe", params={"sdkappid": APP, "identifier": "nobody", "usersig": usersig("nobody")})
    assert_fails(nobody.json(), 70107)
    url = server.url.replace("http://", "ws://") + f"/im/v1/ws?sdkappid={APP}&identifier=user01&usersig={usersig('user01', expire=-5)}"
    with ws_connect(url, open_timeout=WAIT) as socket:
        frame = json.loads(socket.recv(timeout=WAIT))
        assert frame["Event"] == "Error" and frame["ErrorCode"] == 70001


# C2C messages


def test_sendmsg_delivers_deduplicates_and_honours_sync_other_machine(server, im):
    receiver = WSSubscriber(server.url, "bob")
    sender = WSSubscriber(server.url, "alice")
    try:
        receiver.next("Ready")
        sender.next("Ready")
        body = {"From_Account": "alice", "To_Account": "bob", "MsgSeq": 11, "MsgRandom": 4242, "MsgBody": text("hi bob")}
        first = im.ok("openim/sendmsg", body)
        assert set(first) >= {"MsgTime", "MsgKey", "MsgId"} and first["MsgKey"] == f"11_4242_{first['MsgTime']}"
        got = receiver.next("MessageReceived")["Message"]
        assert (got["From_Account"], got["MsgBody"], got["MsgKey"]) == ("alice", text("hi bob"), first["MsgKey"])
        assert sender.next("MessageReceived")["Message"]["MsgKey"] == first["MsgKey"]  # synced to the sender
        duplicate = im.ok("openim/sendmsg", body)
        assert duplicate["MsgKey"] == first["MsgKey"]

        quiet = im.ok("openim/sendmsg", {**body, "MsgSeq": 12, "MsgBody": text("not in my history"), "SyncOtherMachine": 2})
        assert receiver.next("MessageReceived")["Message"]["MsgKey"] == quiet["MsgKey"]
    finally:
        receiver.close()
        sender.close()
    bob_view = [m["MsgKey"] for m in history(im, "bob", "alice")["MsgList"]]
    alice_view = [m["MsgKey"] for m in history(im, "alice", "bob")["MsgList"]]
    assert bob_view == [first["MsgKey"], quiet["MsgKey"]]
    assert alice_view == [first["MsgKey"]]


def test_sendmsg_checks_its_fields(im):
    base = {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}
    assert_fails(im.call("openim/sendmsg", {k: v for k, v in base.items() if k != "MsgRandom"}), 90005)
    assert_fails(im.call("openim/sendmsg", {**base, "MsgRandom": "1"}), 90005)
    assert_fails(im.call("openim/sendmsg", {**base, "MsgRandom": 2**32}), 90005)
    assert_fails(im.call("openim/sendmsg", {k: v for k, v in base.items() if k != "To_Account"}), 90003)
    assert_fails(im.call("openim/sendmsg", {**base, "To_Account": "nobody-here"}), 90012)
    assert_fails(im.call("openim/sendmsg", {**base, "From_Account": "nobody-here"}), 90008)
    assert_fails(im.call("openim/sendmsg", {**base, "MsgBody": []}), 90002)
    assert_fails(im.call("openim/sendmsg", {**base, "MsgBody": [{"MsgType": "TIMBogus", "MsgContent": {}}]}), 90002)
    assert_fails(im.call("openim/sendmsg", {**base, "MsgBody": text("z" * 13000)}), 93000)
    assert_fails(im.call("openim/sendmsg", {**base, "MsgLifeTime": 8 * 86400}), 90026)
    # From_Account left out: the admin sends
    sent = im.ok("openim/sendmsg", {"To_Account": "carol", "MsgRandom": 77, "MsgBody": text("from the admin")})
    assert [m["From_Account"] for m in history(im, "carol", "administrator")["MsgList"] if m["MsgKey"] == sent["MsgKey"]] == ["administrator"]


def test_admin_getroammsg_pages_back_with_last_msg_key(im):
    now = int(time.time())
    keys = []
    for n in range(5):
        sent = im.ok("openim/sendmsg", {"From_Account": "dave" if n % 2 else "erin", "To_Account": "erin" if n % 2 else "dave",
                                        "MsgSeq": 100 + n, "MsgRandom": 500 + n, "MsgTimeStamp": now - 50 + n, "MsgBody": text(f"m{n}")})
        keys.append(sent["MsgKey"])
    query = {"Operator_Account": "dave", "Peer_Account": "erin", "MaxCnt": 2, "MinTime": now - 100, "MaxTime": now}
    page = im.ok("openim/admin_getroammsg", query)
    assert (page["Complete"], page["MsgCnt"]) == (0, 2)
    assert [m["MsgKey"] for m in page["MsgList"]] == keys[3:5]
    assert page["LastMsgKey"] == keys[3] and page["LastMsgTime"] == now - 47
    page2 = im.ok("openim/admin_getroammsg", {**query, "MaxTime": page["LastMsgTime"], "LastMsgKey": page["LastMsgKey"]})
    assert [m["MsgKey"] for m in page2["MsgList"]] == keys[1:3] and page2["Complete"] == 0
    page3 = im.ok("openim/admin_getroammsg", {**query, "MaxTime": page2["LastMsgTime"], "LastMsgKey": page2["LastMsgKey"]})
    assert [m["MsgKey"] for m in page3["MsgList"]] == keys[0:1] and page3["Complete"] == 1
    item = page3["MsgList"][0]
    assert (item["From_Account"], item["To_Account"], item["MsgSeq"], item["MsgRandom"], item["MsgTimeStamp"]) == (
        "erin", "dave", 100, 500, now - 50)
    assert item["MsgBody"] == text("m0") and item["MsgFlagBits"] == 0 and item["IsPeerRead"] == 0
    window = im.ok("openim/admin_getroammsg", {**query, "MaxCnt": 100, "MinTime": now - 49, "MaxTime": now - 47})
    assert [m["MsgKey"] for m in window["MsgList"]] == keys[1:4] and window["Complete"] == 1
    assert_fails(im.call("openim/admin_getroammsg", {**query, "LastMsgKey": "1_1_1"}), 90010)


def test_modify_c2c_msg_changes_the_message_live_and_in_history(server, im):
    sent = im.ok("openim/sendmsg", {"From_Account": "@RBT#my_bot", "To_Account": "user03", "MsgRandom": 9, "MsgBody": text("draft")})
    subscriber = WSSubscriber(server.url, "user03")
    try:
        subscriber.next("Ready")
        im.ok("openim/modify_c2c_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user03", "MsgKey": sent["MsgKey"],
                                        "MsgBody": text("final")})
        frame = subscriber.next("MessageModified")
        assert frame["Message"]["MsgKey"] == sent["MsgKey"] and frame["Message"]["MsgBody"] == text("final")
    finally:
        subscriber.close()
    [stored] = [m for m in history(im, "user03", "@RBT#my_bot")["MsgList"] if m["MsgKey"] == sent["MsgKey"]]
    assert stored["MsgBody"] == text("final")
    assert_fails(im.call("openim/modify_c2c_msg", {"From_Account": "@RBT#my_bot", "To_Account": "user02",
                                                   "MsgKey": sent["MsgKey"], "MsgBody": text("x")}), 90010)


# robots answered by Parley


def test_a_bound_robot_answers_through_the_scripted_model(server, im, model, callbacks):
    model.script("capital of France", content="Paris is the capital of France.", chunk_size=4, delay=0.1)
    user = WSSubscriber(server.url, "alice")
    try:
        user.next("Ready")
        reply = user.send({"Action": "sendmsg", "To_Account": ROBOT, "MsgRandom": 31337, "MsgBody": text("What is the capital of France?")})
        assert reply["ErrorCode"] == 0 and reply["MsgKey"]
        from_robot = lambda f: f["Message"]["From_Account"] == ROBOT  # noqa: E731
        opened = user.next("MessageReceived", where=from_robot)["Message"]
        data = chatbot_data(opened)
        assert data["src"] == 2 and data["isFinished"] == 0
        seen = [data["chunks"]]
        while not data["isFinished"]:
            frame = user.next("MessageModified", where=from_robot)
            assert frame["Message"]["MsgKey"] == opened["MsgKey"]
            data = chatbot_data(frame["Message"])
            assert data["chunks"][: len(seen[-1])] == seen[-1]  # cumulative
            seen.append(data["chunks"])
        assert "".join(data["chunks"]) == "Paris is the capital of France."
        assert len(seen) > 3  # it grew chunk by chunk
    finally:
        user.close()
    messages = history(im, "alice", ROBOT)["MsgList"]
    assert [m["From_Account"] for m in messages[-2:]] == ["alice", ROBOT]
    assert "".join(chatbot_data(messages[-1])["chunks"]) == "Paris is the capital of France."
    request = model.stats()["requests"][-1]
    assert request["messages"][0] == {"role": "system", "content": "You answer IM users."}

    query, body = callbacks.next_for(ROBOT, reply["MsgKey"])
    assert body["CallbackCommand"] == "Bot.OnC2CMessage" and body["From_Account"] == "alice"
    assert body["MsgBody"] == text("What is the capital of France?")
    assert_signed(query)


def assert_signed(query: dict[str, list[str]]) -> None:
    """The callback carries IM's signature, as a bot such as timbot checks it."""
    request_time = query["RequestTime"][0]
    assert abs(int(request_time) - time.time()) <= 60
    assert query["Sign"][0] == hashlib.sha256((CALLBACK_TOKEN + request_time).encode()).hexdigest()
    assert query["SdkAppid"] == [str(APP)] and query["CallbackCommand"] == ["Bot.OnC2CMessage"]
    assert query["contenttype"] == ["json"] and query["OptPlatform"] == ["RESTAPI"]


def test_an_operators_own_bot_hears_of_messages_and_answers_by_streaming(server, im, callbacks):
    user = WSSubscriber(server.url, "heidi")
    try:
        user.next("Ready")
        sent = user.send({"Action": "sendmsg", "To_Account": "@RBT#my_bot", "MsgRandom": 12, "MsgBody": text("ping the bot"),
                          "CloudCustomData": "ctx-1"})
        query, body = callbacks.next_for("@RBT#my_bot", sent["MsgKey"])
        assert_signed(query)
        assert (body["From_Account"], body["MsgBody"], body["CloudCustomData"]) == ("heidi", text("ping the bot"), "ctx-1")
        assert body["MsgKey"] == f"{body['MsgSeq']}_{body['MsgRandom']}_{body['MsgTime']}" and body["MsgRandom"] == 12
        # The bot answers as timbot does: stream its reply back to the sender.
        key = im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": body["To_Account"], "To_Account": body["From_Account"],
                                                              "Chunk": "pong"})["MsgKey"]
        im.ok("openim_robot_http_svc/send_stream_msg", {"From_Account": "@RBT#my_bot", "To_Account": "heidi", "Chunk": "!",
                                                        "MsgKey": key, "Finish": 1})
        frame = user.next("MessageModified", where=lambda f: f["Message"]["MsgKey"] == key)
        assert chatbot_data(frame["Message"]) == {"chatbotPlugin": 2, "src": 2, "chunks": ["pong", "!"], "isFinished": 1}
    finally:
        user.close()


def test_the_robot_remembers_the_conversation_and_answers_sendmsg(server, im, model):
    subscriber = SSESubscriber(server.url, "bob")
    try:
        subscriber.next("Ready")
        im.ok("openim/sendmsg", {"From_Account": "bob", "To_Account": ROBOT, "MsgRandom": 1, "MsgBody": text("first question")})
        im.ok("openim/sendmsg", {"From_Account": "bob", "To_Account": ROBOT, "MsgRandom": 2, "MsgBody": text("second question")})
        finished = 0
        while finished < 2:
            _, data = subscriber.next("MessageModified")
            if data["Message"]["From_Account"] == ROBOT and chatbot_data(data["Message"])["isFinished"]:
                finished += 1
    finally:
        subscriber.close()
    contents = [m["content"] for m in model.stats()["requests"][-1]["messages"]]
    assert "first question" in contents and "Echo: first question" in contents and contents[-1] == "second question"


def test_an_interrupt_stops_the_turn_and_the_model_call(server, im, model):
    model.script("tell me a long story", content=[f"word{n} " for n in range(200)], delay=0.05)
    user = WSSubscriber(server.url, "carol")
    try:
        user.next("Ready")
        user.send({"Action": "sendmsg", "To_Account": ROBOT, "MsgRandom": 5, "MsgBody": text("tell me a long story")})
        from_robot = lambda f: f["Message"]["From_Account"] == ROBOT  # noqa: E731
        key = user.next("MessageReceived", where=from_robot)["Message"]["MsgKey"]
        user.next("MessageModified", where=lambda f: from_robot(f) and chatbot_data(f["Message"])["chunks"])
        interrupt = {"chatbotPlugin": 2, "src": 22, "msgKey": key}
        reply = user.send({"Action": "sendmsg", "To_Account": ROBOT, "MsgRandom": 6, "MsgLifeTime": 0,
                           "MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": json.dumps(interrupt)}}]})
        assert reply["ErrorCode"] == 0
        data = chatbot_data(user.next("MessageModified", where=lambda f: from_robot(f) and chatbot_data(f["Message"])["isFinished"])["Message"])
        assert 0 < len(data["chunks"]) < 200
    finally:
        user.close()
    deadline = time.monotonic() + WAIT
    while model.stats()["closed_early"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert model.stats()["closed_early"] >= 1
    [stored] = [m for m in history(im, "carol", ROBOT)["MsgList"] if m["MsgKey"] == key]
    assert chatbot_data(stored)["isFinished"] == 1 and len(chatbot_data(stored)["chunks"]) < 200
    assert not [m for m in history(im, "carol", ROBOT)["MsgList"] if m["MsgRandom"] == 6]  # online only


def interrupt_of(msg_key: str) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": json.dumps({"chatbotPlugin": 2, "src": 22, "msgKey": msg_key})}}]


def test_only_the_conversations_user_or_an_admin_may_interrupt_its_answer(server, im, model):
    model.script("tell me a slow story", content=[f"part{n} " for n in range(60)], delay=0.05)
    owner = WSSubscriber(server.url, "frank")
    from_robot = lambda f: f["Message"]["From_Account"] == ROBOT  # noqa: E731
    try:
        owner.next("Ready")
        owner.send({"Action": "sendmsg", "To_Account": ROBOT, "MsgRandom": 31, "MsgBody": text("tell me a slow story")})
        key = owner.next("MessageReceived", where=from_robot)["Message"]["MsgKey"]
        owner.next("MessageModified", where=lambda f: from_robot(f) and chatbot_data(f["Message"])["chunks"])
        # Another user, on their own connection or sent by the admin as them, is refused; so is a made-up key.
        stranger = httpx.post(f"{server.url}/im/v1/sendmsg", params={"sdkappid": APP, "identifier": "grace", "usersig": usersig("grace")},
                              json={"To_Account": ROBOT, "MsgRandom": 32, "MsgLifeTime": 0, "MsgBody": interrupt_of(key)})
        assert_fails(stranger.json(), 90009)
        assert_fails(im.call("openim/sendmsg", {"From_Account": "grace", "To_Account": ROBOT, "MsgRandom": 33, "MsgBody": interrupt_of(key)}), 90009)
        assert_fails(im.call("openim/sendmsg", {"From_Account": "grace", "To_Account": ROBOT, "MsgRandom": 34,
                                                "MsgBody": interrupt_of("1_2_3")}), 90009)
        seen = len(chatbot_data(history(im, "frank", ROBOT)["MsgList"][-1])["chunks"])
        # The answer goes on growing after the refusals...
        owner.next("MessageModified", where=lambda f: from_robot(f) and not chatbot_data(f["Message"])["isFinished"]
                   and len(chatbot_data(f["Message"])["chunks"]) > seen)
        # ...until an admin stops it.
        im.ok("openim/sendmsg", {"To_Account": ROBOT, "MsgRandom": 35, "MsgLifeTime": 0, "MsgBody": interrupt_of(key)})
        data = chatbot_data(owner.next("MessageModified", where=lambda f: from_robot(f) and chatbot_data(f["Message"])["isFinished"])["Message"])
        assert 0 < len(data["chunks"]) < 60
    finally:
        owner.close()
    assert not [m for m in history(im, "grace", ROBOT)["MsgList"] if m["MsgRandom"] in (32, 33, 34)]


def test_a_robot_bound_to_a_missing_application_answers_with_an_error(server, im):
    subscriber = SSESubscriber(server.url, "dave")
    try:
        subscriber.next("Ready")
        im.ok("openim/sendmsg", {"From_Account": "dave", "To_Account": ORPHAN_ROBOT, "MsgRandom": 3, "MsgBody": text("hello?")})
        while True:
            _, data = subscriber.next("MessageReceived", "MessageModified")
            if data["Message"]["From_Account"] == ORPHAN_ROBOT and chatbot_data(data["Message"])["isFinished"]:
                break
        payload = chatbot_data(data["Message"])
        assert payload["src"] == 23 and payload["errorInfo"]
    finally:
        subscriber.close()


def test_an_adp_client_naming_an_im_robot_session_does_not_reach_it(server, im, model):
    _robot_answer(server, im, "heidi", ROBOT, "my code is 4711")
    # The IM face's session of heidi and the robot, and its visitor id, named on the ADP face.
    session_id = "im-" + hashlib.sha256(f"{APP}/{ROBOT}/heidi".encode()).hexdigest()[:40]
    app_key = server.admin("GET", "/admin/apps/im-bot").json()["app_key"]
    stream = post_chat(server.url, {"bot_app_key": app_key, "visitor_biz_id": f"im:{APP}:heidi", "session_id": session_id,
                                    "content": "what is my code", "request_id": "r1"})
    assert stream.status == 200 and stream.answer_replies
    seen = [m["content"] for m in model.stats()["requests"][-1]["messages"]]
    assert "what is my code" in seen and not any("4711" in text for text in seen), seen


def test_user_sendmsg_endpoint_sends_as_the_signed_in_user(server, im):
    response = httpx.post(f"{server.url}/im/v1/sendmsg", params={"sdkappid": APP, "identifier": "erin", "usersig": usersig("erin")},
                          json={"From_Account": "somebody-else", "To_Account": "@RBT#my_bot", "MsgRandom": 8, "MsgBody": text("as me")})
    data = response.json()
    assert data["ErrorCode"] == 0, data
    [stored] = [m for m in history(im, "@RBT#my_bot", "erin")["MsgList"] if m["MsgKey"] == data["MsgKey"]]
    assert stored["From_Account"] == "erin"


def _robot_answer(server: ParleyServer, im: IM, user: str, robot: str, question: str) -> dict[str, Any]:
    """Sends `question` to `robot` and returns the robot's answer as it finally stands."""
    subscriber = SSESubscriber(server.url, user)
    try:
        subscriber.next("Ready")
        im.ok("openim/sendmsg", {"From_Account": user, "To_Account": robot, "MsgRandom": random.randint(0, 2**32 - 1),
                                 "MsgBody": text(question)})
        while True:
            _, data = subscriber.next("MessageReceived", "MessageModified")
            if data["Message"]["From_Account"] == robot and chatbot_data(data["Message"])["isFinished"]:
                return chatbot_data(data["Message"])
    finally:
        subscriber.close()


def test_an_answer_settled_without_streaming_still_arrives(server, im, model):
    # The question hits a sensitive word: the engine answers at once, with no deltas.
    answer = _robot_answer(server, im, "frank", STRICT_ROBOT, "say the forbidden word")
    assert answer == {"chatbotPlugin": 2, "src": 2, "chunks": ["I can't say that."], "isFinished": 1}


def test_an_answer_withdrawn_for_its_content_is_replaced(server, im, model):
    model.script("harmless", content="this starts well and then says forbidden things", chunk_size=5)
    answer = _robot_answer(server, im, "grace", STRICT_ROBOT, "a harmless question")
    assert answer["chunks"] == ["I can't say that."] and answer["isFinished"] == 1


def test_a_robot_bound_to_a_workflow_answers_with_its_messages_cards_and_reply(server, im, model):
    """A workflow application behind a robot (issue 17): the message node's text streams into the
    robot's answer, option cards are listed for the user to answer with, and the answer resumes the run."""
    model.script("Desk: Hours", content="Nine to five.")
    first = _robot_answer(server, im, "ivan", FLOW_ROBOT, "hello desk")
    assert first["isFinished"] == 1 and first["src"] == 2
    assert "".join(first["chunks"]) == "Welcome to the desk.\n\nHours or address?\n\n- Hours\n- Address"
    second = _robot_answer(server, im, "ivan", FLOW_ROBOT, "Hours")
    assert "".join(second["chunks"]) == "Nine to five."
    stored = history(im, "ivan", FLOW_ROBOT)["MsgList"]
    assert ["".join(chatbot_data(m)["chunks"]) for m in stored if m["From_Account"] == FLOW_ROBOT][-1] == "Nine to five."
