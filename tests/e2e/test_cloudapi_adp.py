"""The `adp` (2026-05-20) and `lkeap` (2024-05-22) cloud API services, driven by the official
tencentcloud-sdk-python-adp and -lkeap clients with signatures verified: the calls adp-chat-client
v0.4.0+ makes around a chat (start-up, agent and conversation, uploads, titles)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio
from tencentcloud.adp.v20260520 import adp_client
from tencentcloud.adp.v20260520 import models as adp_models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lke.v20231130 import lke_client
from tencentcloud.lke.v20231130 import models as lke_models
from tencentcloud.lkeap.v20240522 import lkeap_client
from tencentcloud.lkeap.v20240522 import models as lkeap_models

from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_v2_chat

SECRET_ID = "AKIDadptest"
SECRET_KEY = "adp-test-secret-key"
CONFIG = f"""
[cloud_api]
lkeap_model = "Deepseek/deepseek-r1-0528"

[[cloud_api.credentials]]
secret_id = "{SECRET_ID}"
secret_key = "{SECRET_KEY}"
"""
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    server = start_parley(tmp_path_factory.mktemp("cloudapi-adp"), default_config(scripted_model) + CONFIG, database_args)
    yield server
    server.close()


def _profile(server: ParleyServer) -> ClientProfile:
    return ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.url.removeprefix("http://"), reqTimeout=60))


def _credential(secret_key: str = SECRET_KEY) -> credential.Credential:
    return credential.Credential(SECRET_ID, secret_key)


@pytest.fixture(scope="module")
def adp(server: ParleyServer) -> adp_client.AdpClient:
    return adp_client.AdpClient(_credential(), "ap-guangzhou", _profile(server))


@pytest.fixture(scope="module")
def lke(server: ParleyServer) -> lke_client.LkeClient:
    return lke_client.LkeClient(_credential(), "ap-guangzhou", _profile(server))


@pytest.fixture(scope="module")
def lkeap(server: ParleyServer) -> lkeap_client.LkeapClient:
    return lkeap_client.LkeapClient(_credential(), "ap-jakarta", _profile(server))


def call(client: Any, models: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Calls `action` through the SDK's typed request and response models; returns the response as JSON."""
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    return json.loads(getattr(client, action)(request).to_json_string())


def adp_call(client: adp_client.AdpClient, action: str, params: dict[str, Any]) -> dict[str, Any]:
    return call(client, adp_models, action, params)


def adp_error(client: adp_client.AdpClient, action: str, params: dict[str, Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        adp_call(client, action, params)
    return info.value


@pytest.fixture(scope="module")
def app(server: ParleyServer) -> dict[str, Any]:
    return server.create_app("adp-bot", greeting="Welcome to Parley", avatar="https://example.com/bot.png",
                             opening_questions=["What can you do?", "Who made you?"], description="A test bot")


# -- adp: start-up -------------------------------------------------------------------------------


def test_describe_app_gives_what_the_client_shows_at_start_up(adp, lke, app):
    # the client's get_info: DescribeRobotBizIDByAppKey (lke), then DescribeApp (adp) with that id
    app_id = call(lke, lke_models, "DescribeRobotBizIDByAppKey", {"AppKey": app["app_key"]})["BotBizId"]
    described = adp_call(adp, "DescribeApp", {"AppId": app_id, "FieldMask": {"Paths": ["AppConfig"]}})["App"]
    assert described["Metadata"]["Name"] == "adp-bot"
    assert described["Metadata"]["Avatar"] == "https://example.com/bot.png"
    assert described["Metadata"]["AppMode"] == 1 and described["Metadata"]["AppId"] == app_id
    assert described["Config"]["Greeting"] == {"Greeting": "Welcome to Parley",
                                               "OpeningQuestionList": ["What can you do?", "Who made you?"]}
    assert described["Status"]["Status"] == 2
    assert described["Config"]["Model"]["GenerateModel"]["Model"]["ModelId"] == "scripted"
    assert described["Config"]["Experience"]["Conversation"]["InputBoxConfig"]["InputBoxButtons"] == [1, 2]
    assert described["SecretInfo"] is None  # not in the mask
    everything = adp_call(adp, "DescribeApp", {"AppId": app_id})["App"]
    assert everything["SecretInfo"]["AppKey"] == app["app_key"] and everything["Config"]["Greeting"]


def test_describe_app_serves_the_release_unless_the_development_domain_is_asked(server, adp):
    app = server.create_app("adp-domains", greeting="released greeting")
    server.create_app("adp-domains", publish=False, greeting="draft greeting")

    def greeting(params: dict[str, Any]) -> str:
        return adp_call(adp, "DescribeApp", {"AppId": app["id"], **params})["App"]["Config"]["Greeting"]["Greeting"]

    assert greeting({}) == "released greeting"
    assert greeting({"Domain": 2}) == "released greeting"
    assert greeting({"Domain": 1}) == "draft greeting"
    unpublished = server.create_app("adp-unpublished", publish=False, greeting="hi")
    shown = adp_call(adp, "DescribeApp", {"AppId": unpublished["id"]})["App"]
    assert shown["Status"]["Status"] == 1 and shown["Config"]["Greeting"]["Greeting"] == "hi"
    assert adp_error(adp, "DescribeApp", {"AppId": unpublished["id"], "Domain": 2}).code == "ResourceNotFound"


def test_describe_app_refuses_unknown_apps_and_mask_paths(adp, app):
    assert adp_error(adp, "DescribeApp", {"AppId": "123"}).code == "ResourceNotFound"
    assert adp_error(adp, "DescribeApp", {"AppId": "my-app"}).code == "InvalidParameterValue"
    assert adp_error(adp, "DescribeApp", {"AppId": app["id"], "FieldMask": {"Paths": ["Secrets"]}}).code == "InvalidParameterValue"
    assert adp_error(adp, "DescribeApp", {"AppId": app["id"], "Domain": 3}).code == "InvalidParameterValue"
    assert adp_error(adp, "DescribeApp", {}).code == "MissingParameter"


def test_adp_calls_are_signed_for_the_adp_service(server, app):
    forged = adp_client.AdpClient(_credential("not-the-key"), "ap-guangzhou", _profile(server))
    assert adp_error(forged, "DescribeApp", {"AppId": app["id"]}).code == "AuthFailure.SignatureFailure"


def test_an_action_is_found_only_under_its_own_version(adp, app):
    # GetMsgRecord is lke 2023-11-30, not adp 2026-05-20; DescribeApp is in both, with different shapes
    with pytest.raises(TencentCloudSDKException) as info:
        adp.call_json("GetMsgRecord", {"Type": 5, "Count": 1, "SessionId": "s1", "BotAppKey": app["app_key"]})
    assert info.value.code == "InvalidAction"


# -- adp: agent, conversation, history -------------------------------------------------------------


def test_agent_then_conversation_then_a_turn_whose_records_lke_reads_and_rates(server, adp, lke, app, model):
    copied = adp_call(adp, "CopyAgentFromApp", {"AppId": app["id"], "Kind": 1})
    agent_id = copied["ParentAgentId"]
    assert agent_id
    assert adp_call(adp, "CopyAgentFromApp", {"AppId": app["id"], "Kind": 1})["ParentAgentId"] == agent_id

    detail = adp_call(adp, "DescribeAgentDetail", {"AppId": app["id"], "AgentId": agent_id})["Agent"]
    assert detail["AgentId"] == agent_id and detail["Profile"]["Name"] == "adp-bot"
    assert detail["Profile"]["IconUrl"] == "https://example.com/bot.png"
    assert detail["Model"]["ModelId"] == "scripted" and detail["Model"]["ContextWordsLimit"] == 200
    assert detail["SkillList"] == [] and detail["ToolList"] == [] and detail["PluginList"] == []

    conversation_id = adp_call(adp, "CreateConversation", {"Type": 1, "AppId": app["id"], "AgentId": agent_id})["ConversationId"]
    assert UUID.match(conversation_id)
    assert adp_call(adp, "CreateConversation", {"Type": 1, "AppId": app["id"]})["ConversationId"] != conversation_id

    # As adp-chat-client v0.6.0 sends it in Private mode: a v2 body on the v1 path.
    stream = post_v2_chat(server.url, {"ConversationId": conversation_id, "AppKey": app["app_key"], "VisitorId": "v-adp",
                                       "Contents": [{"Type": "text", "Text": "hello from a UUID"}]}, path="/v1/qbot/chat/sse")
    assert stream.names()[-2:] == ["response.completed", "[DONE]"], stream.names()
    completed = stream.of("response.completed")[0]["Response"]
    base = {"Type": 5, "Count": 10, "SessionId": conversation_id, "BotAppKey": app["app_key"]}
    question, answer = call(lke, lke_models, "GetMsgRecord", base)["Records"]
    assert question["Content"] == "hello from a UUID" and answer["Content"] == "Echo: hello from a UUID"
    assert answer["RecordId"] == completed["RecordId"]
    call(lke, lke_models, "RateMsgRecord", {"BotAppKey": app["app_key"], "RecordId": answer["RecordId"], "Score": 1})
    assert call(lke, lke_models, "GetMsgRecord", base)["Records"][1]["Score"] == 1


def test_create_conversation_finds_the_app_by_the_injected_app_key(adp, app):
    # Private mode injects AppKey and UserId; AppId is then the client's own ApplicationId
    made = adp_call(adp, "CreateConversation", {"Type": 5, "AppId": "my-chat-client-app", "AppKey": app["app_key"],
                                                "UserId": "account-1"})
    assert UUID.match(made["ConversationId"])


def test_agent_and_conversation_calls_refuse_what_parley_does_not_have(adp, app):
    assert adp_error(adp, "CopyAgentFromApp", {"AppId": "42"}).code == "ResourceNotFound"
    assert adp_error(adp, "CopyAgentFromApp", {"AppId": app["id"], "Kind": 7}).code == "InvalidParameterValue"
    assert adp_error(adp, "DescribeAgentDetail", {"AppId": app["id"], "AgentId": "999"}).code == "ResourceNotFound"
    assert adp_error(adp, "DescribeAgentDetail", {"AppId": app["id"]}).code == "MissingParameter"
    assert adp_error(adp, "CreateConversation", {"Type": 1, "AppId": app["id"], "AgentId": "999"}).code == "ResourceNotFound"
    assert adp_error(adp, "CreateConversation", {"Type": 20, "AppId": app["id"]}).code == "UnsupportedOperation"
    assert adp_error(adp, "CreateConversation", {"Type": 1, "AppId": "1", "AppKey": "no-such-key"}).code == "ResourceNotFound"


def test_create_web_socket_token_opens_one_websocket_connection(server, adp, app):
    made = adp_call(adp, "CreateWebSocketToken", {"Type": 5, "AppKey": app["app_key"], "UserId": "ws-user"})
    assert made["Token"] and made["UserId"] == "ws-user" and made["AppId"] == app["id"]

    async def connect() -> bool:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(server.url, socketio_path="v1/qbot/chat/conn", transports=["websocket"],
                                 auth={"token": made["Token"]}, wait_timeout=20)
        except socketio.exceptions.ConnectionError:
            return False
        await client.disconnect()
        return True

    assert asyncio.run(connect()) is True
    assert asyncio.run(connect()) is False  # one-time
    anonymous = adp_call(adp, "CreateWebSocketToken", {"Type": 1, "AppId": app["id"]})
    assert anonymous["UserId"]


def test_create_web_socket_token_needs_a_published_app(server, adp):
    draft = server.create_app("adp-ws-draft", publish=False)
    assert adp_error(adp, "CreateWebSocketToken", {"Type": 5, "AppId": draft["id"]}).code == "FailedOperation"


# -- adp: uploads -----------------------------------------------------------------------------------


def test_storage_credential_gives_an_upload_url_and_the_files_url(server, adp, app):
    # not in the SDK's models (the client calls it through its generic request); the SDK signs it
    granted = adp.call_json("DescribeStorageCredential",
                            {"AppId": app["id"], "FileType": "png", "IsPublic": True, "TypeKey": "realtime"})["Response"]
    assert granted["StoragePath"].startswith("/public/realtime/") and granted["StoragePath"].endswith(".png")
    assert granted["UploadPath"] == granted["StoragePath"] and granted["Bucket"] and granted["Region"]
    assert granted["Credentials"]["TmpSecretId"] and granted["ExpiredTime"] > granted["StartTime"]
    put = httpx.put(granted["UploadUrl"], content=b"\x89PNG picture")
    assert put.status_code == 200
    assert httpx.get(granted["FileUrl"]).content == b"\x89PNG picture"

    # claw mode asks again with CosUrl for the file's download URL
    again = adp.call_json("DescribeStorageCredential", {"AppId": app["id"], "FileType": "png", "IsPublic": True,
                                                        "TypeKey": "realtime", "CosUrl": granted["UploadPath"]})["Response"]
    assert httpx.get(again["DownloadUrl"]).content == b"\x89PNG picture"

    def refused(params: dict[str, Any]) -> str:
        with pytest.raises(TencentCloudSDKException) as info:
            adp.call_json("DescribeStorageCredential", {"AppId": app["id"], "FileType": "png", **params})
        return info.value.code

    assert refused({"FileType": "p n g"}) == "InvalidParameterValue"
    assert refused({"TypeKey": "elsewhere"}) == "InvalidParameterValue"
    assert refused({"CosUrl": "/public/realtime/1/2/3/forged.png"}) == "InvalidParameterValue"
    assert refused({"AppId": "77"}) == "ResourceNotFound"


# -- lkeap: ChatCompletions ---------------------------------------------------------------------------


def chat_request(content: str, model_name: str = "deepseek-v3-0324", stream: bool = True) -> lkeap_models.ChatCompletionsRequest:
    request = lkeap_models.ChatCompletionsRequest()
    request.from_json_string(json.dumps({
        "Model": model_name, "Stream": stream,
        "Messages": [{"Role": "system", "Content": "Title the conversation."}, {"Role": "user", "Content": content}],
    }))
    return request


def test_streaming_chat_completions_read_by_the_sdks_sse_reader(lkeap, model):
    model.script("title this stream", content="A short title", chunk_size=4, reasoning="thinking first")
    # the SDK reads SSE only when Content-Type is exactly text/event-stream; else it parses JSON
    events = list(lkeap.ChatCompletions(chat_request("title this stream")))
    assert all(set(event) <= {"data"} for event in events)  # data lines only: no event names, ids
    chunks = [json.loads(event["data"]) for event in events if "data" in event]  # no [DONE] either
    assert "".join(c["Choices"][0]["Delta"]["Content"] for c in chunks) == "A short title"
    assert "".join(c["Choices"][0]["Delta"]["ReasoningContent"] for c in chunks) == "thinking first"
    assert len(chunks) > 3
    assert all("Content" in c["Choices"][0]["Delta"] for c in chunks)  # the client indexes it on every chunk
    assert [c["Choices"][0]["FinishReason"] for c in chunks[-1:]] == ["stop"]
    assert chunks[-1]["Usage"]["TotalTokens"] > 0 and chunks[-1]["Model"] == "deepseek-v3-0324"
    # Tencent's model name is served by the configured lkeap_model
    assert model.stats()["requests"][-1]["model"] == "deepseek-r1"


def test_non_streaming_chat_completions_answer_a_message(lkeap, model):
    model.script("title this whole", content="Whole title")
    answer = json.loads(lkeap.ChatCompletions(chat_request("title this whole", "scripted", stream=False)).to_json_string())
    assert answer["Choices"][0]["Message"] == {"Role": "assistant", "Content": "Whole title", "ReasoningContent": "",
                                               "SearchResults": None}
    assert answer["Choices"][0]["FinishReason"] == "stop" and answer["Usage"]["TotalTokens"] > 0
    assert model.stats()["requests"][-1]["model"] == "scripted"  # a configured model's name is used as is


def test_chat_completions_errors_are_sdk_exceptions_even_when_streaming(lkeap, model):
    empty = lkeap_models.ChatCompletionsRequest()
    empty.from_json_string(json.dumps({"Model": "deepseek-v3-0324", "Stream": True, "Messages": []}))
    with pytest.raises(TencentCloudSDKException) as info:
        lkeap.ChatCompletions(empty)
    assert info.value.code == "MissingParameter"
    model.script("title that fails", status=500)
    with pytest.raises(TencentCloudSDKException) as info:
        lkeap.ChatCompletions(chat_request("title that fails"))
    assert info.value.code == "FailedOperation"


def test_a_model_failing_mid_stream_ends_it_with_an_error_event(lkeap, model):
    model.script("title that drops", content="abcdefghijkl", chunk_size=2, drop_after=2)
    chunks = [json.loads(event["data"]) for event in lkeap.ChatCompletions(chat_request("title that drops")) if "data" in event]
    assert chunks[0]["Choices"][0]["Delta"]["Content"] == "ab"
    assert chunks[-1]["Response"]["Error"]["Code"] == "FailedOperation"


def test_a_model_going_silent_mid_stream_ends_it_with_an_error_event(lkeap, model):
    # scripted-fast-timeout waits one second between chunks; the first chunk was awaited by another task
    model.script("title that hangs", content="abcdefghijkl", chunk_size=2, hang_after=1)
    request = chat_request("title that hangs", "scripted-fast-timeout")
    chunks = [json.loads(event["data"]) for event in lkeap.ChatCompletions(request) if "data" in event]
    assert chunks[0]["Choices"][0]["Delta"]["Content"] == "ab"
    assert chunks[-1]["Response"]["Error"] == {"Code": "FailedOperation", "Message": "The model did not answer in time."}
