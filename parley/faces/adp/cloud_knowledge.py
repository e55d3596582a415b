"""The cloud API's knowledge calls: DescribeRefer, ListDoc, DescribeDoc, SaveDoc, ModifyDoc,
DeleteDoc, CreateQA, ListQA, DescribeQA, ModifyQA, DeleteQA, mapped onto the knowledge service that the
admin API uses as well.

Labels come as AttrLabels `[{Source: 1, AttributeBizId, LabelBizIds}]` (ids of attribute
labels, see cloud_labels.py), resolved by the knowledge service into the plain
`{attribute key: [label names]}` that items carry; an unknown id is InvalidParameterValue
and nothing is stored. The older `{AttrKey, Labels: [{LabelName}]}` form (plain labels)
is still read.

Document statuses use ADP's numbers: 13 learning, 12 imported (success), 14 learning failed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from parley.faces.adp.cloud_params import CloudApiError, Params, biz_id, invalid_value
from parley.knowledge.attributes import AttributeEntity, LabelError, LabelRef
from parley.knowledge.qa import SimilarEdit
from parley.knowledge.realtime_docs import DocumentError, UploadMismatch
from parley.knowledge.service import KnowledgeError, KnowledgeService
from parley.services import Services

DOC_STATUS = {"learning": (13, "学习中"), "success": (12, "导入成功"), "failed": (14, "学习失败")}
PAGE_SIZE_MAX = 200


async def knowledge_for(params: Params, services: Services) -> tuple[int, KnowledgeService]:
    """The application named by BotBizId and the knowledge service, or a Tencent-shaped error."""
    if services.knowledge is None:
        raise CloudApiError("UnsupportedOperation", "The knowledge base is not enabled on this server.")
    app_id = params.biz_id("BotBizId")
    app = await services.apps.get_by_id(app_id) if app_id is not None else None
    if app is None:
        raise CloudApiError("ResourceNotFound", f"No application has BotBizId {params.data.get('BotBizId')}.")
    return app.id, services.knowledge


def page_of(params: Params, items: list[Any]) -> tuple[int, list[Any]]:
    number = params.integer("PageNumber", default=1, minimum=1, maximum=1_000_000) or 1
    size = params.integer("PageSize", default=15, minimum=1, maximum=PAGE_SIZE_MAX) or 15
    return len(items), items[(number - 1) * size : number * size]


def _ids(params: Params, name: str) -> list[int]:
    values = params.strings(name)
    if not values:
        raise CloudApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")
    return [biz_id(v, name) for v in values]


async def _labels(
    params: Params, app_id: int, knowledge: KnowledgeService, *, keep_if_absent: bool = False
) -> dict[str, list[str]] | None:
    """The item's plain labels from AttrRange and AttrLabels.

    AttrRange defaults to 2 (by condition) when AttrLabels is given, else 1 (everyone).
    None (keep the item's labels) when neither is given and `keep_if_absent`.
    """
    items = params.objects("AttrLabels")
    if keep_if_absent and not params.has("AttrRange") and not params.has("AttrLabels"):
        return None
    attr_range = params.integer("AttrRange", default=2 if items else 1, minimum=1, maximum=2)
    if attr_range == 1:
        return {}
    if not items:
        raise invalid_value("AttrLabels", "AttrRange 2 (by condition) needs at least one label")
    refs: list[LabelRef] = []
    plain: dict[str, list[str]] = {}
    for item in items:
        if item.integer("Source", default=1) != 1:
            raise invalid_value("AttrLabels.Source", "only 1 (attribute labels) is supported")
        if item.has("AttributeBizId"):
            attribute_id = biz_id(item.string("AttributeBizId", required=True), "AttrLabels.AttributeBizId")
            label_ids = tuple(biz_id(v, "AttrLabels.LabelBizIds") for v in item.strings("LabelBizIds"))
            refs.append(LabelRef(attribute_id, label_ids))
        elif item.has("AttrKey"):  # the plain form
            attribute = item.string("AttrKey", required=True, max_len=64)
            plain.setdefault(attribute, []).extend(v.string("LabelName", required=True) for v in item.objects("Labels"))
        else:
            raise CloudApiError("MissingParameter", "The request is missing a required parameter `AttrLabels.AttributeBizId`.")
    try:
        resolved = await knowledge.resolve_label_refs(app_id, refs)
    except LabelError as exc:
        raise invalid_value("AttrLabels", str(exc)) from None
    for attribute, values in plain.items():
        resolved.setdefault(attribute, []).extend(v for v in values if v not in resolved.get(attribute, []))
    return resolved


def _attr_labels(labels: Any, attributes: list[AttributeEntity]) -> list[dict[str, Any]]:
    """An item's plain labels as ADP's AttrLabel list, with ids where an attribute label names them."""
    by_key = {a.key: a for a in attributes}
    found = []
    for key, values in labels.items():
        attribute = by_key.get(key)
        ids = {label.name: str(label.id) for label in attribute.labels} if attribute else {}
        found.append({
            "Source": 1, "AttrBizId": str(attribute.id) if attribute else "", "AttrKey": key,
            "AttrName": attribute.name if attribute else key,
            "Labels": [{"LabelBizId": ids.get(v, ""), "LabelName": v} for v in values],
        })
    return found


async def describe_refer(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    try:
        details = await knowledge.describe_refer(app_id, params.strings("ReferBizIds", max_items=100))
    except KnowledgeError as exc:
        raise invalid_value("ReferBizIds", str(exc)) from None
    return {"List": [detail.cloud_api() for detail in details]}


async def list_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    query = params.string("Query", max_len=256)
    wanted = set(params.integer_list("Status")) if params.has("Status") else None
    documents = [
        d for d in await knowledge.list_documents(app_id)
        if (not query or query in d.name) and (wanted is None or DOC_STATUS[d.status][0] in wanted)
    ]
    total, page = page_of(params, documents)
    attributes = await knowledge.list_attributes(app_id)
    return {"Total": str(total), "List": [_doc_item(d, attributes) for d in page]}


def _doc_item(document: Any, attributes: list[AttributeEntity]) -> dict[str, Any]:
    status, description = DOC_STATUS[document.status]
    return {
        "DocBizId": str(document.id), "FileName": document.name, "NewName": document.name,
        "FileType": document.file_type, "CosUrl": "", "UpdateTime": str(document.updated_at // 1000),
        "CreateTime": str(document.created_at // 1000), "Status": status, "StatusDesc": description,
        "Reason": document.reason, "IsRefer": True, "WebUrl": document.url, "DocSize": str(document.size),
        "AttrRange": document.attr_range,
        "AttrLabels": _attr_labels(document.labels, attributes),
        "IsAllowDelete": True, "IsAllowRefer": True, "Processing": [1] if document.status == "learning" else [],
    }


async def delete_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    for doc_id in _ids(params, "DocBizIds"):
        if not await knowledge.delete_document(app_id, doc_id):
            raise CloudApiError("ResourceNotFound", f"No document {doc_id} in this application.")
    return {}


async def create_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    question = params.string("Question", required=True, max_len=1000)
    answer = params.string("Answer", required=True, max_len=10000)
    labels = await _labels(params, app_id, knowledge)
    try:
        pair = await knowledge.add_qa(app_id, question, answer, params.strings("SimilarQuestions"), labels)
    except KnowledgeError as exc:
        raise invalid_value("Question", str(exc)) from None
    return {"QaBizId": str(pair.id)}


async def list_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    query = params.string("Query", max_len=256)
    pairs = [p for p in await knowledge.list_qa(app_id) if not query or query in p.question or query in p.answer]
    total, page = page_of(params, pairs)
    attributes = await knowledge.list_attributes(app_id)
    return {
        "Total": str(total), "WaitVerifyTotal": "0", "NotAcceptedTotal": "0", "AcceptedTotal": str(total),
        "PageNumber": str(params.integer("PageNumber", default=1) or 1),
        "List": [
            {
                "QaBizId": str(p.id), "Question": p.question, "Answer": p.answer, "Source": 2, "SourceDesc": "",
                "UpdateTime": str(p.updated_at // 1000), "CreateTime": str(p.created_at // 1000), "Status": 2,
                "StatusDesc": "", "IsAllowEdit": True, "IsAllowDelete": True, "AttrRange": p.attr_range,
                "AttrLabels": _attr_labels(p.labels, attributes),
                "SimilarQuestionNum": len(p.similar_questions),
                "SimilarQuestionTips": p.similar_questions[0] if p.similar_questions else "",
            }
            for p in page
        ],
    }


async def delete_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    for qa_id in _ids(params, "QaBizIds"):
        if not await knowledge.delete_qa(app_id, qa_id):
            raise CloudApiError("ResourceNotFound", f"No Q&A pair {qa_id} in this application.")
    return {}


async def describe_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    qa_id = params.biz_id("QaBizId")
    pair = await knowledge.get_qa(app_id, qa_id) if qa_id is not None else None
    if pair is None:
        raise CloudApiError("ResourceNotFound", f"No Q&A pair {params.data.get('QaBizId')} in this application.")
    similar = await knowledge.similar_questions(app_id, pair.id)
    return {
        "QaBizId": str(pair.id), "Question": pair.question, "Answer": pair.answer, "CustomParam": "", "Source": 2,
        "SourceDesc": "", "UpdateTime": str(pair.updated_at // 1000), "Status": 2, "StatusDesc": "",
        "IsAllowAccept": False, "IsAllowDelete": True, "IsAllowEdit": True, "DocBizId": "0", "FileName": "",
        "FileType": "", "AttrRange": pair.attr_range,
        "AttrLabels": _attr_labels(pair.labels, await knowledge.list_attributes(app_id)),
        "SimilarQuestions": [{"SimBizId": str(i), "Question": text, "AuditStatus": 0} for i, text in similar],
        "QuestionDesc": "", "IsDisabled": False, "EnableScope": 4,
    }


async def modify_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    qa_id = params.biz_id("QaBizId")
    assert qa_id is not None
    question = params.string("Question", max_len=1000) if params.has("Question") else None
    answer = params.string("Answer", max_len=10000) if params.has("Answer") else None
    edit = params.object("SimilarQuestionModify")
    similar_edit = None
    if edit.data:
        similar_edit = SimilarEdit(
            add=edit.strings("AddQuestions", max_items=50),
            update={
                biz_id(q.string("SimBizId", required=True), "SimilarQuestionModify.UpdateQuestions.SimBizId"):
                q.string("Question", required=True, max_len=1000)
                for q in edit.objects("UpdateQuestions")
            },
            delete=[
                biz_id(q.string("SimBizId"), "SimilarQuestionModify.DeleteQuestions.SimBizId")
                if q.has("SimBizId") else q.string("Question", required=True)
                for q in edit.objects("DeleteQuestions")
            ],
        )
    similar = params.strings("SimilarQuestions", max_items=50) if params.has("SimilarQuestions") else None
    labels = await _labels(params, app_id, knowledge, keep_if_absent=True)
    try:
        pair = await knowledge.modify_qa(
            app_id, qa_id, question=question, answer=answer, similar_questions=similar, similar_edit=similar_edit,
            labels=labels, keep_labels=labels is None,
        )
    except KnowledgeError as exc:
        raise CloudApiError("InvalidParameterValue", f"The Q&A pair cannot be changed so: {exc}.") from None
    if pair is None:
        raise CloudApiError("ResourceNotFound", f"No Q&A pair {qa_id} in this application.")
    return {}


# -- documents uploaded through DescribeStorageCredential -------------------------------------


def _object_key(params: Params, bucket: str) -> str:
    """The object key of CosUrl (the credential's UploadPath) or FileUrl (a URL to it)."""
    raw = params.string("CosUrl", max_len=2048) or params.string("FileUrl", max_len=2048)
    name = "CosUrl" if params.has("CosUrl") else "FileUrl"
    if not raw:
        raise CloudApiError("MissingParameter", "The request is missing a required parameter `CosUrl`.")
    path = urlsplit(raw).path if "://" in raw else raw
    path = path.lstrip("/")
    if path.startswith(bucket + "/"):
        path = path[len(bucket) + 1 :]
    if not path:
        raise invalid_value(name, "is not an upload path given by DescribeStorageCredential")
    return path


async def save_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    file_name = params.string("FileName", required=True, max_len=512)
    file_type = params.string("FileType", required=True, max_len=16).lower()
    if (params.integer("Opt", default=2, minimum=1, maximum=2) or 2) != 2:
        raise CloudApiError("UnsupportedOperation", "Opt 1 (Q&A batch import) is not supported; use the admin API.")
    size = params.string("Size", max_len=20)
    if size and not (size.isascii() and size.isdigit()):
        raise invalid_value("Size", "must be a string of decimal digits")
    etag = params.string("ETag", max_len=128).strip('"')
    params.string("CosHash", max_len=128)
    url = params.string("WebUrl", max_len=2048) if params.boolean("IsRefer") else ""
    key = _object_key(params, services.settings.cloud_api.storage_bucket)
    labels = await _labels(params, app_id, knowledge)
    if services.documents is None:
        raise CloudApiError("UnsupportedOperation", "Uploads are not enabled on this server.")
    try:
        data = await services.documents.uploaded(app_id, key, etag=etag, size=int(size) if size else None)
    except UploadMismatch as exc:
        raise invalid_value(exc.field, str(exc)) from None
    except DocumentError as exc:
        raise invalid_value("CosUrl", str(exc)) from None
    name = file_name if "." in file_name else f"{file_name}.{file_type}"
    try:
        registered = await knowledge.add_document(app_id, name, data, labels=labels, url=url)
    except KnowledgeError as exc:
        raise invalid_value("FileName", str(exc)) from None
    return {
        "DocBizId": str(registered.document.id), "ErrorMsg": "", "ErrorLink": "", "ErrorLinkText": "",
        "DuplicateFileCheckType": 0,
    }


async def _document(params: Params, app_id: int, knowledge: KnowledgeService) -> Any:
    doc_id = params.biz_id("DocBizId")
    document = await knowledge.get_document(app_id, doc_id) if doc_id is not None else None
    if document is None:
        raise CloudApiError("ResourceNotFound", f"No document {params.data.get('DocBizId')} in this application.")
    return document


async def describe_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    document = await _document(params, app_id, knowledge)
    status, description = DOC_STATUS[document.status]
    return {
        "DocBizId": str(document.id), "FileName": document.name, "FileType": document.file_type, "CosUrl": "",
        "UpdateTime": str(document.updated_at // 1000), "Status": status, "StatusDesc": description,
        "Reason": document.reason, "IsRefer": bool(document.url), "QaNum": 0, "IsDeleted": False, "Source": 0,
        "SourceDesc": "", "IsAllowRestart": document.status == "failed", "IsDeletedQa": False, "IsCreatingQa": False,
        "IsAllowDelete": True, "IsAllowRefer": True, "IsCreatedQa": False, "DocCharSize": str(document.size),
        "IsAllowEdit": True, "AttrRange": document.attr_range,
        "AttrLabels": _attr_labels(document.labels, await knowledge.list_attributes(app_id)),
        "CateBizId": "", "IsDisabled": False, "IsDownload": False, "SplitRule": "", "UpdatePeriodInfo": None,
        "CateBizIdPath": [], "CateNamePath": [], "EnableScope": 4,
    }


async def modify_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    document = await _document(params, app_id, knowledge)
    params.boolean("IsRefer")
    url = params.string("WebUrl", max_len=2048) if params.has("WebUrl") else None
    labels = await _labels(params, app_id, knowledge, keep_if_absent=True)
    try:
        changed = await knowledge.modify_document(
            app_id, document.id, dict(document.labels) if labels is None else labels, url
        )
    except KnowledgeError as exc:
        raise invalid_value("AttrLabels", str(exc)) from None
    if changed is None:
        raise CloudApiError("ResourceNotFound", f"No document {document.id} in this application.")
    return {}


ACTIONS = {
    "DescribeRefer": describe_refer,
    "ListDoc": list_doc,
    "DescribeDoc": describe_doc,
    "SaveDoc": save_doc,
    "ModifyDoc": modify_doc,
    "DeleteDoc": delete_doc,
    "CreateQA": create_qa,
    "ListQA": list_qa,
    "DescribeQA": describe_qa,
    "ModifyQA": modify_qa,
    "DeleteQA": delete_qa,
}
