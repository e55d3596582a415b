"""The admin API's routes in the OpenAPI document (see parley.faces.openapi).

Every call needs the admin token; every refusal is `{"error": {"code", "message"}}` with
a matching HTTP status. Application definitions are validated by the AppConfig model.
"""

from __future__ import annotations

from typing import Any

from parley.engine.apps import AppConfig
from parley.engine.workflows import RUN_STATUSES
from parley.faces.openapi import (
    PathItems,
    answer,
    array,
    json_body,
    model_ref,
    obj,
    operation,
    parameter,
    path_params,
    raw_body,
    string,
)

ERROR = answer("Refused", schema=obj({"error": obj({"code": string(), "message": string()}, ["code", "message"])},
                                     ["error"]))
TAGS = ["admin"]
KB = "/admin/apps/{name}/kb"
LABELS = array(obj({"name": string(), "similar": array(string())}, ["name"]))
ITEM_LABELS = {"type": "object", "additionalProperties": string(), "description": "ATTRIBUTE: VALUE[|VALUE...]"}
QA = obj({"question": string(), "answer": string(), "similar_questions": array(string()), "labels": ITEM_LABELS})
BOT_OPTIONS = json_body(obj({
    "botId": string(), "enable": {"type": "boolean"}, "searchEnable": {"type": "boolean"},
    "multiConversationEnable": {"type": "boolean"}, "isNeedRecommend": {"type": "boolean"}, "background": string(),
}), required=False)
SEARCH = obj(
    {"question": string(minLength=1), "custom_variables": {"type": "object", "additionalProperties": string()},
     "visitor_labels": array(obj({"name": string(), "values": array(string())}))},
    ["question"],
)


WORKFLOW_DOC = {"type": "object", "description": "A workflow in Parley's format (docs/workflows.md: name, nodes, "
                "edges) or a Dify DSL document (kind: app), imported on the way"}
WORKFLOW_SET = obj({
    "workflow": WORKFLOW_DOC, "workflows": array(WORKFLOW_DOC),
    "models": {"type": "object", "additionalProperties": string(), "description": "Dify model name: configured model"},
}, ["workflow"])
WORKFLOW_SET["description"] = ("The application's workflow and those its workflow nodes name, or the workflow document "
                               "itself; YAML with Content-Type application/yaml")
WORKFLOW_BODY = {"required": True, "content": {"application/json": {"schema": WORKFLOW_SET},
                                                "application/yaml": {"schema": WORKFLOW_SET}}}
WORKFLOW_REFUSED = answer("Refused; invalid_workflow lists problems by workflow, node and field", schema=obj({
    "error": obj({"code": string(), "message": string(), "problems": array(obj({
        "workflow": {"type": ["string", "null"]}, "node": {"type": ["string", "null"]},
        "field": {"type": ["string", "null"]}, "message": string()}, ["message"]))}, ["code", "message"])}, ["error"]))


def admin(summary: str, ok: dict[str, Any] | None = None, *, status: int = 200, path: tuple[str, ...] = ("name",),
          query: tuple[dict[str, Any], ...] = (), body: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {status: ok or answer("Done"), 400: ERROR, 401: ERROR, 404: ERROR}
    return operation(summary, responses, tags=TAGS, parameters=[*path_params(*path), *query], body=body,
                     security=["adminToken"])


def workflow_check(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["400"] = WORKFLOW_REFUSED
    return op


def publish_query() -> dict[str, Any]:
    return parameter("publish", "query", {"type": "string", "enum": ["1", "true", "yes", "0"]})


paths: PathItems = {
    "/admin/models": {"get": admin("Configured models with their limits", path=())},
    "/admin/apps": {
        "get": admin("Applications", path=()),
        "post": admin("Create or update an application by name", path=(), query=(publish_query(),),
                      body=json_body(model_ref(AppConfig))),
    },
    "/admin/apps/{name}": {
        "get": admin("An application: draft, latest release, AppKey"),
        "put": admin("Replace the draft", query=(publish_query(),), body=json_body(model_ref(AppConfig))),
        "delete": admin("Delete an application (its records are kept)", {"description": "Deleted"}, status=204),
    },
    "/admin/apps/{name}/publish": {
        "post": admin("Publish the draft as a new release", body=json_body(obj({"description": string()}), required=False)),
    },
    "/admin/apps/{name}/sessions/{session_id}/records": {
        "get": admin("A session's records, oldest first", path=("name", "session_id"), query=(
            parameter("count", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            parameter("before", "query", string(pattern="^[0-9]+$")),
        )),
    },
    "/admin/apps/{name}/workflow": {
        "get": admin("The draft's workflows and the latest release's"),
        "put": workflow_check(admin("Put workflows into the draft (visitors get them at the next publish)",
                                    query=(publish_query(),), body=WORKFLOW_BODY)),
        "delete": admin("Remove the draft's workflows", {"description": "Removed"}, status=204),
    },
    "/admin/apps/{name}/workflow/validate": {
        "post": workflow_check(admin("Check workflows as PUT would, storing nothing", body=WORKFLOW_BODY)),
    },
    "/admin/apps/{name}/workflow-runs": {
        "get": admin("The application's workflow runs, newest first", query=(
            parameter("session_id", "query"),
            parameter("status", "query", {"type": "string", "enum": list(RUN_STATUSES)}),
            parameter("before", "query", string(pattern="^[0-9]+$", description="a run id: older runs only (the next page)")),
            parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
        )),
    },
    "/admin/apps/{name}/workflow-runs/{run_id}": {
        "get": admin("One workflow run with every node's input, output, timing and failure",
                     path=("name", "run_id")),
    },
    "/admin/moderation/words": {
        "get": admin("The global sensitive words", path=()),
        "put": admin("Replace the global sensitive words", path=(),
                     body=json_body(obj({"words": array(string(pattern="^[^\\n]*$"))}, ["words"]))),
    },
    "/admin/apps/{name}/cloudbase": {
        "get": admin("The application's CloudBase bot"),
        "post": admin("Publish the application as a CloudBase bot (or change its options)", body=BOT_OPTIONS),
        "put": admin("Publish the application as a CloudBase bot (or change its options)", body=BOT_OPTIONS),
    },
    "/admin/apps/{name}/cloudbase/keys": {
        "get": admin("The bot's keys (prefixes only)"),
        "post": admin("Issue a key (the secret is shown once)", status=201, body=json_body(
            obj({"kind": {"type": "string", "enum": ["api", "publishable"]}, "name": string()}), required=False)),
    },
    "/admin/cloudbase/keys/{key_id}": {
        "delete": admin("Revoke a key", {"description": "Revoked"}, status=204, path=("key_id",)),
    },
    f"{KB}/documents": {
        "get": admin("Documents with their status"),
        "post": admin("Add a document (the file's bytes as the body)", status=201, body=raw_body(), query=(
            parameter("name", "query", string(minLength=1), required=True),
            parameter("label", "query", string(description="ATTRIBUTE=VALUE[|VALUE...], repeatable")),
            parameter("url", "query"),
            parameter("wait", "query", {"type": "string", "enum": ["1", "0"]}),
        )),
    },
    f"{KB}/documents/{{doc_id}}": {
        "get": admin("A document", path=("name", "doc_id")),
        "patch": admin("Change a document's labels or url without relearning", path=("name", "doc_id"),
                       body=json_body(obj({"labels": ITEM_LABELS, "url": string(2048)}))),
        "delete": admin("Delete a document", {"description": "Deleted"}, status=204, path=("name", "doc_id")),
    },
    f"{KB}/qa": {
        "get": admin("Q&A pairs"),
        "post": admin("Add a Q&A pair", status=201, body=json_body(QA)),
    },
    f"{KB}/qa/import": {
        "post": admin("Import Q&A pairs from a CSV or XLSX file (the body)", status=201, body=raw_body(),
                      query=(parameter("name", "query", string(minLength=1), required=True),)),
    },
    f"{KB}/qa/{{qa_id}}": {
        "patch": admin("Change a Q&A pair in place", path=("name", "qa_id"), body=json_body(QA)),
        "delete": admin("Delete a Q&A pair", {"description": "Deleted"}, status=204, path=("name", "qa_id")),
    },
    f"{KB}/attribute-labels": {
        "get": admin("Attribute labels"),
        "post": admin("Create an attribute label", status=201,
                      body=json_body(obj({"name": string(), "key": string(), "labels": LABELS}, ["name"]))),
    },
    f"{KB}/attribute-labels/{{attr_id}}": {
        "get": admin("An attribute label", path=("name", "attr_id")),
        "patch": admin("Rename, add, change or delete labels", path=("name", "attr_id"), body=json_body(obj({
            "name": string(), "delete_label_ids": array(string(pattern="^[0-9]+$")),
            "labels": array(obj({"id": string(pattern="^[0-9]+$"), "name": string(), "similar": array(string())}))}))),
        "delete": admin("Delete an attribute label (items keep their labels)", {"description": "Deleted"}, status=204,
                        path=("name", "attr_id")),
    },
    f"{KB}/attributes": {"get": admin("Label attributes and their values in use")},
    f"{KB}/refer": {
        "post": admin("Reference ids to details (DescribeRefer)",
                      body=json_body(obj({"ids": array(string(pattern="^[0-9]+$"), 100)}, ["ids"]))),
    },
    f"{KB}/search": {"post": admin("What a visitor's question would retrieve (the draft's settings)",
                                   body=json_body(SEARCH))},
}

# The healthz probe sits with the console: it is the operator's.
paths["/healthz"] = {"get": operation("Liveness and turns in progress", {200: answer("OK", schema=obj(
    {"status": string(), "turns_in_progress": {"type": "integer"}}))}, tags=["meta"])}
