"""What concurrent and careless operators do: simultaneous publishes, and ids no Parley could
have minted (past 64 bits, negative, not numbers) in every call that takes one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.e2e.test_cloudapi import call, client, make_client, server  # noqa: F401  (fixtures)
from tests.support.sse import post_chat

PUBLISHES = 10


# -- simultaneous publishes --------------------------------------------------------------------


def _versions_after(server, name: str, before: int, made: list[int]) -> None:
    assert sorted(made) == list(range(before + 1, before + PUBLISHES + 1)), made
    app = server.admin("GET", f"/admin/apps/{name}").json()
    assert app["release_version"] == before + PUBLISHES


def test_simultaneous_admin_publishes_each_get_their_own_version(server):
    app = server.create_app("racing-admin", system_role="first")
    before = app["release_version"]
    server.admin("PUT", "/admin/apps/racing-admin", json={"name": "racing-admin", "system_role": "second"})

    def publish(i: int) -> httpx.Response:
        if i % 2:  # both ways the admin API publishes
            return server.admin("POST", "/admin/apps/racing-admin/publish", json={"description": f"p{i}"})
        return server.admin("PUT", "/admin/apps/racing-admin?publish=1", json={"name": "racing-admin", "system_role": "second"})

    with ThreadPoolExecutor(PUBLISHES) as pool:
        responses = list(pool.map(publish, range(PUBLISHES)))
    assert [r.status_code for r in responses] == [200] * PUBLISHES, [r.text for r in responses]
    _versions_after(server, "racing-admin", before, [r.json()["release_version"] for r in responses])
    stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": "s-race",
                                    "content": "hello"})
    assert stream.of("error") == []  # the latest release is served


def test_simultaneous_create_release_calls_each_make_a_release(server, client):
    app = server.create_app("racing-cloud")
    before = app["release_version"]
    clients = [make_client(server) for _ in range(PUBLISHES)]  # the SDK client is not shared across threads

    def release(i: int) -> dict[str, Any]:
        return call(clients[i], "CreateRelease", {"BotBizId": app["id"], "Desc": f"r{i}"})

    with ThreadPoolExecutor(PUBLISHES) as pool:
        results = list(pool.map(release, range(PUBLISHES)))
    release_ids = {r["ReleaseBizId"] for r in results}
    assert len(release_ids) == PUBLISHES and all(i.isdigit() for i in release_ids)
    info = call(client, "DescribeReleaseInfo", {"BotBizId": app["id"]})
    assert info["Status"] == 3
    assert server.admin("GET", "/admin/apps/racing-cloud").json()["release_version"] == before + PUBLISHES


# -- ids past 64 bits ------------------------------------------------------------------------------

BAD_IDS = [
    "99999999999999999999",  # 20 digits, past uint64
    "18446744073709551615",  # uint64's largest: well-formed, past any id Parley mints
    "9223372036854775808",  # 2^63
    "-1",
    "abc",
    "²",  # a digit to str.isdigit, not to int()
    "1_000",
    "",
]
ANSWERS = {"InvalidParameterValue", "ResourceNotFound", "MissingParameter", "InvalidParameter"}

# (action, the id parameter, the other parameters); "{bot}" and "{key}" are filled in.
ID_CALLS = [
    ("DescribeApp", "AppBizId", {}),
    ("ModifyApp", "AppBizId", {"AppType": "knowledge_qa"}),
    ("CreateRelease", "BotBizId", {}),
    ("DescribeReleaseInfo", "BotBizId", {}),
    ("DescribeStorageCredential", "BotBizId", {"FileType": "txt"}),
    ("GetMsgRecord", "LastRecordId", {"Type": 5, "Count": 10, "SessionId": "s-ids", "BotAppKey": "{key}"}),
    ("RateMsgRecord", "RecordId", {"BotAppKey": "{key}", "Score": 1}),
    ("ListDoc", "BotBizId", {}),
    ("DescribeDoc", "DocBizId", {"BotBizId": "{bot}"}),
    ("ModifyDoc", "DocBizId", {"BotBizId": "{bot}"}),
    ("DeleteDoc", "DocBizIds", {"BotBizId": "{bot}"}),
    ("SaveDoc", "BotBizId", {"FileName": "a.txt", "FileType": "txt", "CosUrl": "/x/a.txt"}),
    ("CreateQA", "BotBizId", {"Question": "q", "Answer": "a"}),
    ("ListQA", "BotBizId", {}),
    ("DescribeQA", "QaBizId", {"BotBizId": "{bot}"}),
    ("ModifyQA", "QaBizId", {"BotBizId": "{bot}", "Answer": "a"}),
    ("DeleteQA", "QaBizIds", {"BotBizId": "{bot}"}),
    ("DescribeRefer", "ReferBizIds", {"BotBizId": "{bot}"}),
    ("CreateQA", "AttrLabels.AttributeBizId", {"BotBizId": "{bot}", "Question": "q", "Answer": "a", "AttrRange": 2}),
    ("CreateAttributeLabel", "BotBizId", {"AttrName": "colour", "Labels": [{"LabelName": "red"}]}),
    ("ListAttributeLabel", "BotBizId", {}),
    ("DescribeAttributeLabel", "AttributeBizId", {"BotBizId": "{bot}"}),
    ("DescribeAttributeLabel", "LastLabelBizId", {"BotBizId": "{bot}", "AttributeBizId": "{attr}"}),
    ("ModifyAttributeLabel", "AttributeBizId", {"BotBizId": "{bot}"}),
    ("ModifyAttributeLabel", "DeleteLabelBizIds", {"BotBizId": "{bot}", "AttributeBizId": "{attr}"}),
    ("DeleteAttributeLabel", "AttributeBizIds", {"BotBizId": "{bot}"}),
]
LIST_PARAMETERS = {"DocBizIds", "QaBizIds", "ReferBizIds", "AttributeBizIds", "DeleteLabelBizIds"}


@pytest.fixture(scope="module")
def known(server, client) -> dict[str, str]:
    app = server.create_app("ids-bot")
    attribute = call(client, "CreateAttributeLabel", {"BotBizId": app["id"], "AttrName": "size",
                                                      "Labels": [{"LabelName": "big"}]})
    return {"{bot}": app["id"], "{key}": app["app_key"], "{attr}": attribute["AttrBizId"]}


def _fill(value: Any, known: dict[str, str]) -> Any:
    return known.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
@pytest.mark.parametrize(("action", "name", "others"), ID_CALLS, ids=lambda v: v if isinstance(v, str) else "")
def test_an_id_no_parley_could_mint_is_refused_in_tencents_terms(client, known, action, name, others, bad_id):
    params = {key: _fill(value, known) for key, value in others.items()}
    if name == "AttrLabels.AttributeBizId":
        params["AttrLabels"] = [{"Source": 1, "AttributeBizId": bad_id, "LabelBizIds": []}]
    else:
        params[name] = [bad_id] if name in LIST_PARAMETERS else bad_id
    try:
        client.call_json(action, params)
    except TencentCloudSDKException as exc:
        assert exc.code in ANSWERS, (exc.code, exc.message)
        assert "Traceback" not in exc.message
    else:  # a well-formed id for something that does not exist, where absence is no error
        assert action == "DescribeRefer" or name in ("LastRecordId", "LastLabelBizId")


@pytest.mark.parametrize("bad_id", ["99999999999999999999", "9223372036854775808", "²"])
def test_the_admin_api_answers_not_found_for_ids_past_64_bits(server, known, bad_id):
    base = "/admin/apps/ids-bot"
    for method, path in [
        ("GET", f"{base}/kb/documents/{bad_id}"),
        ("DELETE", f"{base}/kb/documents/{bad_id}"),
        ("DELETE", f"{base}/kb/qa/{bad_id}"),
        ("PATCH", f"{base}/kb/qa/{bad_id}"),
        ("GET", f"{base}/kb/attribute-labels/{bad_id}"),
        ("DELETE", f"/admin/cloudbase/keys/{bad_id}"),
    ]:
        response = server.admin(method, path, json={})
        assert response.status_code in (400, 404), (method, path, response.text)
        assert "error" in response.json()
    records = server.admin("GET", f"{base}/sessions/s-ids/records", params={"before": bad_id})
    assert records.status_code == 400 and records.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("bad_id", ["99999999999999999999", "9223372036854775808"])
def test_a_chat_naming_a_document_past_64_bits_is_a_bad_request(server, known, bad_id):
    stream = post_chat(server.url, {"bot_app_key": known["{key}"], "visitor_biz_id": "v", "session_id": "s-ids",
                                    "content": "hello", "file_infos": [{"file_name": "a.txt", "file_size": "1", "file_url": "",
                                                                         "file_type": "txt", "doc_id": bad_id}]})
    error = stream.of("error")[0]["error"]
    assert error["code"] == 400 and "real-time document" in error["message"]


def test_cloudbase_answers_ids_and_ratings_past_64_bits_in_its_own_terms(server, known):
    key = server.admin("POST", "/admin/apps/ids-bot/cloudbase/keys", json={"kind": "api"}).json()
    url = f"{server.url}/v1/aibot/bots/{key['botId']}/feedback"
    headers = {"Authorization": f"Bearer {key['key']}"}
    feedback = httpx.post(url, json={"recordId": "9" * 30, "type": "upvote"}, headers=headers, timeout=30)
    assert feedback.status_code == 404 and feedback.json()["code"] == "RESOURCE_NOT_FOUND"
    listed = httpx.get(url, params={"minRating": "9" * 20}, headers=headers, timeout=30)
    assert listed.status_code == 400 and listed.json()["code"] == "AGENT_INVALID_PARAM"


# -- digits that are not ASCII digits -------------------------------------------------------------
# str.isdigit() takes "²" (which int() refuses) and "１２３" (which int() reads as 123); an id or a
# number check must take ASCII digits only.

def test_save_doc_refuses_a_size_that_is_not_ascii_digits(client, known, size="²"):
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json("SaveDoc", {"BotBizId": known["{bot}"], "FileName": "a.md", "FileType": "md",
                                     "CosUrl": "/public/x/a.md", "Size": size})
    assert info.value.code == "InvalidParameterValue", (info.value.code, info.value.message)


def test_the_admin_api_refuses_label_ids_that_are_not_ascii_digits(server, known, label_id="²"):
    response = server.admin("PATCH", f"/admin/apps/ids-bot/kb/attribute-labels/{known['{attr}']}",
                            json={"delete_label_ids": [label_id]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_label"


@pytest.mark.parametrize("sdkappid", ["²", "１４０００００００９"])
def test_im_refuses_an_sdkappid_that_is_not_ascii_digits(server, sdkappid):
    query = {"sdkappid": sdkappid, "identifier": "administrator", "usersig": "x", "random": 1, "contenttype": "json"}
    rest = httpx.post(f"{server.url}/v4/openim/sendmsg", params=query, json={}, timeout=30).json()
    subscribe = httpx.get(f"{server.url}/im/v1/subscribe", params=query, timeout=30).json()
    for answer in (rest, subscribe):
        assert answer["ActionStatus"] == "FAIL" and answer["ErrorCode"] == 60006, answer  # not a valid SDKAppID
