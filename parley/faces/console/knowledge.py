"""The admin API for knowledge bases, under /admin/apps/{name}/kb, guarded like the rest of /admin.

Documents are uploaded as the raw request body (`curl --data-binary @file.pdf`):

  POST   /admin/apps/{name}/kb/documents?name=FILE[&label=ATTR=V1|V2 ...][&url=...][&wait=1]
  GET    /admin/apps/{name}/kb/documents             every document with its status
  GET    /admin/apps/{name}/kb/documents/{doc_id}
  DELETE /admin/apps/{name}/kb/documents/{doc_id}
  POST   /admin/apps/{name}/kb/qa                    {question, answer, similar_questions, labels}
  POST   /admin/apps/{name}/kb/qa/import?name=FILE   a CSV or XLSX file as the body
  GET    /admin/apps/{name}/kb/qa
  PATCH  /admin/apps/{name}/kb/qa/{qa_id}            {question?, answer?, similar_questions?, labels?}: in place
  DELETE /admin/apps/{name}/kb/qa/{qa_id}
  PATCH  /admin/apps/{name}/kb/documents/{doc_id}     {labels?, url?}: without relearning
  GET    /admin/apps/{name}/kb/attribute-labels       attribute labels (ids, key, name, labels)
  POST   /admin/apps/{name}/kb/attribute-labels       {name, key?, labels: [{name, similar}]}
  GET    /admin/apps/{name}/kb/attribute-labels/{id}
  PATCH  /admin/apps/{name}/kb/attribute-labels/{id}  {name?, delete_label_ids?, labels?: [{id?, name, similar}]}
  DELETE /admin/apps/{name}/kb/attribute-labels/{id}  (items keep their labels as plain labels)
  GET    /admin/apps/{name}/kb/attributes            label attributes and their values in use
  POST   /admin/apps/{name}/kb/refer                 {"ids": [...]}: reference ids to details (DescribeRefer)
  POST   /admin/apps/{name}/kb/search                {question, custom_variables, visitor_labels}: what
                                                     a visitor's question would retrieve (the draft's settings)

Errors are `{"error": {"code", "message"}}` as elsewhere in the admin API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.engine.apps import App
from parley.faces.console.admin import error_response, guarded, json_body, json_response
from parley.ids import parse_id
from parley.knowledge.attributes import AttributeEntity, LabelError, LabelInput, LabelNotFound
from parley.knowledge.labels import ScopeError
from parley.knowledge.service import KnowledgeError, KnowledgeService
from parley.services import Services


def document_json(document: Any) -> dict[str, Any]:
    return {
        "doc_id": str(document.id),
        "doc_biz_id": str(document.id),
        "name": document.name,
        "file_type": document.file_type,
        "size": document.size,
        "url": document.url,
        "title": document.title,
        "status": document.status,
        "reason": document.reason,
        "segments": document.segment_count,
        "labels": dict(document.labels),
        "attr_range": document.attr_range,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
    }


def qa_json(pair: Any) -> dict[str, Any]:
    return {
        "qa_biz_id": str(pair.id),
        "question": pair.question,
        "answer": pair.answer,
        "similar_questions": pair.similar_questions,
        "labels": dict(pair.labels),
        "attr_range": pair.attr_range,
        "created_at": pair.created_at,
        "updated_at": pair.updated_at,
    }


KnowledgeHandler = Callable[[Request, App, KnowledgeService], Awaitable[Response]]


def with_knowledge(handler: KnowledgeHandler) -> Callable[[Request, Services], Awaitable[Response]]:
    """Resolves the path's application and the knowledge service once for every handler."""

    async def resolved(request: Request, services: Services) -> Response:
        knowledge = services.knowledge
        if knowledge is None:
            return error_response(503, "knowledge_unavailable", "the knowledge base is not enabled on this server")
        app = await services.apps.get(request.path_params["name"])
        if app is None:
            return error_response(404, "not_found", f"no application named {request.path_params['name']!r}")
        return await handler(request, app, knowledge)

    return resolved


def _id(request: Request, key: str) -> int | None:
    """The path's id; None (answered as not found) when it cannot be one."""
    return parse_id(request.path_params[key])


@with_knowledge
async def add_document(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    name = request.query_params.get("name", "")
    if not name:
        return error_response(400, "bad_request", "the document's file name is required: ?name=FILE")
    labels: dict[str, str] = {}
    for option in request.query_params.getlist("label"):
        attribute, sep, values = option.partition("=")
        if not sep:
            return error_response(400, "invalid_label", f"label {option!r}: expected ATTRIBUTE=VALUE[|VALUE...]")
        labels[attribute] = (labels.get(attribute, "") + "|" + values).strip("|")
    data = await request.body()
    if not data:
        return error_response(400, "bad_request", "the request body (the file's bytes) is empty")
    wait = request.query_params.get("wait") in ("1", "true", "yes")
    try:
        registered = await knowledge.add_document(
            app.id, name, data, labels=labels, url=request.query_params.get("url", ""), background=not wait
        )
    except KnowledgeError as exc:
        return error_response(400, "invalid_document", str(exc))
    document = registered.document
    if wait and registered.action != "unchanged":
        document = await knowledge.learn(document.id) or document
    return json_response({"action": registered.action, "document": document_json(document)}, 201 if registered.action == "created" else 200)


@with_knowledge
async def list_documents(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    return json_response([document_json(d) for d in await knowledge.list_documents(app.id)])


@with_knowledge
async def get_document(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    doc_id = _id(request, "doc_id")
    document = await knowledge.get_document(app.id, doc_id) if doc_id is not None else None
    if document is None:
        return error_response(404, "not_found", f"no document {request.path_params['doc_id']!r} in {app.name!r}")
    return json_response(document_json(document))


@with_knowledge
async def delete_document(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    doc_id = _id(request, "doc_id")
    if doc_id is None or not await knowledge.delete_document(app.id, doc_id):
        return error_response(404, "not_found", f"no document {request.path_params['doc_id']!r} in {app.name!r}")
    return Response(status_code=204)


@with_knowledge
async def add_qa(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    try:
        pair = await knowledge.add_qa(
            app.id, data.get("question"), data.get("answer"), data.get("similar_questions"), data.get("labels")
        )
    except KnowledgeError as exc:
        return error_response(400, "invalid_qa", str(exc))
    return json_response(qa_json(pair), 201)


@with_knowledge
async def import_qa(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    name = request.query_params.get("name", "")
    try:
        ids = await knowledge.import_qa(app.id, name, await request.body())
    except KnowledgeError as exc:
        return error_response(400, "invalid_qa", str(exc))
    return json_response({"imported": len(ids), "qa_biz_ids": [str(i) for i in ids]}, 201)


@with_knowledge
async def list_qa(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    return json_response([qa_json(p) for p in await knowledge.list_qa(app.id)])


@with_knowledge
async def delete_qa(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    qa_id = _id(request, "qa_id")
    if qa_id is None or not await knowledge.delete_qa(app.id, qa_id):
        return error_response(404, "not_found", f"no Q&A pair {request.path_params['qa_id']!r} in {app.name!r}")
    return Response(status_code=204)


@with_knowledge
async def attributes(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    return json_response(await knowledge.attributes(app.id))


@with_knowledge
async def refer(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    ids = data.get("ids")
    if not isinstance(ids, list) or len(ids) > 100:
        return error_response(400, "bad_request", "ids must be a list of at most 100 reference ids")
    try:
        details = await knowledge.describe_refer(app.id, ids)
    except KnowledgeError as exc:
        return error_response(400, "bad_request", str(exc))
    return json_response([d.as_json() for d in details])


@with_knowledge
async def search(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    question = data.get("question")
    variables = data.get("custom_variables") or {}
    if not isinstance(question, str) or not question.strip():
        return error_response(400, "bad_request", "question must be a non-empty string")
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        return error_response(400, "bad_request", "custom_variables must be an object of strings")
    settings = app.draft.knowledge
    try:
        scope = knowledge.scope(variables, data.get("visitor_labels"), settings)
    except ScopeError as exc:
        return error_response(400, "invalid_label", str(exc))
    resolution = await knowledge.resolve(app.id, question, scope, settings)
    return json_response(
        {
            "kind": resolution.kind,
            "unknown": resolution.unknown,
            "qa": None if resolution.qa is None else {
                "qa_biz_id": str(resolution.qa.qa_id), "question": resolution.qa.question,
                "matched": resolution.qa.matched, "answer": resolution.qa.answer, "score": resolution.qa.score,
            },
            "passages": [
                {
                    "index": p.index, "id": str(p.segment_id), "doc_id": str(p.doc_id), "doc_name": p.doc_name,
                    "text": p.text, "page": p.page, "sheet": p.sheet, "headings": p.headings,
                    "start": p.start, "end": p.end, "similarity": p.similarity,
                }
                for p in resolution.passages
            ],
            "references": resolution.references(),
            "knowledge": resolution.knowledge(),
            "context": resolution.context,
            "elapsed_ms": resolution.elapsed_ms,
        }
    )


@with_knowledge
async def modify_document(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    doc_id = _id(request, "doc_id")
    document = await knowledge.get_document(app.id, doc_id) if doc_id is not None else None
    if document is None:
        return error_response(404, "not_found", f"no document {request.path_params['doc_id']!r} in {app.name!r}")
    labels = data["labels"] if "labels" in data else dict(document.labels)
    try:
        changed = await knowledge.modify_document(app.id, document.id, labels, data.get("url"))
    except KnowledgeError as exc:
        return error_response(400, "invalid_document", str(exc))
    if changed is None:
        return error_response(404, "not_found", f"no document {document.id} in {app.name!r}")
    return json_response(document_json(changed))


@with_knowledge
async def modify_qa(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    qa_id = _id(request, "qa_id")
    try:
        pair = None if qa_id is None else await knowledge.modify_qa(
            app.id, qa_id, question=data.get("question"), answer=data.get("answer"),
            similar_questions=data.get("similar_questions"), labels=data.get("labels"), keep_labels="labels" not in data,
        )
    except KnowledgeError as exc:
        return error_response(400, "invalid_qa", str(exc))
    if pair is None:
        return error_response(404, "not_found", f"no Q&A pair {request.path_params['qa_id']!r} in {app.name!r}")
    return json_response(qa_json(pair))


def attribute_json(attribute: AttributeEntity) -> dict[str, Any]:
    return {
        "attr_biz_id": str(attribute.id), "key": attribute.key, "name": attribute.name,
        "labels": [
            {"label_biz_id": str(label.id), "name": label.name, "similar": list(label.similar)}
            for label in attribute.labels
        ],
        "created_at": attribute.created_at, "updated_at": attribute.updated_at,
    }


def _label_inputs(data: Any, *, with_ids: bool) -> list[LabelInput]:
    """`[{id?, name, similar}]` to LabelInputs; raises LabelError when malformed."""
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise LabelError("labels must be a list of {name, similar}")
    inputs = []
    for item in data:
        raw_id = item.get("id") if with_ids else None
        label_id = parse_id(str(raw_id)) if raw_id is not None else None
        if raw_id is not None and label_id is None:
            raise LabelError(f"label id {raw_id!r} is not a decimal id")
        similar = item.get("similar") or []
        if not isinstance(similar, list):
            raise LabelError("similar must be a list of strings")
        inputs.append(LabelInput(item.get("name"), tuple(similar), label_id))
    return inputs


def _attribute_id(request: Request) -> int:
    """The path's attribute id; raises LabelNotFound when it cannot be one."""
    attr_id = _id(request, "attr_id")
    if attr_id is None:
        raise LabelNotFound(f"no attribute label {request.path_params['attr_id']!r}")
    return attr_id


def _label_error(exc: LabelError) -> Response:
    if isinstance(exc, LabelNotFound):
        return error_response(404, "not_found", str(exc))
    return error_response(400, "invalid_label", str(exc))


@with_knowledge
async def list_attribute_labels(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    return json_response([attribute_json(a) for a in await knowledge.list_attributes(app.id)])


@with_knowledge
async def create_attribute_label(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    key = data.get("key") or ""
    try:
        if not isinstance(key, str):
            raise LabelError("key must be a string")
        attribute = await knowledge.create_attribute(
            app.id, data.get("name"), _label_inputs(data.get("labels"), with_ids=False), key
        )
    except LabelError as exc:
        return _label_error(exc)
    return json_response(attribute_json(attribute), 201)


@with_knowledge
async def get_attribute_label(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    try:
        return json_response(attribute_json(await knowledge.get_attribute(app.id, _attribute_id(request))))
    except LabelError as exc:
        return _label_error(exc)


@with_knowledge
async def modify_attribute_label(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    deleted = data.get("delete_label_ids") or []
    try:
        attr_id = _attribute_id(request)
        delete_label_ids = [parse_id(str(i)) for i in deleted] if isinstance(deleted, list) else [None]
        if None in delete_label_ids:
            raise LabelError("delete_label_ids must be a list of decimal ids")
        attribute = await knowledge.modify_attribute(
            app.id, attr_id, name=data.get("name"), delete_label_ids=delete_label_ids,  # type: ignore[arg-type]
            labels=_label_inputs(data.get("labels"), with_ids=True),
        )
    except LabelError as exc:
        return _label_error(exc)
    return json_response(attribute_json(attribute))


@with_knowledge
async def delete_attribute_label(request: Request, app: App, knowledge: KnowledgeService) -> Response:
    try:
        await knowledge.delete_attributes(app.id, [_attribute_id(request)])
    except LabelError as exc:
        return _label_error(exc)
    return Response(status_code=204)


_BASE = "/admin/apps/{name}/kb"
routes = [
    Route(f"{_BASE}/documents", guarded(add_document), methods=["POST"]),
    Route(f"{_BASE}/documents", guarded(list_documents), methods=["GET"]),
    Route(f"{_BASE}/documents/{{doc_id}}", guarded(get_document), methods=["GET"]),
    Route(f"{_BASE}/documents/{{doc_id}}", guarded(delete_document), methods=["DELETE"]),
    Route(f"{_BASE}/qa", guarded(add_qa), methods=["POST"]),
    Route(f"{_BASE}/qa", guarded(list_qa), methods=["GET"]),
    Route(f"{_BASE}/qa/import", guarded(import_qa), methods=["POST"]),
    Route(f"{_BASE}/qa/{{qa_id}}", guarded(delete_qa), methods=["DELETE"]),
    Route(f"{_BASE}/qa/{{qa_id}}", guarded(modify_qa), methods=["PATCH"]),
    Route(f"{_BASE}/documents/{{doc_id}}", guarded(modify_document), methods=["PATCH"]),
    Route(f"{_BASE}/attribute-labels", guarded(list_attribute_labels), methods=["GET"]),
    Route(f"{_BASE}/attribute-labels", guarded(create_attribute_label), methods=["POST"]),
    Route(f"{_BASE}/attribute-labels/{{attr_id}}", guarded(get_attribute_label), methods=["GET"]),
    Route(f"{_BASE}/attribute-labels/{{attr_id}}", guarded(modify_attribute_label), methods=["PATCH"]),
    Route(f"{_BASE}/attribute-labels/{{attr_id}}", guarded(delete_attribute_label), methods=["DELETE"]),
    Route(f"{_BASE}/attributes", guarded(attributes), methods=["GET"]),
    Route(f"{_BASE}/refer", guarded(refer), methods=["POST"]),
    Route(f"{_BASE}/search", guarded(search), methods=["POST"]),
]
