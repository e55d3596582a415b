"""The cloud API face (`POST /` with X-TC-Action), driven by the official tencentcloud-sdk-python-lke client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lke.v20231130 import lke_client, models

from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_chat

SECRET_ID = "AKIDparleytest"
SECRET_KEY = "parley-test-secret-key"

CLOUD_API_CONFIG = f"""
[cloud_api]
signature_max_age = 300

[[cloud_api.credentials]]
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"
"""


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    server = start_parley(tmp_path_factory.mktemp("cloudapi"), default_config(scripted_model) + CLOUD_API_CONFIG, database_args)
    yield server
    server.close()


def make_client(server: ParleyServer, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY) -> lke_client.LkeClient:
    endpoint = server.url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqMethod="POST", reqTimeout=30))
    return lke_client.LkeClient(credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)


@pytest.fixture(scope="module")
def client(server: ParleyServer) -> lke_client.LkeClient:
    return make_client(server)


def call(client: lke_client.LkeClient, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Calls `action` through the SDK's typed request and response models; returns the response as JSON."""
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    response = getattr(client, action)(request)
    return json.loads(response.to_json_string())


def sdk_error(client: lke_client.LkeClient, action: str, params: dict[str, Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call(client, action, params)
    return info.value


@pytest.fixture(scope="module")
def published(server: ParleyServer) -> dict[str, Any]:
    return server.create_app(
        "cloud-bot", greeting="Hello there", opening_questions=["What can you do?"], avatar="https://example.com/a.png"
    )


# -- transport and signatures --------------------------------------------------------------


def test_a_signed_call_succeeds_with_a_request_id(client, published):
    result = call(client, "DescribeRobotBizIDByAppKey", {"AppKey": published["app_key"]})
    assert result["BotBizId"] == published["id"]
    assert result["RequestId"]


def test_a_wrong_secret_key_fails_with_signature_failure(server, published):
    bad = make_client(server, secret_key="not-the-key")
    error = sdk_error(bad, "DescribeRobotBizIDByAppKey", {"AppKey": published["app_key"]})
    assert error.code == "AuthFailure.SignatureFailure"
    assert error.requestId


def test_an_unknown_secret_id_fails_with_secret_id_not_found(server, published):
    error = sdk_error(make_client(server, secret_id="AKIDunknown"), "DescribeRobotBizIDByAppKey", {"AppKey": published["app_key"]})
    assert error.code == "AuthFailure.SecretIdNotFound"


def test_a_stale_timestamp_fails_with_signature_expire(server, client, published, monkeypatch):
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # the SDK signs with time.time()
    error = sdk_error(client, "DescribeRobotBizIDByAppKey", {"AppKey": published["app_key"]})
    assert error.code == "AuthFailure.SignatureExpire"


def test_a_tampered_body_fails_with_signature_failure(server, client, published):
    body = json.dumps({"AppKey": published["app_key"]})
    signed = signed_headers(server, "DescribeRobotBizIDByAppKey", body)
    response = httpx.post(server.url + "/", content=body.replace("}", ' }'), headers=signed)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    error = response.json()["Response"]["Error"]
    assert error["Code"] == "AuthFailure.SignatureFailure"


def test_a_malformed_authorization_header_is_invalid_authorization(server):
    response = httpx.post(
        server.url + "/", content=b"{}",
        headers={"Content-Type": "application/json", "X-TC-Action": "ListModel", "X-TC-Version": "2023-11-30",
                 "X-TC-Timestamp": str(int(time.time())), "Authorization": "Bearer nope"},
    )
    body = response.json()["Response"]
    assert body["Error"]["Code"] == "AuthFailure.InvalidAuthorization"
    assert body["RequestId"]


def test_an_unknown_action_is_invalid_action(server, client):
    error = sdk_error_raw(client, "NoSuchThing", {})
    assert error.code == "InvalidAction"


def test_a_wrong_version_is_no_such_version(server):
    body = "{}"
    headers = signed_headers(server, "ListModel", body, version="2020-01-01")
    response = httpx.post(server.url + "/", content=body, headers=headers)
    assert response.json()["Response"]["Error"]["Code"] == "NoSuchVersion"


def test_a_body_that_is_not_json_is_invalid_parameter(server):
    body = "not json"
    response = httpx.post(server.url + "/", content=body, headers=signed_headers(server, "ListModel", body))
    assert response.json()["Response"]["Error"]["Code"] == "InvalidParameter"


def sdk_error_raw(client: lke_client.LkeClient, action: str, params: dict[str, Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json(action, params)
    return info.value


def signed_headers(
    server: ParleyServer, action: str, body: str, version: str = "2023-11-30", *, unsigned: bool = False
) -> dict[str, str]:
    """Headers the way the SDK's signer makes them (its own signing function, not ours);
    `unsigned` as with the SDK's `unsignedPayload`: the body is not signed."""
    from tencentcloud.common.sign import Sign
    import hashlib
    from datetime import datetime, timezone

    host = server.url.removeprefix("http://")
    timestamp = int(time.time())
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    canonical = "POST\n/\n\ncontent-type:application/json\nhost:%s\n\ncontent-type;host\n%s" % (
        host, hashlib.sha256(b"UNSIGNED-PAYLOAD" if unsigned else body.encode()).hexdigest())
    to_sign = "TC3-HMAC-SHA256\n%d\n%s/lke/tc3_request\n%s" % (timestamp, date, hashlib.sha256(canonical.encode()).hexdigest())
    signature = Sign.sign_tc3(SECRET_KEY, date, "lke", to_sign)
    return {
        "Content-Type": "application/json", "Host": host, "X-TC-Action": action, "X-TC-Version": version,
        "X-TC-Timestamp": str(timestamp),
        "Authorization": f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/lke/tc3_request, SignedHeaders=content-type;host, Signature={signature}",
        **({"X-TC-Content-SHA256": "UNSIGNED-PAYLOAD"} if unsigned else {}),
    }


def web_client_headers(
    server: ParleyServer, action: str, body: str, *, service: str = "lke", date: str | None = None,
) -> dict[str, str]:
    """Headers signed as adp-chat-client signs (server/util/tca.py): `x-tc-action` among the
    signed headers, its value lower-cased in the canonical request only, as Tencent's rule
    says; the scope's service and date as given. The signing key comes from the SDK."""
    from tencentcloud.common.sign import Sign
    import hashlib
    from datetime import datetime, timezone

    host = server.url.removeprefix("http://")
    timestamp = int(time.time())
    date = date or datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    content_type = "application/json; charset=utf-8"
    canonical = "POST\n/\n\ncontent-type:%s\nhost:%s\nx-tc-action:%s\n\ncontent-type;host;x-tc-action\n%s" % (
        content_type, host, action.lower(), hashlib.sha256(body.encode()).hexdigest())
    scope = f"{date}/{service}/tc3_request"
    to_sign = "TC3-HMAC-SHA256\n%d\n%s\n%s" % (timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
    signature = Sign.sign_tc3(SECRET_KEY, date, service, to_sign)
    return {
        "Content-Type": content_type, "Host": host, "X-TC-Action": action, "X-TC-Version": "2023-11-30",
        "X-TC-Timestamp": str(timestamp), "X-TC-Region": "ap-guangzhou",
        "Authorization": f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{scope}, SignedHeaders=content-type;host;x-tc-action, Signature={signature}",
    }


def post_raw(server: ParleyServer, body: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(server.url + "/", content=body, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()["Response"]


def test_a_call_signed_as_adp_chat_client_signs_is_accepted(server, published):
    body = json.dumps({"AppKey": published["app_key"]})
    answer = post_raw(server, body, web_client_headers(server, "DescribeRobotBizIDByAppKey", body))
    assert answer.get("BotBizId") == published["id"], answer


def test_a_scope_for_a_service_that_does_not_own_the_action_is_refused(server, published):
    body = json.dumps({"AppKey": published["app_key"]})
    for service in ("lkeap", "adp", "cvm"):
        answer = post_raw(server, body, web_client_headers(server, "DescribeRobotBizIDByAppKey", body, service=service))
        assert answer["Error"]["Code"] == "AuthFailure.InvalidAuthorization", answer
        assert "Service" in answer["Error"]["Message"]


def test_a_scope_dated_another_day_than_the_timestamp_is_refused(server, published):
    body = json.dumps({"AppKey": published["app_key"]})
    for date in ("2024-01-01", time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))):
        answer = post_raw(server, body, web_client_headers(server, "DescribeRobotBizIDByAppKey", body, date=date))
        assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure", answer


def test_a_captured_call_replayed_as_another_action_is_refused(server, client):
    app_id = call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-replayed"}})["AppBizId"]
    body = json.dumps({"BotBizId": app_id})
    captured = signed_headers(server, "DescribeReleaseInfo", body)  # as the SDK signs: content-type;host only
    assert post_raw(server, body, captured)["Status"] == 1
    # The same signature and body, sent again as CreateRelease, would publish the application.
    answer = post_raw(server, body, {**captured, "X-TC-Action": "CreateRelease"})
    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure", answer
    assert server.admin("GET", "/admin/apps/sdk-replayed").json()["published"] is False
    # Reads may share a signature (two SDK calls with one body in one second have equal ones).
    assert post_raw(server, body, captured)["Status"] == 1
    assert post_raw(server, body, {**captured, "X-TC-Action": "ListQA"})["Total"] == "0"


def test_the_sdk_may_sign_a_read_and_a_write_alike_but_a_replay_from_elsewhere_is_refused(server, client, monkeypatch):
    app_id = call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-same-second"}})["AppBizId"]
    frozen = time.time()
    monkeypatch.setattr(time, "time", lambda: frozen)  # every signature below is made in one second
    body = {"BotBizId": app_id}
    assert call(client, "DescribeReleaseInfo", body)["Status"] == 1
    # The SDK's signature of that read, sent from another connection as CreateRelease: refused.
    answer = post_raw(server, json.dumps(body), {**signed_headers(server, "DescribeReleaseInfo", json.dumps(body)),
                                                 "X-TC-Action": "CreateRelease"})
    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure", answer
    # The SDK itself, on its connection, signs CreateRelease alike and is not refused.
    assert call(client, "CreateRelease", body)["ReleaseBizId"].isdigit()
    assert server.admin("GET", "/admin/apps/sdk-same-second").json()["published"] is True


def test_a_captured_call_with_an_unsigned_payload_keeps_its_body(server, client, published):
    other_id = call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-unsigned"}})["AppBizId"]
    body = json.dumps({"BotBizId": published["id"]})
    captured = signed_headers(server, "DescribeReleaseInfo", body, unsigned=True)
    assert post_raw(server, body, captured)["Status"] == 3
    answer = post_raw(server, json.dumps({"BotBizId": other_id}), {**captured, "X-TC-Action": "CreateRelease"})
    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure", answer
    assert server.admin("GET", "/admin/apps/sdk-unsigned").json()["published"] is False


def test_a_replay_through_a_proxy_naming_the_same_client_is_refused(server, client):
    """Through a proxy (uvicorn trusts X-Forwarded-For from loopback) the client is an address
    with port 0: that names a host, not the connection the signature was first used on."""
    app_id = call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-proxied"}})["AppBizId"]
    body = json.dumps({"BotBizId": app_id})
    captured = {**signed_headers(server, "DescribeReleaseInfo", body), "X-Forwarded-For": "10.0.0.5"}
    assert post_raw(server, body, captured)["Status"] == 1
    answer = post_raw(server, body, {**captured, "X-TC-Action": "CreateRelease"})
    assert answer.get("Error", {}).get("Code") == "AuthFailure.SignatureFailure", answer
    assert server.admin("GET", "/admin/apps/sdk-proxied").json()["published"] is False

def test_a_captured_read_with_an_unsigned_payload_cannot_be_replayed_to_read_something_else(server, client, published):
    """With the body unsigned, a read replayed as another read could name any conversation
    (GetMsgRecord of any SessionId) for the signature's whole life; so an unsigned payload
    binds reads too. The same call again (a retry) is still accepted."""
    post_chat(server.url, {"bot_app_key": published["app_key"], "visitor_biz_id": "v", "session_id": "s-private",
                           "content": "my code is 4711"})
    body = json.dumps({"BotBizId": published["id"]})
    captured = signed_headers(server, "DescribeReleaseInfo", body, unsigned=True)
    assert post_raw(server, body, captured)["Status"] == 3
    assert post_raw(server, body, captured)["Status"] == 3  # a retry
    other = json.dumps({"Type": 5, "Count": 10, "SessionId": "s-private", "BotAppKey": published["app_key"]})
    answer = post_raw(server, other, {**captured, "X-TC-Action": "GetMsgRecord"})
    assert answer.get("Error", {}).get("Code") == "AuthFailure.SignatureFailure", answer


# -- dialogue actions ------------------------------------------------------------------------


def test_list_model_gives_the_input_and_role_limits_of_each_model(client):
    result = call(client, "ListModel", {"AppType": "knowledge_qa"})
    by_name = {m["ModelName"]: m for m in result["List"]}
    assert by_name["scripted"]["InputLenLimit"] == 200
    assert by_name["scripted"]["RoleLenLimit"] == 100
    assert by_name["scripted"]["IsDefault"] is True
    assert by_name["Deepseek/deepseek-r1-0528"]["IsDeepThinking"] is True
    thought = call(client, "ListModel", {"ModelCategory": "thought"})["List"]
    assert [m["ModelName"] for m in thought] == ["Deepseek/deepseek-r1-0528"]


def test_an_unknown_app_key_is_resource_not_found(client):
    assert sdk_error(client, "DescribeRobotBizIDByAppKey", {"AppKey": "nope"}).code == "ResourceNotFound"
    assert sdk_error(client, "DescribeRobotBizIDByAppKey", {}).code == "MissingParameter"


def test_describe_app_has_the_fields_adp_chat_client_reads(client, published):
    result = call(client, "DescribeApp", {"AppBizId": published["id"]})
    assert result["BaseConfig"]["Name"] == "cloud-bot"
    assert result["BaseConfig"]["Avatar"] == "https://example.com/a.png"
    assert result["AppConfig"]["KnowledgeQa"]["Greeting"] == "Hello there"
    assert result["AppConfig"]["KnowledgeQa"]["OpeningQuestions"] == ["What can you do?"]
    assert result["AppKey"] == published["app_key"]
    assert result["AppStatus"] == 2
    assert sdk_error(client, "DescribeApp", {"AppBizId": "12345"}).code == "ResourceNotFound"
    assert sdk_error(client, "DescribeApp", {"AppBizId": "abc"}).code == "InvalidParameterValue"


def test_get_ws_token_gives_a_token_and_the_input_limit(client, published):
    result = call(client, "GetWsToken", {"Type": 5, "BotAppKey": published["app_key"], "VisitorBizId": "v1"})
    assert len(result["Token"]) >= 16
    assert result["InputLenLimit"] == 200
    assert result["Balance"] > 0
    assert result["Pattern"] == "standard"
    other = call(client, "GetWsToken", {"Type": 5, "BotAppKey": published["app_key"], "VisitorBizId": "v1"})
    assert other["Token"] != result["Token"]


def test_get_ws_token_refuses_other_types_and_unpublished_apps(server, client, published):
    error = sdk_error(client, "GetWsToken", {"Type": 1, "BotAppKey": published["app_key"], "VisitorBizId": "v1"})
    assert error.code == "InvalidParameterValue"
    draft = server.create_app("cloud-draft", publish=False)
    error = sdk_error(client, "GetWsToken", {"Type": 5, "BotAppKey": draft["app_key"], "VisitorBizId": "v1"})
    assert error.code == "FailedOperation"


def chat(server: ParleyServer, app_key: str, session_id: str, content: str) -> None:
    stream = post_chat(server.url, {"bot_app_key": app_key, "visitor_biz_id": "v-hist", "session_id": session_id, "content": content})
    assert stream.answer_replies[-1]["is_final"]


def test_get_msg_record_pages_backwards_oldest_first(server, client, published, model):
    for n in range(3):
        chat(server, published["app_key"], "s-history", f"question {n}")
    base = {"Type": 5, "SessionId": "s-history", "BotAppKey": published["app_key"]}
    newest = call(client, "GetMsgRecord", {**base, "Count": 4})["Records"]
    assert [r["Content"] for r in newest] == ["question 1", "Echo: question 1", "question 2", "Echo: question 2"]
    assert [r["IsFromSelf"] for r in newest] == [True, False, True, False]
    answer = newest[-1]
    assert answer["RelatedRecordId"] == newest[-2]["RecordId"]
    assert answer["ReplyMethod"] == 1 and answer["CanRating"] is True and newest[-2]["CanRating"] is False
    assert answer["TokenStat"]["StatusSummary"] == "success"
    assert answer["TokenStat"]["Procedures"][0]["Name"] == "large_language_model"
    assert float(answer["Timestamp"]) > 1_700_000_000
    older = call(client, "GetMsgRecord", {**base, "Count": 4, "LastRecordId": newest[0]["RecordId"]})["Records"]
    assert [r["Content"] for r in older] == ["question 0", "Echo: question 0"]
    oldest = call(client, "GetMsgRecord", {**base, "Count": 4, "LastRecordId": older[0]["RecordId"]})["Records"]
    assert oldest == []
    nothing = call(client, "GetMsgRecord", {**base, "SessionId": "s-never", "Count": 10})
    assert nothing["Records"] == []


def test_get_msg_record_checks_its_parameters(client, published):
    base = {"Type": 5, "SessionId": "s-history", "BotAppKey": published["app_key"], "Count": 10}
    assert sdk_error(client, "GetMsgRecord", {**base, "Count": 0}).code == "InvalidParameterValue"
    assert sdk_error(client, "GetMsgRecord", {**base, "Count": 1001}).code == "InvalidParameterValue"
    assert sdk_error(client, "GetMsgRecord", {**base, "SessionId": "bad id!"}).code == "InvalidParameterValue"
    assert sdk_error(client, "GetMsgRecord", {**base, "LastRecordId": "x1"}).code == "InvalidParameterValue"
    without_session = dict(base)
    del without_session["SessionId"]
    assert sdk_error(client, "GetMsgRecord", without_session).code == "MissingParameter"


def test_rate_msg_record_scores_an_answer_and_refuses_a_question(server, client, published, model):
    chat(server, published["app_key"], "s-rate", "rate me")
    base = {"Type": 5, "SessionId": "s-rate", "BotAppKey": published["app_key"], "Count": 10}
    question, answer = call(client, "GetMsgRecord", base)["Records"]
    key = published["app_key"]
    call(client, "RateMsgRecord", {"BotAppKey": key, "RecordId": answer["RecordId"], "Score": 2, "Reasons": ["wrong"]})
    rated = call(client, "GetMsgRecord", base)["Records"][1]
    assert rated["Score"] == 2 and rated["Reasons"] == ["wrong"]
    call(client, "RateMsgRecord", {"BotAppKey": key, "RecordId": answer["RecordId"], "Score": 0})
    withdrawn = call(client, "GetMsgRecord", base)["Records"][1]
    assert withdrawn["Score"] == 0 and withdrawn["Reasons"] == []
    refused = sdk_error(client, "RateMsgRecord", {"BotAppKey": key, "RecordId": question["RecordId"], "Score": 1})
    assert refused.code == "FailedOperation"
    assert sdk_error(client, "RateMsgRecord", {"BotAppKey": key, "RecordId": answer["RecordId"], "Score": 3}).code == "InvalidParameterValue"
    long_reason = sdk_error(client, "RateMsgRecord", {"BotAppKey": key, "RecordId": answer["RecordId"], "Score": 2, "Reasons": ["x" * 21]})
    assert long_reason.code == "FailedOperation"
    assert sdk_error(client, "RateMsgRecord", {"BotAppKey": key, "RecordId": "1", "Score": 1}).code == "ResourceNotFound"
    assert call(client, "GetMsgRecord", base)["Records"][1]["Score"] == 0


# -- application management ----------------------------------------------------------------


def test_create_modify_release_and_describe_an_app(server, client, model):
    created = call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-made", "Desc": "made by the SDK"}})
    app_id = created["AppBizId"]
    assert app_id.isdigit()
    info = call(client, "DescribeReleaseInfo", {"BotBizId": app_id})
    assert info["Status"] == 1 and info["IsUpdated"] is True and info["LastTime"] == ""
    assert call(client, "DescribeApp", {"AppBizId": app_id})["AppStatus"] == 1

    call(client, "ModifyApp", {
        "AppBizId": app_id, "AppType": "knowledge_qa",
        "BaseConfig": {"Name": "sdk-made", "Avatar": "https://example.com/b.png"},
        "AppConfig": {"KnowledgeQa": {"Greeting": "Hi from the SDK", "OpeningQuestions": ["one", "two"],
                                      "RoleDescription": "Answer briefly."}},
    })
    described = call(client, "DescribeApp", {"AppBizId": app_id})
    assert described["AppConfig"]["KnowledgeQa"]["Greeting"] == "Hi from the SDK"
    assert described["AppConfig"]["KnowledgeQa"]["OpeningQuestions"] == ["one", "two"]
    assert described["BaseConfig"]["Avatar"] == "https://example.com/b.png"

    release = call(client, "CreateRelease", {"BotBizId": app_id, "Desc": "first"})
    assert release["ReleaseBizId"].isdigit()
    info = call(client, "DescribeReleaseInfo", {"BotBizId": app_id})
    assert info["Status"] == 3 and info["IsUpdated"] is False and int(info["LastTime"]) > 1_700_000_000
    released = call(client, "DescribeApp", {"AppBizId": app_id, "IsRelease": True})
    assert released["AppConfig"]["KnowledgeQa"]["Greeting"] == "Hi from the SDK"

    # the same application through the admin face, and it answers chat now
    admin = server.admin("GET", "/admin/apps/sdk-made").json()
    assert admin["id"] == app_id and admin["published"] is True
    assert admin["release"]["system_role"] == "Answer briefly."
    chat(server, described["AppKey"], "s-sdk-made", "hello")


def test_create_app_refuses_duplicates_bad_names_and_other_types(client):
    call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-dup"}})
    assert sdk_error(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-dup"}}).code == "InvalidParameterValue"
    assert sdk_error(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "has spaces"}}).code == "InvalidParameterValue"
    assert sdk_error(client, "CreateApp", {"AppType": "summary", "BaseConfig": {"Name": "sdk-other"}}).code == "InvalidParameterValue"
    assert sdk_error(client, "CreateApp", {"AppType": "knowledge_qa"}).code == "MissingParameter"


def test_modify_app_refuses_an_unknown_model_and_keeps_the_draft(client):
    app_id = call(client, "CreateApp", {"AppType": "knowledge_qa", "BaseConfig": {"Name": "sdk-model"}})["AppBizId"]
    error = sdk_error(client, "ModifyApp", {"AppBizId": app_id, "AppConfig": {"KnowledgeQa": {"Model": {"Name": "no-such-model"}, "Greeting": "changed"}}})
    assert error.code == "InvalidParameterValue"
    assert call(client, "DescribeApp", {"AppBizId": app_id})["AppConfig"]["KnowledgeQa"]["Greeting"] == ""
    call(client, "ModifyApp", {"AppBizId": app_id, "AppConfig": {"KnowledgeQa": {"Model": {"Name": "Deepseek/deepseek-r1-0528"}}}})
    assert call(client, "DescribeApp", {"AppBizId": app_id})["AppConfig"]["KnowledgeQa"]["Model"]["Name"] == "Deepseek/deepseek-r1-0528"


# -- signature checks switched off (adp-chat-client Private mode) ----------------------------


@pytest.fixture(scope="module")
def unchecked_server(scripted_model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    config = default_config(scripted_model) + "\n[cloud_api]\nverify_signatures = false\n"
    server = start_parley(tmp_path_factory.mktemp("cloudapi-private"), config)
    yield server
    server.close()


def test_with_verification_off_any_key_and_unsigned_calls_work(unchecked_server):
    app = unchecked_server.create_app("private-bot")
    anyone = make_client(unchecked_server, secret_id="AKIDwhatever", secret_key="whatever")
    assert call(anyone, "DescribeRobotBizIDByAppKey", {"AppKey": app["app_key"]})["BotBizId"] == app["id"]
    response = httpx.post(unchecked_server.url + "/", json={"AppKey": app["app_key"]},
                          headers={"X-TC-Action": "DescribeRobotBizIDByAppKey", "X-TC-Version": "2023-11-30"})
    assert response.json()["Response"]["BotBizId"] == app["id"]



def test_knowledge_calls_manage_documents_and_pairs_and_resolve_references(server, client, model):
    app = server.create_app("cloud-kb")
    upload = server.admin("POST", "/admin/apps/cloud-kb/kb/documents", params={"name": "hours.txt", "wait": "1"},
                          content=b"The shop opens at nine and closes at six, Monday to Saturday.")
    assert upload.status_code == 201, upload.text
    docs = call(client, "ListDoc", {"BotBizId": app["id"], "PageNumber": 1, "PageSize": 10})
    assert docs["Total"] == "1" and docs["List"][0]["FileName"] == "hours.txt" and docs["List"][0]["Status"] == 12
    assert call(client, "ListDoc", {"BotBizId": app["id"], "Status": [13]})["Total"] == "0"

    qa = call(client, "CreateQA", {"BotBizId": app["id"], "Question": "Do you deliver?", "Answer": "Yes, within 3 days.",
                                   "SimilarQuestions": ["Is there delivery?"]})
    listed = call(client, "ListQA", {"BotBizId": app["id"], "PageNumber": 1, "PageSize": 10})
    assert listed["List"][0]["QaBizId"] == qa["QaBizId"] and listed["List"][0]["SimilarQuestionNum"] == 1

    # a chat turn cites the document; its reference id resolves through DescribeRefer
    model.script("when does the shop open", content="At nine[1].")
    stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": "s-cloud-kb",
                                    "content": "when does the shop open"})
    reference = stream.of("reference")[0]["payload"]["references"][0]
    refer = call(client, "DescribeRefer", {"BotBizId": app["id"], "ReferBizIds": [reference["id"], qa["QaBizId"]]})
    assert refer["List"][0]["DocType"] == 2 and "opens at nine" in refer["List"][0]["PageContent"]
    assert refer["List"][1]["DocType"] == 1 and refer["List"][1]["Answer"] == "Yes, within 3 days."
    records = call(client, "GetMsgRecord", {"Type": 5, "Count": 10, "SessionId": "s-cloud-kb", "BotAppKey": app["app_key"]})
    answer = records["Records"][-1]
    assert answer["References"][0]["Id"] == reference["id"] and answer["QuoteInfos"][0]["Index"] == 1

    call(client, "DeleteQA", {"BotBizId": app["id"], "QaBizIds": [qa["QaBizId"]]})
    assert call(client, "ListQA", {"BotBizId": app["id"]})["Total"] == "0"
    call(client, "DeleteDoc", {"BotBizId": app["id"], "DocBizIds": [docs["List"][0]["DocBizId"]]})
    assert call(client, "ListDoc", {"BotBizId": app["id"]})["Total"] == "0"
    missing = sdk_error(client, "DeleteDoc", {"BotBizId": app["id"], "DocBizIds": ["123"]})
    assert missing.code == "ResourceNotFound"
    bad = sdk_error(client, "DescribeRefer", {"BotBizId": app["id"], "ReferBizIds": ["not-a-number"]})
    assert bad.code == "InvalidParameterValue"


def test_rate_msg_record_does_not_reach_a_cloudbase_record(server, client):
    """Issue 13 item 7: an AppKey holder naming a CloudBase conversation's record id in
    RateMsgRecord rates it (the score lands in the CloudBase record). Ids are time-ordered,
    so a record id is not a secret: the face must be checked."""
    app = server.create_app("rate-across-faces")
    key = server.admin("POST", "/admin/apps/rate-across-faces/cloudbase/keys", json={"kind": "api"}).json()
    base, headers = f"{server.url}/v1/aibot/bots/{key['botId']}", {"Authorization": f"Bearer {key['key']}"}
    conversation = httpx.post(f"{base}/conversation", json={"title": "t"}, headers=headers, timeout=30).json()["conversationId"]
    httpx.post(f"{base}/send-message", json={"msg": "hello", "conversationId": conversation},
               headers={**headers, "Accept": "text/event-stream"}, timeout=60)
    listed = httpx.get(f"{base}/records", params={"sort": "asc", "conversationId": conversation}, headers=headers, timeout=30)
    answer_id = listed.json()["recordList"][-1]["recordId"]
    refused = sdk_error(client, "RateMsgRecord", {"BotAppKey": app["app_key"], "RecordId": answer_id, "Score": 2})
    assert refused.code == "ResourceNotFound"
    stored = server.admin("GET", f"/admin/apps/rate-across-faces/sessions/{conversation}/records", params={"face": "cloudbase"})
    assert [r["score"] for r in stored.json()] == [0, 0]
