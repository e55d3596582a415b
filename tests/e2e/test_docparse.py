"""Real-time documents: DescribeStorageCredential, the upload with an S3 client (boto3), docParse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lke.v20231130 import lke_client, models

from tests.knowledge import files as samples
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_chat, read_by_json_type

CONFIG = """
[cloud_api]
verify_signatures = false
"""


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    server = start_parley(tmp_path_factory.mktemp("docparse"), default_config(scripted_model) + CONFIG, database_args)
    yield server
    server.close()


@pytest.fixture(scope="module")
def app(server: ParleyServer) -> dict[str, Any]:
    return server.create_app("doc-bot")


def credential_for(server: ParleyServer, app: dict[str, Any], file_type: str = "md") -> dict[str, Any]:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.url.removeprefix("http://")))
    client = lke_client.LkeClient(credential.Credential("AKIDany", "any"), "ap-guangzhou", profile)
    request = models.DescribeStorageCredentialRequest()
    request.from_json_string(json.dumps({"BotBizId": app["id"], "FileType": file_type, "IsPublic": True, "TypeKey": "realtime"}))
    return json.loads(client.DescribeStorageCredential(request).to_json_string())


def s3_for(server: ParleyServer, grant: dict[str, Any]):
    """An S3 client set up the way adp-chat-client sets up its own (path-style, endpoint = Parley)."""
    creds = grant["Credentials"]
    return boto3.client(
        "s3", endpoint_url=server.url, region_name=grant["Region"],
        aws_access_key_id=creds["TmpSecretId"], aws_secret_access_key=creds["TmpSecretKey"],
        aws_session_token=creds["Token"] or None, config=Config(s3={"addressing_style": "path"}),
    )


def doc_parse(server: ParleyServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/v1/qbot/chat/docParse", json=body, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return [data for _, data in read_by_json_type(response.content)]


def parse_body(app: dict[str, Any], grant: dict[str, Any], session_id: str = "s-doc", name: str = "notes.md") -> dict[str, Any]:
    return {"session_id": session_id, "bot_app_key": app["app_key"], "request_id": "rd", "cos_bucket": grant["Bucket"],
            "file_type": name.rsplit(".", 1)[-1], "file_name": name, "cos_url": grant["UploadPath"], "cos_hash": "", "e_tag": "", "size": "10"}


def test_multipart_upload_then_doc_parse_gives_a_doc_id(server, app):
    grant = credential_for(server, app)
    assert grant["UploadPath"].startswith("/public/")
    s3 = s3_for(server, grant)
    bucket, key = grant["Bucket"], grant["UploadPath"]  # adp-chat-client keeps the leading "/"
    text = "# Notes\n\nThe launch code is PARLEY-42.\n"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=text.encode())
    assert part["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    assert httpx.get(grant["FileUrl"]).text == text

    events = doc_parse(server, parse_body(app, grant))
    assert [e["payload"]["status"] for e in events] == ["RUNNING", "SUCCESS"]
    final = events[-1]["payload"]
    assert final["is_final"] is True and final["doc_id"].isdigit() and final["error_message"] == ""
    assert final["process"] == 100


def test_a_single_put_works_and_an_unparsable_file_fails_cleanly(server, app):
    grant = credential_for(server, app, "pdf")
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"not really a pdf")
    final = doc_parse(server, parse_body(app, grant, name="broken.pdf"))[-1]["payload"]
    assert final["status"] == "FAILED" and final["is_final"] is True and final["error_message"]


def test_writing_outside_a_granted_key_is_denied(server, app):
    grant = credential_for(server, app)
    s3 = s3_for(server, grant)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=grant["Bucket"], Key="/public/realtime/1/9999999999/" + "0" * 32 + "/x.md", Body=b"x")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    forged = grant["UploadPath"].replace("/public/realtime/", "/public/realtime/9")
    with pytest.raises(ClientError):
        s3.put_object(Bucket=grant["Bucket"], Key=forged, Body=b"x")


def test_doc_parse_refuses_bad_requests_with_error_events(server, app):
    grant = credential_for(server, app)
    bad_session = doc_parse(server, parse_body(app, grant, session_id="bad id!"))
    assert bad_session[-1]["type"] == "error" and bad_session[-1]["error"]["code"] == 400
    unknown_app = doc_parse(server, {**parse_body(app, grant), "bot_app_key": "nope"})
    assert unknown_app[-1]["error"]["code"] == 4505004
    nothing_uploaded = doc_parse(server, parse_body(app, grant))
    assert nothing_uploaded[-1]["payload"]["status"] == "FAILED"
    other = server.create_app("doc-other")
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"# hi\n\ntext")
    wrong_app = doc_parse(server, {**parse_body(app, grant), "bot_app_key": other["app_key"]})
    assert wrong_app[-1]["payload"]["status"] == "FAILED"


def test_a_parsed_document_goes_into_the_chat_and_its_history(server, app, model):
    grant = credential_for(server, app)
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"# Plan\n\nShip on Friday.")
    final = doc_parse(server, parse_body(app, grant, session_id="s-doc-chat", name="plan.md"))[-1]["payload"]
    info = {"file_name": "plan.md", "file_size": "23", "file_url": grant["FileUrl"], "file_type": "md", "doc_id": final["doc_id"]}
    stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v-doc", "session_id": "s-doc-chat",
                                    "content": "what is the plan?", "file_infos": [info]})
    assert stream.status == 200
    assert stream.echo["file_infos"] == [info]
    # the document's text reached the model with the question; the answer is a real-time-document reply
    prompt = model.stats()["requests"][-1]["messages"][-1]["content"]
    assert "[Attached document: plan.md]" in prompt and "Ship on Friday." in prompt and prompt.endswith("what is the plan?")
    final_reply = stream.answer_replies[-1]
    assert final_reply["reply_method"] == 14 and final_reply["can_rating"] is False
    assert [p["name"] for p in stream.of("token_stat")[-1]["payload"]["procedures"]] == ["file", "large_language_model"]
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.url.removeprefix("http://")))
    client = lke_client.LkeClient(credential.Credential("AKIDany", "any"), "ap-guangzhou", profile)
    request = models.GetMsgRecordRequest()
    request.from_json_string(json.dumps({"Type": 5, "SessionId": "s-doc-chat", "BotAppKey": app["app_key"], "Count": 10}))
    records = json.loads(client.GetMsgRecord(request).to_json_string())["Records"]
    files = records[0]["FileInfos"]
    assert files[0]["FileName"] == "plan.md" and files[0]["DocId"] == final["doc_id"] and files[0]["FileSize"] == "23"


def test_a_chat_naming_an_unknown_or_foreign_document_is_refused(server, app, model):
    grant = credential_for(server, app)
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"# Secret\n\nOnly for s-owner.")
    final = doc_parse(server, parse_body(app, grant, session_id="s-owner", name="secret.md"))[-1]["payload"]
    for doc_id, session in ((final["doc_id"], "s-other"), ("999", "s-owner")):
        info = {"file_name": "secret.md", "file_size": "1", "file_url": "x", "file_type": "md", "doc_id": doc_id}
        stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v-doc", "session_id": session,
                                        "content": "what does it say?", "file_infos": [info]})
        assert stream.names() == ["error"] and stream.of("error")[0]["error"]["code"] == 400
        assert server.records("doc-bot", session) == []
    assert model.stats()["calls"] == 0


# Each file type adp-chat-client sends, as it names it when it asks DescribeStorageCredential:
# v0.3.1 the MIME subtype (`svg+xml`, `vnd.openxmlformats-...`), v0.6.0 the extension for the
# types it knows (its document picker: pdf, docx, pptx, xls, xlsx, txt, md, csv, json; images
# are sent as they are) and the subtype otherwise. docParse gets the file name's extension.
ATTACHMENTS = [
    pytest.param("svg+xml", "logo.svg", lambda: samples.LOGO_SVG.encode(), "Talk to us", id="svg+xml"),
    pytest.param("vnd.openxmlformats-officedocument.wordprocessingml.document", "policy.docx", samples.docx_bytes,
                 "15 days of paid annual leave", id="docx-by-mime-subtype"),
    pytest.param("pdf", "manual.pdf", samples.pdf_bytes, "battery lasts twelve hours", id="pdf"),
    pytest.param("pptx", "roadmap.pptx", samples.pptx_bytes, "Ship the v2 face in June.", id="pptx"),
    pytest.param("xls", "tea.xls", samples.xls_bytes, "Price per cup: 12 yuan", id="xls"),
    pytest.param("xlsx", "prices.xlsx", samples.xlsx_bytes, "Price per kilo: 3 yuan", id="xlsx"),
    pytest.param("txt", "notes.txt", lambda: samples.NOTES_TXT.encode(), "parley-guest-2024", id="txt"),
    pytest.param("md", "guide.md", lambda: samples.GUIDE_MD.encode(), "press Reset password", id="md"),
    pytest.param("csv", "stores.csv", samples.csv_bytes, "朝阳区建国路88号", id="csv"),
    pytest.param("json", "settings.json", lambda: samples.SETTINGS_JSON.encode(), "Welcome aboard", id="json"),
    pytest.param("png", "photo.png", lambda: samples.PNG, None, id="png-without-text"),
]


@pytest.mark.parametrize(("file_type", "name", "build", "expected"), ATTACHMENTS)
def test_every_file_type_the_official_client_sends_is_uploaded_parsed_and_read(server, app, model, file_type, name, build, expected):
    grant = credential_for(server, app, file_type)
    extension = name.rsplit(".", 1)[-1]
    assert grant["UploadPath"].endswith("." + extension)
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=build())
    session = "s-" + extension
    final = doc_parse(server, parse_body(app, grant, session_id=session, name=name))[-1]["payload"]
    assert final["status"] == "SUCCESS", final
    info = {"file_name": name, "file_size": "1", "file_url": grant["FileUrl"], "file_type": extension, "doc_id": final["doc_id"]}
    stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v-doc", "session_id": session,
                                    "content": "what is in it?", "file_infos": [info]})
    assert stream.status == 200 and stream.answer_replies
    prompt = model.stats()["requests"][-1]["messages"][-1]["content"]
    if expected is None:  # a picture: the model is told it was attached, and that it shows no text
        assert prompt == f"[Attached file: {name} (no text could be read from it)]\n\nwhat is in it?"
    else:
        assert prompt.startswith(f"[Attached document: {name}]\n") and expected in prompt


def test_an_old_binary_office_file_is_accepted_and_fails_to_parse_with_a_reason(server, app):
    grant = credential_for(server, app, "msword")  # v0.3.1's FileType for a .doc
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"\xd0\xcf\x11\xe0 old word")
    final = doc_parse(server, parse_body(app, grant, name="old.doc"))[-1]["payload"]
    assert final["status"] == "FAILED" and "unsupported file type 'doc'" in final["error_message"]


def test_a_document_parsed_without_a_session_goes_to_the_first_session_naming_it_with_its_url(server, app, model):
    # adp-chat-client parses an upload before its conversation exists, so docParse has no session_id
    grant = credential_for(server, app)
    s3_for(server, grant).put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=b"# Menu\n\nSoup on Tuesday.")
    body = parse_body(app, grant, name="menu.md")
    del body["session_id"]
    final = doc_parse(server, body)[-1]["payload"]
    assert final["status"] == "SUCCESS" and final["session_id"] == ""

    def ask(session: str, file_url: str):
        info = {"file_name": "menu.md", "file_size": "24", "file_url": file_url, "file_type": "md", "doc_id": final["doc_id"]}
        return post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v-doc", "session_id": session,
                                      "content": "what is on the menu?", "file_infos": [info]})

    assert ask("s-no-url", "https://example.com/menu.md").names() == ["error"]  # the id alone does not claim it
    first = ask("s-first-naming", grant["FileUrl"])
    assert first.answer_replies[-1]["is_final"]
    assert "Soup on Tuesday." in model.stats()["requests"][-1]["messages"][-1]["content"]
    assert ask("s-first-naming", grant["FileUrl"]).answer_replies[-1]["is_final"]  # again in its session
    taken = ask("s-later", grant["FileUrl"])
    assert taken.names() == ["error"] and taken.of("error")[0]["error"]["code"] == 400
