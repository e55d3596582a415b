"""Ids that cannot be Parley's (past 63 bits, or digit characters other than 0-9, which pass
`str.isdigit()` but not `int()`) are refused or not found in each face's own shape, never a
500. Found by the fuzz tests; the cloud API's own ids are issue 13 item 11 (see test_fuzz_adp)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fuzzing import APP_NAME, OWNED_SESSION, Credentials

NOT_IDS = ["²", "99999999999999999999", "9" * 32]
KB = f"/admin/apps/{APP_NAME}/kb"


@pytest.fixture(scope="module")
def attr_id(fuzz_credentials: Credentials) -> str:
    """An attribute label of the target application (the fuzz tests' snapshots include it from here on)."""
    response = fuzz_credentials.server.admin("POST", KB + "/attribute-labels", json={"name": "ids", "labels": [{"name": "a"}]})
    assert response.status_code == 201, response.text
    return response.json()["attr_biz_id"]


@pytest.mark.parametrize("value", NOT_IDS)
@pytest.mark.parametrize("method, path", [
    ("GET", KB + "/documents/{}"), ("DELETE", KB + "/documents/{}"), ("PATCH", KB + "/documents/{}"),
    ("DELETE", KB + "/qa/{}"), ("PATCH", KB + "/qa/{}"), ("GET", KB + "/attribute-labels/{}"),
    ("PATCH", KB + "/attribute-labels/{}"), ("DELETE", KB + "/attribute-labels/{}"), ("DELETE", "/admin/cloudbase/keys/{}"),
])
def test_admin_path_ids_that_cannot_exist_are_not_found(fuzz_credentials: Credentials, method: str, path: str, value: str) -> None:
    response = fuzz_credentials.server.admin(method, path.format(value), json={})
    # not found; a path that is not even decimal digits may be called a bad request instead
    assert (response.status_code, response.json()["error"]["code"]) in ((404, "not_found"), (400, "bad_request")), response.text


@pytest.mark.parametrize("value", NOT_IDS)
@pytest.mark.parametrize("method, path, body, params", [
    ("GET", f"/admin/apps/{APP_NAME}/sessions/{OWNED_SESSION}/records", None, "before"),
    ("POST", KB + "/refer", "ids", None),
    ("PATCH", KB + "/attribute-labels/{attr}", "delete_label_ids", None),
    ("PATCH", KB + "/attribute-labels/{attr}", "labels", None),
])
def test_admin_body_and_query_ids_that_cannot_exist_are_refused(fuzz_credentials: Credentials, attr_id: str, method: str,
                                                                 path: str, body: str | None, params: str | None,
                                                                 value: str) -> None:
    server = fuzz_credentials.server
    payload = None
    if body == "labels":
        payload = {"labels": [{"id": value, "name": "b"}]}
    elif body is not None:
        payload = {body: [value]}
    response = server.admin(method, path.format(attr=attr_id), json=payload, params={params: value} if params else None)
    if body == "ids" and value.isascii() and value.isdigit() and len(value) <= 20:  # within uint64, past any id: none such
        assert response.status_code == 200 and response.json() == [], response.text
        return
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["code"] in ("bad_request", "invalid_label", "not_found")


@pytest.mark.parametrize("value", NOT_IDS)
def test_cloudbase_feedback_on_a_record_id_that_cannot_exist_is_refused(fuzz_credentials: Credentials, value: str) -> None:
    response = httpx.post(f"{fuzz_credentials.server.url}/v1/aibot/bots/{fuzz_credentials.bot_id}/feedback", timeout=30,
                          headers={"Authorization": f"Bearer {fuzz_credentials.cloudbase_key}"},
                          json={"recordId": value, "type": "upvote"})
    # malformed: invalid; decimal digits past any id: no such record
    expected = (404, "RESOURCE_NOT_FOUND") if value.isascii() and value.isdigit() else (400, "AGENT_INVALID_PARAM")
    assert (response.status_code, response.json()["code"]) == expected, response.text


@pytest.mark.parametrize("path", ["/im/v1/subscribe", "/im/v1/sendmsg", "/v4/openim/sendmsg"])
def test_an_im_sdkappid_of_other_digits_is_invalid(fuzz_credentials: Credentials, path: str) -> None:
    method = "GET" if path.endswith("subscribe") else "POST"
    response = httpx.request(method, fuzz_credentials.server.url + path, json={}, timeout=30,
                             params={"sdkappid": "²", "identifier": "a", "usersig": "b"})
    assert response.status_code == 200, response.text
    assert response.json()["ErrorCode"] == 60006


def test_a_cloudbase_path_with_a_trailing_slash_is_an_invalid_path_not_a_redirect(fuzz_credentials: Credentials) -> None:
    response = httpx.delete(f"{fuzz_credentials.server.url}/v1/aibot/bots/{fuzz_credentials.bot_id}/conversation/",
                            headers={"Authorization": f"Bearer {fuzz_credentials.cloudbase_key}"}, timeout=30)
    assert response.status_code == 404, (response.status_code, response.headers)
    assert response.json()["code"] == "INVALID_PATH"
