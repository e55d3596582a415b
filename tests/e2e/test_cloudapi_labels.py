"""Attribute labels, ModifyQA and SaveDoc/DescribeDoc/ModifyDoc through the official
tencentcloud-sdk-python-lke client; chats over the ADP SSE endpoint check what they change."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from tencentcloud.lke.v20231130 import lke_client

from tests.e2e.test_cloudapi import CLOUD_API_CONFIG, call, make_client, sdk_error
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import Stream, post_chat


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, scripted_model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    """Every test here runs on both databases (a Parley with the cloud API on, on each)."""
    database = ["--no-demo", "--database-url", request.getfixturevalue("postgres").new_database()] if request.param == "postgresql" else None
    server = start_parley(tmp_path_factory.mktemp("cloudapi-labels"), default_config(scripted_model) + CLOUD_API_CONFIG, database)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server: ParleyServer) -> lke_client.LkeClient:
    return make_client(server)


def new_app(server: ParleyServer, **config: Any) -> dict[str, Any]:
    return server.create_app("labels-" + uuid.uuid4().hex[:8], **config)


def create_department(client, app: dict[str, Any], name: str = "department") -> dict[str, Any]:
    """An attribute with labels hr (similar: people), it; returns {"id", "hr", "it"}."""
    created = call(client, "CreateAttributeLabel", {
        "BotBizId": app["id"], "AttrName": name,
        "Labels": [{"LabelName": "hr", "SimilarLabels": ["people"]}, {"LabelName": "it"}],
    })
    ids = {label["LabelName"]: label["LabelBizId"] for label in created["Labels"]}
    return {"id": created["AttrBizId"], **ids}


def refer(attribute: dict[str, Any], *labels: str) -> list[dict[str, Any]]:
    return [{"Source": 1, "AttributeBizId": attribute["id"], "LabelBizIds": [attribute[label] for label in labels]}]


def ask(server: ParleyServer, app: dict[str, Any], content: str, **fields: Any) -> Stream:
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v-labels", "session_id": "s-" + uuid.uuid4().hex[:12],
            "content": content, **fields}
    return post_chat(server.url, body)


def final_reply(stream: Stream) -> dict[str, Any]:
    return stream.answer_replies[-1]


# -- attribute labels ------------------------------------------------------------------------


def test_attribute_labels_round_trip_through_create_list_describe_modify_delete(server, client):
    app = new_app(server)
    dept = create_department(client, app)
    assert dept["id"].isdigit() and dept["hr"].isdigit() and dept["it"].isdigit()
    region = call(client, "CreateAttributeLabel", {"BotBizId": app["id"], "AttrName": "销售 区域",
                                                   "Labels": [{"LabelName": "north"}]})

    listed = call(client, "ListAttributeLabel", {"BotBizId": app["id"], "PageNumber": 1, "PageSize": 10})
    assert listed["Total"] == "2"
    first = listed["List"][0]
    assert (first["AttrBizId"], first["AttrKey"], first["AttrName"]) == (dept["id"], "department", "department")
    assert first["LabelNames"] == ["hr", "it"] and first["LabelTotalCount"] == "2" and first["Status"] == 3
    assert listed["List"][1]["AttrKey"] == f"attr_{region['AttrBizId']}"  # a name that is not a valid key
    assert call(client, "ListAttributeLabel", {"BotBizId": app["id"], "PageNumber": 2, "PageSize": 1})["List"][0][
        "AttrName"] == "销售 区域"
    assert [a["AttrName"] for a in call(client, "ListAttributeLabel", {"BotBizId": app["id"], "Query": "nor"})["List"]] \
        == ["销售 区域"]
    assert call(client, "ListAttributeLabel", {"BotBizId": app["id"], "LabelSize": 1})["List"][0]["LabelNames"] == ["hr"]

    described = call(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"]})
    assert described["AttrKey"] == "department" and described["LabelNumber"] == "2"
    assert described["Labels"][0] == {"LabelBizId": dept["hr"], "LabelName": "hr", "SimilarLabels": ["people"]}
    similar = call(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"],
                                                      "Query": "peop", "QueryScope": "similar"})
    assert [label["LabelName"] for label in similar["Labels"]] == ["hr"]
    page = call(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"], "Limit": 1,
                                                   "LastLabelBizId": dept["hr"]})
    assert [label["LabelName"] for label in page["Labels"]] == ["it"]

    modified = call(client, "ModifyAttributeLabel", {
        "BotBizId": app["id"], "AttributeBizId": dept["id"], "AttrName": "Department", "DeleteLabelBizIds": [dept["it"]],
        "Labels": [{"LabelBizId": dept["hr"], "LabelName": "human-resources", "SimilarLabels": ["people", "staff"]},
                   {"LabelName": "sales"}],
    })
    assert [(label["LabelName"], label["SimilarLabels"]) for label in modified["Labels"]] == [
        ("human-resources", ["people", "staff"]), ("sales", [])]
    assert modified["Labels"][0]["LabelBizId"] == dept["hr"]  # changed in place
    described = call(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"]})
    assert described["AttrName"] == "Department" and described["AttrKey"] == "department"  # the key never changes
    assert [label["LabelName"] for label in described["Labels"]] == ["human-resources", "sales"]

    call(client, "DeleteAttributeLabel", {"BotBizId": app["id"], "AttributeBizIds": [dept["id"]]})
    assert call(client, "ListAttributeLabel", {"BotBizId": app["id"]})["Total"] == "1"
    gone = sdk_error(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"]})
    assert gone.code == "ResourceNotFound"


def test_bad_attribute_label_calls_are_refused_and_change_nothing(server, client):
    app = new_app(server)
    dept = create_department(client, app)

    def unchanged() -> None:
        described = call(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"]})
        assert described["AttrName"] == "department"
        assert [(label["LabelBizId"], label["LabelName"]) for label in described["Labels"]] == [
            (dept["hr"], "hr"), (dept["it"], "it")]
        assert call(client, "ListAttributeLabel", {"BotBizId": app["id"]})["Total"] == "1"

    cases = [
        ("CreateAttributeLabel", {"BotBizId": app["id"], "AttrName": "department"}, "InvalidParameterValue"),
        ("CreateAttributeLabel", {"BotBizId": app["id"], "AttrName": "x",
                                  "Labels": [{"LabelName": "a"}, {"LabelName": "a"}]}, "InvalidParameterValue"),
        ("CreateAttributeLabel", {"BotBizId": app["id"], "AttrName": "x", "Labels": [{"LabelName": "a|b"}]},
         "InvalidParameterValue"),
        ("CreateAttributeLabel", {"BotBizId": app["id"], "Labels": [{"LabelName": "a"}]}, "MissingParameter"),
        ("CreateAttributeLabel", {"BotBizId": "424242", "AttrName": "x"}, "ResourceNotFound"),
        ("DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": "123"}, "ResourceNotFound"),
        ("DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": "abc"}, "InvalidParameterValue"),
        ("ModifyAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"], "AttrName": "renamed",
                                  "Labels": [{"LabelBizId": "999", "LabelName": "x"}]}, "InvalidParameterValue"),
        ("ModifyAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"], "AttrName": "renamed",
                                  "DeleteLabelBizIds": [dept["hr"]], "Labels": [{"LabelName": "it"}]},
         "InvalidParameterValue"),
        ("ModifyAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": "123", "AttrName": "x"}, "ResourceNotFound"),
        ("DeleteAttributeLabel", {"BotBizId": app["id"], "AttributeBizIds": [dept["id"], "123"]}, "ResourceNotFound"),
        ("DeleteAttributeLabel", {"BotBizId": app["id"]}, "MissingParameter"),
    ]
    for action, params, code in cases:
        error = sdk_error(client, action, params)
        assert error.code == code, (action, params, error.message)
        assert error.requestId
        unchanged()


# -- Q&A pairs scoped by attribute labels ------------------------------------------------------


def test_a_pair_labelled_through_attribute_labels_answers_only_in_its_scope(server, client, model):
    app = new_app(server, knowledge={"variable_bindings": {"department": "department"}})
    dept = create_department(client, app)
    qa = call(client, "CreateQA", {"BotBizId": app["id"], "Question": "How many days of leave do I get?",
                                   "Answer": "Twenty-five days a year.", "AttrLabels": refer(dept, "hr")})

    in_scope = final_reply(ask(server, app, "How many days of leave do I get?", custom_variables={"department": "hr"}))
    assert in_scope["reply_method"] == 5 and in_scope["content"] == "Twenty-five days a year."
    by_similar = final_reply(ask(server, app, "How many days of leave do I get?",
                                 custom_variables={"department": "people"}))
    assert by_similar["content"] == "Twenty-five days a year."  # "people" is one of hr's similar labels
    out_of_scope = final_reply(ask(server, app, "How many days of leave do I get?",
                                   custom_variables={"department": "it"}))
    assert out_of_scope["reply_method"] != 5 and out_of_scope["content"].startswith("Echo:")

    # renaming the label renames it on the pair: the new name selects it, the old one no longer does
    call(client, "ModifyAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": dept["id"], "AttrName": "department",
                                          "Labels": [{"LabelBizId": dept["hr"], "LabelName": "human-resources"}]})
    renamed = final_reply(ask(server, app, "How many days of leave do I get?",
                              custom_variables={"department": "human-resources"}))
    assert renamed["content"] == "Twenty-five days a year."
    old_name = final_reply(ask(server, app, "How many days of leave do I get?", custom_variables={"department": "hr"}))
    assert old_name["reply_method"] != 5

    bad = sdk_error(client, "CreateQA", {"BotBizId": app["id"], "Question": "q", "Answer": "a",
                                         "AttrLabels": [{"Source": 1, "AttributeBizId": dept["id"], "LabelBizIds": ["1"]}]})
    assert bad.code == "InvalidParameterValue"
    unknown_attribute = sdk_error(client, "CreateQA", {"BotBizId": app["id"], "Question": "q", "Answer": "a",
                                                       "AttrLabels": [{"Source": 1, "AttributeBizId": "77",
                                                                       "LabelBizIds": [dept["it"]]}]})
    assert unknown_attribute.code == "InvalidParameterValue"
    listed = call(client, "ListQA", {"BotBizId": app["id"]})
    assert listed["Total"] == "1" and listed["List"][0]["QaBizId"] == qa["QaBizId"]


def test_modify_qa_changes_the_pair_in_place_and_chat_gives_the_new_answer(server, client, model):
    app = new_app(server, knowledge={"variable_bindings": {"department": "department"}})
    dept = create_department(client, app)
    qa = call(client, "CreateQA", {"BotBizId": app["id"], "Question": "Where is the office?",
                                   "Answer": "On Main Street.", "SimilarQuestions": ["Office address?"]})
    assert final_reply(ask(server, app, "Where is the office?"))["content"] == "On Main Street."

    call(client, "ModifyQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"], "Question": "Where is the office?",
                              "Answer": "On Harbour Road since May.",
                              "SimilarQuestionModify": {"AddQuestions": ["Where do you work from?"],
                                                        "DeleteQuestions": [{"Question": "Office address?"}]}})
    listed = call(client, "ListQA", {"BotBizId": app["id"]})
    assert listed["Total"] == "1" and listed["List"][0]["QaBizId"] == qa["QaBizId"]  # same id
    assert listed["List"][0]["Answer"] == "On Harbour Road since May."
    assert final_reply(ask(server, app, "Where is the office?"))["content"] == "On Harbour Road since May."
    by_new_similar = final_reply(ask(server, app, "Where do you work from?"))
    assert by_new_similar["reply_method"] == 5 and by_new_similar["content"] == "On Harbour Road since May."
    described = call(client, "DescribeQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"]})
    assert [q["Question"] for q in described["SimilarQuestions"]] == ["Where do you work from?"]  # the other went
    sim_id = described["SimilarQuestions"][0]["SimBizId"]
    call(client, "ModifyQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"], "SimilarQuestionModify": {
        "UpdateQuestions": [{"SimBizId": sim_id, "Question": "Which street are you on?"}]}})
    described = call(client, "DescribeQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"]})
    assert [q["Question"] for q in described["SimilarQuestions"]] == ["Which street are you on?"]
    assert described["Answer"] == "On Harbour Road since May."

    # labels given by id scope the changed pair; leaving AttrRange/AttrLabels out keeps them
    call(client, "ModifyQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"], "AttrRange": 2,
                              "AttrLabels": refer(dept, "it")})
    call(client, "ModifyQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"], "Answer": "Harbour Road."})
    assert final_reply(ask(server, app, "Where is the office?", custom_variables={"department": "it"}))[
        "content"] == "Harbour Road."
    labelled = call(client, "DescribeQA", {"BotBizId": app["id"], "QaBizId": qa["QaBizId"]})
    assert labelled["AttrRange"] == 2 and labelled["AttrLabels"][0]["Labels"] == [
        {"LabelBizId": dept["it"], "LabelName": "it"}]
    assert call(client, "ListQA", {"BotBizId": app["id"]})["List"][0]["AttrLabels"][0]["AttrBizId"] == dept["id"]
    assert final_reply(ask(server, app, "Where is the office?", custom_variables={"department": "hr"}))[
        "reply_method"] != 5

    for params, code in [
        ({"QaBizId": "12345", "Answer": "x"}, "ResourceNotFound"),
        ({"QaBizId": qa["QaBizId"], "Answer": "x", "AttrLabels": refer({**dept, "hr": "999"}, "hr")},
         "InvalidParameterValue"),
        ({"QaBizId": qa["QaBizId"], "Answer": ""}, "InvalidParameterValue"),
        ({"QaBizId": qa["QaBizId"], "SimilarQuestionModify": {"UpdateQuestions": [{"SimBizId": "1", "Question": "x"}]}},
         "InvalidParameterValue"),
        ({"Answer": "x"}, "MissingParameter"),
    ]:
        error = sdk_error(client, "ModifyQA", {"BotBizId": app["id"], **params})
        assert error.code == code, (params, error.message)
    assert call(client, "ListQA", {"BotBizId": app["id"]})["List"][0]["Answer"] == "Harbour Road."
    assert sdk_error(client, "DescribeQA", {"BotBizId": app["id"], "QaBizId": "12345"}).code == "ResourceNotFound"


# -- documents: SaveDoc, DescribeDoc, ModifyDoc --------------------------------------------------


def upload(server: ParleyServer, client, app: dict[str, Any], data: bytes, file_type: str = "md") -> tuple[dict, dict]:
    """DescribeStorageCredential, then a PUT with boto3 the way ADP clients upload; (grant, put response)."""
    grant = call(client, "DescribeStorageCredential", {"BotBizId": app["id"], "FileType": file_type, "IsPublic": False,
                                                       "TypeKey": "offline"})
    creds = grant["Credentials"]
    s3 = boto3.client(
        "s3", endpoint_url=server.url, region_name=grant["Region"], aws_access_key_id=creds["TmpSecretId"],
        aws_secret_access_key=creds["TmpSecretKey"], config=Config(s3={"addressing_style": "path"}),
    )
    put = s3.put_object(Bucket=grant["Bucket"], Key=grant["UploadPath"], Body=data)
    return grant, put


def wait_learnt(client, app: dict[str, Any], doc_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        doc = call(client, "DescribeDoc", {"BotBizId": app["id"], "DocBizId": doc_id})
        if doc["Status"] != 13:
            return doc
        assert time.monotonic() < deadline, "the document is still learning"
        time.sleep(0.2)


RETURNS = b"# Returns\n\nItems can be returned within 45 days with the receipt; refunds go to the original card.\n"


def test_save_doc_learns_an_uploaded_file_and_chat_cites_it(server, client, model):
    app = new_app(server, knowledge={"variable_bindings": {"department": "department"}})
    dept = create_department(client, app)
    grant, put = upload(server, client, app, RETURNS)
    assert "/offline/" in grant["UploadPath"]
    saved = call(client, "SaveDoc", {
        "BotBizId": app["id"], "FileName": "returns.md", "FileType": "md", "CosUrl": grant["UploadPath"],
        "ETag": put["ETag"], "CosHash": "", "Size": str(len(RETURNS)), "AttrRange": 2, "AttrLabels": refer(dept, "hr"),
    })
    doc = wait_learnt(client, app, saved["DocBizId"])
    assert (doc["Status"], doc["StatusDesc"], doc["FileName"], doc["FileType"]) == (12, "导入成功", "returns.md", "md")
    assert doc["AttrRange"] == 2
    assert doc["AttrLabels"] == [{"Source": 1, "AttrBizId": dept["id"], "AttrKey": "department", "AttrName": "department",
                                  "Labels": [{"LabelBizId": dept["hr"], "LabelName": "hr"}]}]
    listed = call(client, "ListDoc", {"BotBizId": app["id"]})
    assert listed["Total"] == "1" and listed["List"][0]["AttrLabels"][0]["Labels"][0]["LabelBizId"] == dept["hr"]

    model.script("returned", content="Within 45 days[1].")
    stream = ask(server, app, "How long can items be returned?", custom_variables={"department": "hr"})
    references = stream.of("reference")[0]["payload"]["references"]
    assert references[0]["doc_name"] == "returns.md" and references[0]["doc_biz_id"] == saved["DocBizId"]
    assert "45 days" in model.stats()["requests"][-1]["messages"][0]["content"]

    # ModifyDoc moves it to the it label: hr visitors no longer see it, it visitors do; no relearning
    call(client, "ModifyDoc", {"BotBizId": app["id"], "DocBizId": saved["DocBizId"], "AttrRange": 2,
                               "AttrLabels": refer(dept, "it")})
    doc = call(client, "DescribeDoc", {"BotBizId": app["id"], "DocBizId": saved["DocBizId"]})
    assert doc["Status"] == 12 and doc["AttrLabels"][0]["Labels"] == [{"LabelBizId": dept["it"], "LabelName": "it"}]
    hidden = ask(server, app, "How long can items be returned?", custom_variables={"department": "hr"})
    assert not hidden.of("reference")
    shown = ask(server, app, "How long can items be returned?", custom_variables={"department": "it"})
    assert shown.of("reference")[0]["payload"]["references"][0]["doc_name"] == "returns.md"
    call(client, "ModifyDoc", {"BotBizId": app["id"], "DocBizId": saved["DocBizId"], "AttrRange": 1})
    assert call(client, "DescribeDoc", {"BotBizId": app["id"], "DocBizId": saved["DocBizId"]})["AttrLabels"] == []


def test_bad_save_doc_describe_doc_and_modify_doc_calls_are_refused_and_change_nothing(server, client):
    app = new_app(server)
    other = new_app(server)
    dept = create_department(client, app)
    grant, put = upload(server, client, app, RETURNS)
    empty_grant = call(client, "DescribeStorageCredential", {"BotBizId": app["id"], "FileType": "md", "TypeKey": "offline"})
    others_grant, _ = upload(server, client, other, RETURNS)
    base = {"BotBizId": app["id"], "FileName": "returns.md", "FileType": "md", "CosUrl": grant["UploadPath"],
            "ETag": put["ETag"], "CosHash": "", "Size": str(len(RETURNS))}
    forged = grant["UploadPath"].rsplit("/", 2)[0] + "/" + "0" * 32 + "/x.md"
    for params, code in [
        ({"CosUrl": "/nowhere/x.md"}, "InvalidParameterValue"),
        ({"CosUrl": forged}, "InvalidParameterValue"),
        ({"CosUrl": empty_grant["UploadPath"]}, "InvalidParameterValue"),  # granted, nothing uploaded
        ({"CosUrl": others_grant["UploadPath"]}, "InvalidParameterValue"),  # another application's upload
        ({"ETag": '"0123456789abcdef0123456789abcdef"'}, "InvalidParameterValue"),
        ({"Size": "3"}, "InvalidParameterValue"),
        ({"AttrRange": 2, "AttrLabels": refer({**dept, "hr": "1"}, "hr")}, "InvalidParameterValue"),
        ({"AttrRange": 2}, "InvalidParameterValue"),
        ({"FileName": None}, "MissingParameter"),
        ({"BotBizId": "31337"}, "ResourceNotFound"),
    ]:
        error = sdk_error(client, "SaveDoc", {k: v for k, v in {**base, **params}.items() if v is not None})
        assert error.code == code, (params, error.message)
    assert call(client, "ListDoc", {"BotBizId": app["id"]})["Total"] == "0"

    saved = call(client, "SaveDoc", {**base, "AttrLabels": refer(dept, "hr")})  # AttrRange defaults to 2 with labels
    assert sdk_error(client, "DescribeDoc", {"BotBizId": app["id"], "DocBizId": "999"}).code == "ResourceNotFound"
    assert sdk_error(client, "DescribeDoc", {"BotBizId": other["id"], "DocBizId": saved["DocBizId"]}).code == \
        "ResourceNotFound"
    assert sdk_error(client, "ModifyDoc", {"BotBizId": app["id"], "DocBizId": "999", "AttrRange": 1}).code == \
        "ResourceNotFound"
    bad = sdk_error(client, "ModifyDoc", {"BotBizId": app["id"], "DocBizId": saved["DocBizId"], "AttrRange": 2,
                                          "AttrLabels": refer({**dept, "it": "5"}, "it")})
    assert bad.code == "InvalidParameterValue"
    doc = call(client, "DescribeDoc", {"BotBizId": app["id"], "DocBizId": saved["DocBizId"]})
    assert doc["AttrLabels"][0]["Labels"] == [{"LabelBizId": dept["hr"], "LabelName": "hr"}]


# -- the admin API uses the same service ---------------------------------------------------------


def test_the_admin_api_manages_the_same_attribute_labels(server, client):
    app = new_app(server)
    base = f"/admin/apps/{app['name']}/kb/attribute-labels"
    created = server.admin("POST", base, json={"name": "team", "labels": [{"name": "red", "similar": ["crimson"]}]})
    assert created.status_code == 201, created.text
    attribute = created.json()
    assert attribute["key"] == "team" and attribute["labels"][0]["similar"] == ["crimson"]
    described = call(client, "DescribeAttributeLabel", {"BotBizId": app["id"], "AttributeBizId": attribute["attr_biz_id"]})
    assert described["Labels"][0]["LabelName"] == "red"

    red = attribute["labels"][0]["label_biz_id"]
    patched = server.admin("PATCH", f"{base}/{attribute['attr_biz_id']}",
                           json={"labels": [{"id": red, "name": "scarlet", "similar": []}, {"name": "blue"}]})
    assert patched.status_code == 200, patched.text
    assert [label["name"] for label in patched.json()["labels"]] == ["scarlet", "blue"]
    assert server.admin("POST", base, json={"name": "team"}).status_code == 400
    assert server.admin("GET", f"{base}/123").status_code == 404
    assert server.admin("DELETE", f"{base}/{attribute['attr_biz_id']}").status_code == 204
    assert server.admin("GET", base).json() == []
