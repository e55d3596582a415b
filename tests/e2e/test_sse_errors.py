"""Every rejection is one `error` event in both shapes, the model is not called and nothing is stored."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.support.sse import post_chat


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


@pytest.fixture(scope="module")
def app(parley):
    return parley.create_app("sse-errors")


def body(app, **fields):
    return {"bot_app_key": app["app_key"], "visitor_biz_id": "v1", "session_id": "s-" + uuid.uuid4().hex[:10],
            "content": "hello", **fields}


def assert_rejected(stream, code):
    assert stream.status == 200
    assert stream.names() == ["error"], stream.raw
    data = stream.of("error")[0]
    assert data["error"]["code"] == code and data["payload"]["error"]["code"] == code
    assert data["error"]["message"] == data["payload"]["error"]["message"] and data["error"]["message"]
    return data


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"session_id": "!"}, "session_id"),
        ({"session_id": None}, "session_id is required"),
        ({"visitor_biz_id": None}, "visitor_biz_id is required"),
        ({"content": None}, "content is required"),
        ({"custom_variables": {"UserID": 10220022}}, "custom_variables.UserID"),
        ({"streaming_throttle": "fast"}, "streaming_throttle"),
        ({"stream": "sometimes"}, "stream"),
        ({"model_name": "no-such-model"}, "model_name"),
    ],
)
def test_bad_parameters_get_400(parley, app, model, change, fragment):
    request = {k: v for k, v in {**body(app), **change}.items() if v is not None}
    data = assert_rejected(post_chat(parley.url, {**request, "request_id": "r-400"}), 400)
    assert fragment in data["error"]["message"] and data["request_id"] == "r-400"
    assert model.stats()["calls"] == 0
    if "session_id" in request and isinstance(request["session_id"], str) and "!" not in request["session_id"]:
        assert parley.records("sse-errors", request["session_id"]) == []


@pytest.mark.parametrize("raw", [b"not json", b"[1,2,3]", b""])
def test_a_body_that_is_not_a_json_object_gets_400(parley, model, raw):
    assert_rejected(post_chat(parley.url, raw), 400)


def test_an_unknown_app_key_gets_4505004(parley, app, model):
    assert_rejected(post_chat(parley.url, body(app, bot_app_key="no-such-key")), 4505004)
    assert model.stats()["calls"] == 0


def test_an_unpublished_app_gets_460004(parley, model):
    draft = parley.create_app("sse-never-published", publish=False)
    data = assert_rejected(post_chat(parley.url, body(draft)), 460004)
    assert "published" in data["error"]["message"]


def test_a_deleted_app_gets_460004(parley, model):
    doomed = parley.create_app("sse-deleted")
    assert parley.admin("DELETE", "/admin/apps/sse-deleted").status_code == 204
    assert_rejected(post_chat(parley.url, body(doomed)), 460004)


def test_another_visitors_session_gets_460010_and_stays_intact(parley, app, model):
    first = body(app, content="mine")
    assert post_chat(parley.url, first).names()[-1] == "reply"
    before = parley.records("sse-errors", first["session_id"])
    assert_rejected(post_chat(parley.url, {**first, "visitor_biz_id": "intruder", "content": "theirs"}), 460010)
    assert parley.records("sse-errors", first["session_id"]) == before
    assert model.stats()["calls"] == 1


def test_content_over_the_models_input_limit_gets_460034(parley, app, model):
    request = body(app, content="x" * 201)  # the scripted model's InputLenLimit is 200
    assert_rejected(post_chat(parley.url, request), 460034)
    assert parley.records("sse-errors", request["session_id"]) == []
    assert post_chat(parley.url, body(app, content="x" * 200)).names()[-1] == "reply"


def test_a_system_role_over_the_role_limit_gets_460034(parley, app, model):
    assert_rejected(post_chat(parley.url, body(app, system_role="r" * 101)), 460034)
    assert model.stats()["calls"] == 0


def test_turns_over_the_concurrency_limit_get_460011(parley, model):
    app = parley.create_app("sse-one-at-a-time", concurrency=1)
    model.script("occupy", content="busy busy busy", ttft=1.5)
    results = {}

    def first():
        results["first"] = post_chat(parley.url, body(app, content="occupy"))

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 10
    while model.stats()["concurrent"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_rejected(post_chat(parley.url, body(app, content="second")), 460011)
    thread.join()
    assert results["first"].answer_replies[-1]["content"] == "busy busy busy"
    assert post_chat(parley.url, body(app, content="third")).names()[-1] == "reply"  # the slot was freed
