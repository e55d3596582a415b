"""Seeded, bounded fuzzing of the Tencent Cloud Chat (IM) REST face and the CloudBase AI bot face.

Every answer must be in the face's own shape (IM: HTTP 200 with the `ActionStatus`,
`ErrorCode`, `ErrorInfo` envelope and no internal-error code; CloudBase: a JSON refusal
`{code, message, requestId}` with a 4xx status, or JSON / an SSE stream ending in
`[DONE]`), never a 5xx or a stack trace; and the admin API's view of the target
application must be the same after the batch as before.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.faces.cloudbase.openapi import QUERY
from parley.faces.im.calls import CALLS
from parley.faces.im.errors import LOGIN, OPENIM, ROBOT
from parley.faces.im.openapi import BODIES
from tests.support.fuzzing import (
    IM_ADMIN,
    IM_APP,
    IM_USER,
    Credentials,
    assert_no_traceback,
    digit_strings,
    examples_shared,
    garbage_bodies,
    objects_with,
    stored_state,
    texts,
)

FUZZ = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
INTERNAL_CODES = {LOGIN.internal, OPENIM.internal, ROBOT.internal}


# -- IM ---------------------------------------------------------------------------------------


@st.composite
def im_queries(draw: st.DrawFn, credentials: Credentials, identifier: str = IM_ADMIN) -> dict[str, str]:
    """Mostly valid signed queries; else one part missing or wrong."""
    query = credentials.im_query(identifier, nonce=draw(st.integers(0, 2**32 - 1)))
    change = draw(st.sampled_from(["none", "none", "none", "sdkappid", "identifier", "usersig", "drop"]))
    if change == "drop":
        query.pop(draw(st.sampled_from(["sdkappid", "identifier", "usersig"])))
    elif change == "sdkappid":
        query["sdkappid"] = draw(st.one_of(digit_strings, texts, st.just(str(IM_APP + 1))))
    elif change != "none":
        query[change] = draw(st.one_of(texts, st.just(credentials.user_sig), st.just(IM_USER)))
    return query


@st.composite
def im_calls(draw: st.DrawFn) -> tuple[str, str, bytes]:
    name = draw(st.one_of(st.sampled_from(sorted(CALLS)), st.sampled_from(sorted(CALLS)),
                          st.from_regex(r"\A[a-z_]{1,12}/[a-z_0-9]{1,16}\Z")))
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH"]))
    fields = list(BODIES.get(name, {}).get("properties", {})) or ["UserID"]
    body = draw(st.one_of(garbage_bodies, objects_with(fields).map(lambda b: json.dumps(b).encode())))
    return method, name, body


def assert_im_envelope(response: httpx.Response, sent: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert_no_traceback(response.text, sent)
    data = response.json()
    code = data["ErrorCode"]
    assert isinstance(code, int) and isinstance(data["ErrorInfo"], str), data
    assert data["ActionStatus"] == ("OK" if code == 0 else "FAIL"), data
    assert code not in INTERNAL_CODES, data
    return data


def test_im_rest_calls_answer_in_the_envelope(fuzz_credentials: Credentials) -> None:
    before = stored_state(fuzz_credentials)
    base = fuzz_credentials.server.url

    @examples_shared(fuzz_credentials, FUZZ)
    @given(call=im_calls(), query=im_queries(fuzz_credentials))
    def check(call: tuple[str, str, bytes], query: dict[str, str]) -> None:
        method, name, body = call
        response = httpx.request(method, f"{base}/v4/{name}", params=query, content=body, timeout=30)
        assert_im_envelope(response, body.decode("utf-8", "replace") + json.dumps(query))

    check()
    assert stored_state(fuzz_credentials) == before


def test_im_user_calls_answer_in_the_envelope(fuzz_credentials: Credentials) -> None:
    """A user's own sendmsg, and subscriptions refused before they start streaming."""
    before = stored_state(fuzz_credentials)
    base = fuzz_credentials.server.url
    sendmsg = list(BODIES["openim/sendmsg"]["properties"])

    @examples_shared(fuzz_credentials, FUZZ)
    @given(query=im_queries(fuzz_credentials, IM_USER),
           body=st.one_of(garbage_bodies, objects_with(sendmsg).map(lambda b: json.dumps(b).encode())),
           bad_sig=texts)
    def check(query: dict[str, str], body: bytes, bad_sig: str) -> None:
        response = httpx.post(f"{base}/im/v1/sendmsg", params=query, content=body, timeout=30)
        assert_im_envelope(response, body.decode("utf-8", "replace") + json.dumps(query))
        refused = {**query, "usersig": bad_sig}
        response = httpx.get(f"{base}/im/v1/subscribe", params=refused, timeout=30)
        assert response.json()["ErrorCode"] != 0
        assert_im_envelope(response, json.dumps(refused))

    check()
    assert stored_state(fuzz_credentials) == before


# -- CloudBase ------------------------------------------------------------------------------

CLOUDBASE_CALLS = [
    ("GET", "/bots"), ("GET", "/bots/{bot}"), ("POST", "/bots/{bot}/send-message"),
    ("POST", "/bots/{bot}/recommend-questions"), ("GET", "/bots/{bot}/records"), ("POST", "/bots/{bot}/feedback"),
    ("GET", "/bots/{bot}/feedback"), ("POST", "/bots/{bot}/conversation"), ("GET", "/bots/{bot}/conversation"),
    ("PATCH", "/bots/{bot}/conversation/{conversation}"), ("DELETE", "/bots/{bot}/conversation/{conversation}"),
    ("PUT", "/bots/{bot}/files"), ("GET", "/nothing/here"),
]
CLOUDBASE_FIELDS = ["msg", "history", "files", "searchEnable", "conversationId", "recordId", "type", "rating", "comment",
                    "tags", "input", "aiAnswer", "title", "name", "introduction", "agentSetting"]


@st.composite
def cloudbase_requests(draw: st.DrawFn, credentials: Credentials) -> tuple[str, str, dict[str, str], dict[str, str], bytes]:
    method, template = draw(st.sampled_from(CLOUDBASE_CALLS))
    bot = draw(st.sampled_from([credentials.bot_id] * 3 + ["no-such-bot", "", "%2e%2e"]))
    segment = st.text(st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="/?#"), max_size=24)
    path = template.replace("{bot}", bot).replace("{conversation}", draw(st.one_of(segment, digit_strings)))
    key = draw(st.sampled_from([credentials.cloudbase_key] * 3 + ["", "not-a-key", credentials.server.admin_token]))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    query = draw(st.dictionaries(st.sampled_from(sorted(QUERY)), st.one_of(texts, digit_strings), max_size=3))
    body = draw(st.one_of(garbage_bodies, objects_with(CLOUDBASE_FIELDS).map(lambda b: json.dumps(b).encode())))
    return method, f"/v1/aibot{path}", query, headers, body


def assert_cloudbase_answer(response: httpx.Response, sent: str) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    assert_no_traceback(response.text, sent)
    assert response.headers.get("x-request-id"), response.headers
    media = response.headers["content-type"]
    if response.status_code >= 400:
        assert media.startswith("application/json"), response.text
        error = response.json()
        assert set(error) == {"code", "message", "requestId"} and all(isinstance(v, str) for v in error.values()), error
        assert error["requestId"] == response.headers["x-request-id"]
    elif media.startswith("text/event-stream"):
        blocks = [b for b in response.text.split("\n\n") if b and not b.startswith(":")]
        blocks = [b.split("\n", 1)[1] if b.startswith("id:") else b for b in blocks]  # send-message's ids
        assert blocks and blocks[-1] == "data: [DONE]", response.text
        for block in blocks[:-1]:
            assert block.startswith("data: ") and isinstance(json.loads(block[6:]), dict), block
    else:
        assert media.startswith("application/json"), response.text
        response.json()


def test_cloudbase_calls_answer_in_its_shape(fuzz_credentials: Credentials) -> None:
    before = stored_state(fuzz_credentials)
    base = fuzz_credentials.server.url

    @examples_shared(fuzz_credentials, FUZZ, 45)
    @given(request=cloudbase_requests(fuzz_credentials))
    def check(request: tuple[str, str, dict[str, str], dict[str, str], bytes]) -> None:
        method, path, query, headers, body = request
        response = httpx.request(method, base + path, params=query, headers={**headers, "Content-Type": "application/json"},
                                 content=body if method in ("POST", "PATCH", "PUT") else None, timeout=60)
        try:
            assert_cloudbase_answer(response, body.decode("utf-8", "replace") + json.dumps(query))
        except Exception:
            print(request, response.status_code, response.headers, response.text[:300])
            raise

    check()
    assert stored_state(fuzz_credentials) == before
