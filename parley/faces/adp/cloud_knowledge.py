"""The cloud API's knowledge calls: DescribeRefer, ListDoc, DeleteDoc, CreateQA, ListQA,
DeleteQA, mapped onto the knowledge service that the admin API uses as well.

Document statuses use ADP's numbers: 13 learning, 12 imported (success), 14 learning failed.
"""

from __future__ import annotations

from typing import Any

from parley.faces.adp.cloud_params import CloudApiError, Params, invalid_value
from parley.knowledge.service import KnowledgeError, KnowledgeService
from parley.services import Services

DOC_STATUS = {"learning": (13, "学习中"), "success": (12, "导入成功"), "failed": (14, "学习失败")}
PAGE_SIZE_MAX = 200


async def _knowledge(params: Params, services: Services) -> tuple[int, KnowledgeService]:
    """The application named by BotBizId and the knowledge service, or a Tencent-shaped error."""
    if services.knowledge is None:
        raise CloudApiError("UnsupportedOperation", "The knowledge base is not enabled on this server.")
    app_id = params.biz_id("BotBizId")
    app = await services.apps.get_by_id(app_id) if app_id is not None else None
    if app is None:
        raise CloudApiError("ResourceNotFound", f"No application has BotBizId {params.data.get('BotBizId')}.")
    return app.id, services.knowledge


def _page(params: Params, items: list[Any]) -> tuple[int, list[Any]]:
    number = params.integer("PageNumber", default=1, minimum=1, maximum=1_000_000) or 1
    size = params.integer("PageSize", default=15, minimum=1, maximum=PAGE_SIZE_MAX) or 15
    return len(items), items[(number - 1) * size : number * size]


def _ids(params: Params, name: str) -> list[int]:
    values = params.strings(name)
    if not values:
        raise CloudApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")
    if not all(v.isdigit() and len(v) <= 20 for v in values):
        raise invalid_value(name, "must hold strings of decimal digits")
    return [int(v) for v in values]


def _labels(params: Params) -> dict[str, list[str]] | None:
    """AttrLabels [{AttributeBizId|AttrKey, LabelBizIds|Labels...}] are Parley labels {attribute: [values]}."""
    if (params.integer("AttrRange", default=1, minimum=1, maximum=2) or 1) == 1:
        return None
    labels: dict[str, list[str]] = {}
    for item in params.objects("AttrLabels"):
        attribute = item.string("AttrKey") or item.string("AttributeBizId", required=True)
        values = item.strings("LabelBizIds") or [v.string("LabelName", required=True) for v in item.objects("Labels")]
        labels.setdefault(attribute, []).extend(values)
    return labels


async def describe_refer(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await _knowledge(params, services)
    try:
        details = await knowledge.describe_refer(app_id, params.strings("ReferBizIds", max_items=100))
    except KnowledgeError as exc:
        raise invalid_value("ReferBizIds", str(exc)) from None
    return {"List": [detail.cloud_api() for detail in details]}


async def list_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await _knowledge(params, services)
    query = params.string("Query", max_len=256)
    wanted = set(params.integer_list("Status")) if params.has("Status") else None
    documents = [
        d for d in await knowledge.list_documents(app_id)
        if (not query or query in d.name) and (wanted is None or DOC_STATUS[d.status][0] in wanted)
    ]
    total, page = _page(params, documents)
    return {"Total": str(total), "List": [_doc_item(d) for d in page]}


def _doc_item(document: Any) -> dict[str, Any]:
    status, description = DOC_STATUS[document.status]
    return {
        "DocBizId": str(document.id), "FileName": document.name, "NewName": document.name,
        "FileType": document.file_type, "CosUrl": "", "UpdateTime": str(document.updated_at // 1000),
        "CreateTime": str(document.created_at // 1000), "Status": status, "StatusDesc": description,
        "Reason": document.reason, "IsRefer": True, "WebUrl": document.url, "DocSize": str(document.size),
        "AttrRange": 2 if document.labels else 1,
        "AttrLabels": [{"Source": 1, "AttrKey": k, "AttrName": k, "Labels": [{"LabelName": v} for v in vs]}
                       for k, vs in document.labels.items()],
        "IsAllowDelete": True, "IsAllowRefer": True, "Processing": [1] if document.status == "learning" else [],
    }


async def delete_doc(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await _knowledge(params, services)
    for doc_id in _ids(params, "DocBizIds"):
        if not await knowledge.delete_document(app_id, doc_id):
            raise CloudApiError("ResourceNotFound", f"No document {doc_id} in this application.")
    return {}


async def create_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await _knowledge(params, services)
    question = params.string("Question", required=True, max_len=1000)
    answer = params.string("Answer", required=True, max_len=10000)
    try:
        pair = await knowledge.add_qa(app_id, question, answer, params.strings("SimilarQuestions"), _labels(params))
    except KnowledgeError as exc:
        raise invalid_value("Question", str(exc)) from None
    return {"QaBizId": str(pair.id)}


async def list_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await _knowledge(params, services)
    query = params.string("Query", max_len=256)
    pairs = [p for p in await knowledge.list_qa(app_id) if not query or query in p.question or query in p.answer]
    total, page = _page(params, pairs)
    return {
        "Total": str(total), "WaitVerifyTotal": "0", "NotAcceptedTotal": "0", "AcceptedTotal": str(total),
        "PageNumber": str(params.integer("PageNumber", default=1) or 1),
        "List": [
            {
                "QaBizId": str(p.id), "Question": p.question, "Answer": p.answer, "Source": 2, "SourceDesc": "",
                "UpdateTime": str(p.updated_at // 1000), "CreateTime": str(p.created_at // 1000), "Status": 2,
                "StatusDesc": "", "IsAllowEdit": True, "IsAllowDelete": True, "AttrRange": 2 if p.labels else 1,
                "SimilarQuestionNum": len(p.similar_questions),
                "SimilarQuestionTips": p.similar_questions[0] if p.similar_questions else "",
            }
            for p in page
        ],
    }


async def delete_qa(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await _knowledge(params, services)
    for qa_id in _ids(params, "QaBizIds"):
        if not await knowledge.delete_qa(app_id, qa_id):
            raise CloudApiError("ResourceNotFound", f"No Q&A pair {qa_id} in this application.")
    return {}


ACTIONS = {
    "DescribeRefer": describe_refer,
    "ListDoc": list_doc,
    "DeleteDoc": delete_doc,
    "CreateQA": create_qa,
    "ListQA": list_qa,
    "DeleteQA": delete_qa,
}
