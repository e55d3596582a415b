"""What the fuzz tests share: a Parley configured with every face enabled, valid credentials
for each face, the checks every answer must pass, and a snapshot of the stored data."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import orjson
from hypothesis import seed, settings
from hypothesis import strategies as st
from TLSSigAPIv2 import TLSSigAPIv2

from tests.support.processes import ParleyServer, ScriptedModel, default_config
from tests.support.sse import post_chat

IM_APP = 1400000077
IM_KEY = "7f" * 32
IM_ADMIN = "administrator"
IM_USER = "fuzz-user"
IM_ROBOT = "@RBT#fuzz"
OWNER = "v-owner"
OWNED_SESSION = "s-fuzz-owned"
"""A session with one finished turn, by OWNER: what rejected requests must leave as it is."""
APP_NAME = "fuzz-target-app"
"""The application the fuzz tests aim at; a name a generator is unlikely to hit by chance."""
TRACEBACK_MARKS = ("Traceback", 'File "')


def fuzz_config(model: ScriptedModel) -> str:
    """Every face on; cloud API signatures off (so that generated calls reach the actions)."""
    return default_config(model) + f"""
[cloud_api]
verify_signatures = false

[cloudbase]
heartbeat_interval = 0.2

[im]
subscription_keepalive = 0.5

[[im.apps]]
sdkappid = {IM_APP}
secret_key = "{IM_KEY}"
admins = ["{IM_ADMIN}"]

[im.apps.robots]
"{IM_ROBOT}" = "{APP_NAME}"
"""


def usersig(identifier: str) -> str:
    return TLSSigAPIv2(IM_APP, IM_KEY).gen_sig(identifier, 86400)


@dataclass
class Credentials:
    """Valid credentials for every face of one server, and the application they lead to."""

    server: ParleyServer
    app: dict[str, Any]
    bot_id: str
    cloudbase_key: str
    admin_sig: str = field(default_factory=lambda: usersig(IM_ADMIN))
    user_sig: str = field(default_factory=lambda: usersig(IM_USER))

    @property
    def app_key(self) -> str:
        return self.app["app_key"]

    @property
    def database(self) -> str:
        return "sqlite" if self.server.database_url is None else "postgresql"

    def im_query(self, identifier: str = IM_ADMIN, nonce: int | None = None) -> dict[str, str]:
        """A signed query; `nonce` is the `random` value (drawn here when not given)."""
        sig = self.admin_sig if identifier == IM_ADMIN else self.user_sig
        nonce = random.randint(0, 2**32 - 1) if nonce is None else nonce
        return {"sdkappid": str(IM_APP), "identifier": identifier, "usersig": sig, "random": str(nonce),
                "contenttype": "json"}

    def im(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.server.url}/v4/{path}", params=self.im_query(), json=body, timeout=30)
        assert response.status_code == 200
        return response.json()


SEEDS = {"sqlite": 0, "postgresql": 1}
Test = TypeVar("Test", bound=Callable[..., Any])


def examples_shared(credentials: Credentials, base: settings, max_examples: int | None = None) -> Callable[[Test], Test]:
    """`base` (with `max_examples`) for a fuzz test that runs on both databases: half the examples
    on each, drawn from a seed of the database's own, so that the two halves together try as many
    different cases as one run on one database did, at the same cost."""
    examples = base.max_examples if max_examples is None else max_examples
    half = settings(base, max_examples=max(1, (examples + 1) // 2))

    def apply(test: Test) -> Test:
        return seed(SEEDS[credentials.database])(half(test))

    return apply


def prepare(server: ParleyServer) -> Credentials:
    """The target application (published, a CloudBase bot with a key, an IM robot's), with one
    conversation already in each face, so that there is stored data to keep unchanged."""
    app = server.create_app(APP_NAME, system_role="You answer fuzz tests.")
    response = server.admin("POST", f"/admin/apps/{APP_NAME}/cloudbase/keys", json={"kind": "api"})
    assert response.status_code == 201, response.text
    issued = response.json()
    credentials = Credentials(server, app, issued["botId"], issued["key"])
    imported = credentials.im("im_open_login_svc/multiaccount_import", {"AccountList": [{"UserID": IM_USER}]})
    assert imported["ErrorCode"] == 0, imported
    robot = credentials.im("openim_robot_http_svc/create_robot", {"UserID": IM_ROBOT})
    assert robot["ErrorCode"] == 0, robot
    turn = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": OWNER, "session_id": OWNED_SESSION,
                                  "content": "hello owner", "request_id": "r-owner"})
    assert turn.answer_replies and turn.answer_replies[-1]["is_final"], turn.raw
    assert len(server.records(APP_NAME, OWNED_SESSION)) == 2
    return credentials


def assert_no_traceback(text: str, sent: str = "") -> None:
    """No stack trace in an answer (unless the request itself carried the marks, as an echo)."""
    for mark in TRACEBACK_MARKS:
        assert mark not in text or mark in sent, f"a traceback in the answer: {text[:2000]}"


def stored_state(credentials: Credentials, sessions: tuple[str, ...] = (OWNED_SESSION,)) -> dict[str, Any]:
    """The admin API's view of the target application's stored data: its definition and
    releases, its sessions' records, its knowledge base (documents, Q&A pairs, labels), its
    CloudBase bot and keys; and the global sensitive words."""
    server = credentials.server

    def get(path: str) -> Any:
        response = server.admin("GET", path)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    kb = f"/admin/apps/{APP_NAME}/kb"
    return {
        "app": get(f"/admin/apps/{APP_NAME}"),
        "records": {s: get(f"/admin/apps/{APP_NAME}/sessions/{s}/records") for s in sessions},
        "documents": get(f"{kb}/documents"),
        "qa": get(f"{kb}/qa"),
        "attribute_labels": get(f"{kb}/attribute-labels"),
        "cloudbase_bot": get(f"/admin/apps/{APP_NAME}/cloudbase"),
        "cloudbase_keys": get(f"/admin/apps/{APP_NAME}/cloudbase/keys"),
        "words": get("/admin/moderation/words"),
    }


# -- strategies ------------------------------------------------------------------------------
INT63 = 2**63 - 1


texts = st.text(max_size=24)
digit_strings = st.integers(0, INT63).map(str)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), INT63), st.floats(allow_nan=False, allow_infinity=False),
    texts, digit_strings, st.sampled_from(["", " ", "0", "-1", "true", "null", "undefined", "../x", "%00", "\u0000"]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
garbage_bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(orjson.dumps),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"a":1', b"\xff\xfe", b"1e999999", b'{"x": 123456789012345678901234567890}']),
)
"""Request bodies that are not what any face expects."""


def objects_with(keys: list[str]) -> st.SearchStrategy[dict[str, object]]:
    """JSON objects whose keys are mostly the given field names, with any values."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), texts), json_values, max_size=min(6, len(keys) + 1))
