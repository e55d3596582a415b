"""The admin HTTP API under /admin, guarded by the admin token (`Authorization: Bearer TOKEN`).

Errors are `{"error": {"code": "...", "message": "..."}}` with a matching HTTP status: among
them 409 `conflict` (a publish that lost a race it could not win by retrying), 503 `busy` with
`Retry-After` (the database stayed locked past `database_busy_timeout`) and 500 `internal`
(the details go to the server's log, never to the caller).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from parley.engine.apps import App, AppConflict, AppError, WorkflowRejected
from parley.engine.engine import RecordRow
from parley.engine.faces import Face
from parley.engine.workflows import RUN_STATUSES
from parley.faces.faults import BUSY_MESSAGE, INTERNAL_MESSAGE, RETRY_AFTER_SECONDS, Fault, fault_of
from parley.ids import parse_id
from parley.faces.bodies import BodyLimit
from parley.services import Services

Handler = Callable[[Request, Services], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        supplied = request.headers.get("authorization", "")
        expected = "Bearer " + services.settings.ensure_admin_token()
        if not hmac.compare_digest(supplied.encode(), expected.encode()):
            return error_response(401, "unauthorized", "a valid admin token is required (Authorization: Bearer TOKEN)")
        try:
            return await handler(request, services)
        except WorkflowRejected as exc:
            return workflow_error(exc)
        except AppError as exc:
            return error_response(400, "invalid_application", str(exc))
        except AppConflict as exc:
            return error_response(409, "conflict", str(exc))
        except Exception as exc:
            return fault_response(fault_of(exc, f"admin {request.method} {request.url.path}"))

    return endpoint


def workflow_error(exc: WorkflowRejected) -> Response:
    """400 `invalid_workflow`: the message lists every problem; `problems` name each one's
    workflow, node and field for a program to point at."""
    body = {"error": {"code": "invalid_workflow", "message": str(exc), "problems": [
        {"workflow": p.workflow, "node": p.node, "field": p.field, "message": p.message} for p in exc.problems]}}
    return json_response(body, 400)


def fault_response(fault: Fault) -> Response:
    """The server's own failure in the admin API's shape: busy (503, Retry-After) or internal (500)."""
    if fault is Fault.BUSY:
        response = error_response(503, "busy", BUSY_MESSAGE)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return error_response(500, "internal", INTERNAL_MESSAGE)


async def json_body(request: Request) -> dict[str, Any] | Response:
    """The body as a JSON object, or the error response to return (the console's error shape)."""
    try:
        data = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return error_response(400, "bad_json", "the body is not valid JSON")
    if not isinstance(data, dict):
        return error_response(400, "bad_json", "the body must be a JSON object")
    return data


def app_json(app: App) -> dict[str, Any]:
    return {
        "id": str(app.id),
        "name": app.name,
        "app_key": app.app_key,
        "published": app.published,
        "release_version": app.release_version,
        "has_unpublished_changes": app.has_unpublished_changes,
        "draft": app.draft.model_dump(),
        "release": app.release.model_dump() if app.release else None,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
    }


def record_json(record: RecordRow) -> dict[str, Any]:
    return {
        "record_id": str(record.id),
        "related_record_id": str(record.related_record_id) if record.related_record_id else "",
        "request_id": record.request_id,
        "is_from_self": record.is_from_self,
        "content": record.content,
        "reasoning": record.reasoning,
        "reply_method": record.reply_method,
        "status": record.status,
        "model": record.model,
        "is_evil": record.is_evil,
        "is_llm_generated": record.is_llm_generated,
        "token_stat": record.token_stat,
        "file_infos": record.file_infos or [],
        "error_message": record.error_message,
        "references": (record.extra or {}).get("references", []),
        "quote_infos": (record.extra or {}).get("quote_infos", []),
        "score": record.score,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
    }


async def list_models(request: Request, services: Services) -> Response:
    default = services.models.default_name
    return json_response(
        [
            {
                "name": c.name,
                "provider": c.provider,
                "model": c.upstream_model,
                "description": c.description,
                "reasoning": c.reasoning,
                "input_len_limit": c.input_len_limit,
                "role_len_limit": c.role_len_limit,
                "context_window": c.context_window,
                "default": c.name == default,
            }
            for c in services.models.configs()
        ]
    )


async def list_apps(request: Request, services: Services) -> Response:
    return json_response([app_json(a) for a in await services.apps.list()])


async def apply_app(request: Request, services: Services) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    name = request.path_params.get("name")
    if name is not None:
        data.setdefault("name", name)
        if data["name"] != name:
            return error_response(400, "invalid_application", "the name in the body differs from the one in the path")
    app, created = await services.apps.apply(data)
    if request.query_params.get("publish") in ("1", "true", "yes"):
        app = await services.apps.publish(app.name)
    return json_response(app_json(app), 201 if created else 200)


async def get_app(request: Request, services: Services) -> Response:
    app = await services.apps.get(request.path_params["name"])
    if app is None:
        return error_response(404, "not_found", f"no application named {request.path_params['name']!r}")
    return json_response(app_json(app))


async def delete_app(request: Request, services: Services) -> Response:
    await services.apps.delete(request.path_params["name"])
    return Response(status_code=204)


async def publish_app(request: Request, services: Services) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    description = data.get("description", "")
    if not isinstance(description, str):
        return error_response(400, "bad_request", "description must be a string")
    app = await services.apps.publish(request.path_params["name"], description)
    return json_response(app_json(app))


async def session_records(request: Request, services: Services) -> Response:
    app = await services.apps.get(request.path_params["name"])
    if app is None:
        return error_response(404, "not_found", f"no application named {request.path_params['name']!r}")
    try:
        count = int(request.query_params.get("count", "100"))
    except ValueError:
        return error_response(400, "bad_request", "count must be an integer")
    before = request.query_params.get("before")
    before_id = parse_id(before) if before else None
    if before and before_id is None:
        return error_response(400, "bad_request", "before must be a record id (decimal digits)")
    if not 1 <= count <= 1000:
        return error_response(400, "bad_request", "count must be between 1 and 1000")
    try:
        face = Face(request.query_params.get("face", Face.ADP))  # session ids are unique within a face
    except ValueError:
        return error_response(400, "bad_request", f"face must be one of {', '.join(Face)}")
    records = await services.engine.session_records(app.id, request.path_params["session_id"], count, before_id, face=face)
    return json_response([record_json(r) for r in records])


async def _app(request: Request, services: Services) -> App | Response:
    """The application the path names, or the 404 answer."""
    app = await services.apps.get(request.path_params["name"])
    if app is None:
        return error_response(404, "not_found", f"no application named {request.path_params['name']!r}")
    return app


def run_json(run: Any, trace: bool = False) -> dict[str, Any]:
    """A stored workflow run: where it stands and, with `trace`, every node's record (input,
    output, raw output, failure, start and cost, model time and usage, the loop or workflow node
    it ran in), the run's values (each node's outputs, the system values) and what waiting nodes
    keep between questions."""
    state = run.state
    records = state.get("records", [])
    data: dict[str, Any] = {
        "run_id": str(run.id), "session_id": run.session_id, "workflow_name": run.workflow_name,
        "status": run.status, "error": run.error, "failed_node": state.get("failed_node"),
        "waiting": state.get("waiting"), "record_id": str(run.record_id) if run.record_id else "",
        "release_version": run.release_version, "created_at": run.created_at, "updated_at": run.updated_at,
        "node_count": len(records),
        "cost_ms": round(sum(r.get("cost_ms", 0) for r in records if not r.get("belong_node_id")), 3),
        "model_ms": round(sum(r.get("model_ms", 0) for r in records if not r.get("belong_node_id")), 3),
    }
    if trace:
        data.update(reply=state.get("reply", ""), outputs=state.get("outputs", {}), nodes=records,
                    values=state.get("values", {}), node_state=state.get("node_state", {}))
    return data


async def workflow_runs(request: Request, services: Services) -> Response:
    app = await _app(request, services)
    if isinstance(app, Response):
        return app
    query = request.query_params
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        return error_response(400, "bad_request", "limit must be an integer")
    if not 1 <= limit <= 1000:
        return error_response(400, "bad_request", "limit must be between 1 and 1000")
    status = query.get("status")
    if status is not None and status not in RUN_STATUSES:
        return error_response(400, "bad_request", f"status must be one of {', '.join(RUN_STATUSES)}")
    before = parse_id(query["before"]) if "before" in query else None
    if "before" in query and before is None:
        return error_response(400, "bad_request", "before must be a run id (decimal digits)")
    runs = await services.engine.workflow_runs(app.id, query.get("session_id"), limit, status=status, before=before)
    return json_response([run_json(r) for r in runs])


async def workflow_run(request: Request, services: Services) -> Response:
    app = await _app(request, services)
    if isinstance(app, Response):
        return app
    run_id = parse_id(request.path_params["run_id"])
    run = await services.engine.workflow_run(app.id, run_id) if run_id is not None else None
    if run is None:
        return error_response(404, "not_found", f"no workflow run {request.path_params['run_id']!r} in this application")
    return json_response(run_json(run, trace=True))


def workflow_json(app: App) -> dict[str, Any]:
    release = app.release
    return {
        "workflow": app.draft.workflow, "workflows": app.draft.workflows,
        "release": {"version": app.release_version, "workflow": release.workflow, "workflows": release.workflows}
        if release is not None else None,
        "has_unpublished_changes": app.has_unpublished_changes,
    }


async def get_workflow(request: Request, services: Services) -> Response:
    app = await _app(request, services)
    if isinstance(app, Response):
        return app
    return json_response(workflow_json(app))


async def workflow_body(request: Request) -> dict[str, Any] | Response:
    """A PUT or validate body: the workflow itself (Parley's format, or a Dify DSL document), or
    `{"workflow": ..., "workflows": [...], "models": {DIFY: PARLEY}}`; JSON, or YAML when the
    Content-Type says so (a Dify export as it is)."""
    if "yaml" in request.headers.get("content-type", ""):
        try:
            data = yaml.safe_load(await request.body() or b"{}")
        except yaml.YAMLError as exc:
            return error_response(400, "bad_yaml", f"the body is not valid YAML: {exc}")
        if not isinstance(data, dict):
            return error_response(400, "bad_yaml", "the body must be a mapping")
    else:
        data = await json_body(request)
        if isinstance(data, Response):
            return data
    if "nodes" in data or data.get("kind") == "app":
        data = {"workflow": data}
    unknown = sorted(set(data) - {"workflow", "workflows", "models"})
    if unknown:
        return error_response(400, "bad_request", f"unknown field {unknown[0]!r}: expected a workflow, or workflow, workflows and models")
    if not isinstance(data.get("workflows", []), list):
        return error_response(400, "bad_request", "workflows must be a list of workflows")
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in models.items()):
        return error_response(400, "bad_request", "models must map Dify model names to configured ones")
    if data.get("workflow") is None:
        return error_response(400, "bad_request", "workflow is required (DELETE removes an application's workflows)")
    return data


async def put_workflow(request: Request, services: Services) -> Response:
    found = await _app(request, services)
    if isinstance(found, Response):
        return found
    data = await workflow_body(request)
    if isinstance(data, Response):
        return data
    dry_run = request.url.path.endswith("/validate")
    app, notes = await services.apps.set_workflow(request.path_params["name"], data["workflow"], data.get("workflows"),
                                                  models=data.get("models"), dry_run=dry_run)
    if not dry_run and request.query_params.get("publish") in ("1", "true", "yes"):
        app = await services.apps.publish(app.name)
    return json_response({**workflow_json(app), "notes": notes, **({"valid": True} if dry_run else {})})


async def delete_workflow(request: Request, services: Services) -> Response:
    found = await _app(request, services)
    if isinstance(found, Response):
        return found
    await services.apps.set_workflow(request.path_params["name"], None)
    return Response(status_code=204)


async def get_words(request: Request, services: Services) -> Response:
    return json_response({"words": services.engine.moderator.global_words()})


async def put_words(request: Request, services: Services) -> Response:
    data = await json_body(request)
    if isinstance(data, Response):
        return data
    words = data.get("words")
    if not isinstance(words, list) or not all(isinstance(w, str) and "\n" not in w for w in words):
        return error_response(400, "bad_request", "words must be a list of one-line strings")
    services.engine.moderator.replace_global_words(words)
    return json_response({"words": services.engine.moderator.global_words()})


routes = [
    Route("/admin/models", guarded(list_models), methods=["GET"]),
    Route("/admin/apps", guarded(list_apps), methods=["GET"]),
    Route("/admin/apps", guarded(apply_app), methods=["POST"]),
    Route("/admin/apps/{name}", guarded(get_app), methods=["GET"]),
    Route("/admin/apps/{name}", guarded(apply_app), methods=["PUT"]),
    Route("/admin/apps/{name}", guarded(delete_app), methods=["DELETE"]),
    Route("/admin/apps/{name}/publish", guarded(publish_app), methods=["POST"]),
    Route("/admin/apps/{name}/sessions/{session_id}/records", guarded(session_records), methods=["GET"]),
    Route("/admin/apps/{name}/workflow-runs", guarded(workflow_runs), methods=["GET"]),
    Route("/admin/apps/{name}/workflow-runs/{run_id}", guarded(workflow_run), methods=["GET"]),
    Route("/admin/apps/{name}/workflow", guarded(get_workflow), methods=["GET"]),
    Route("/admin/apps/{name}/workflow", guarded(put_workflow), methods=["PUT"]),
    Route("/admin/apps/{name}/workflow", guarded(delete_workflow), methods=["DELETE"]),
    Route("/admin/apps/{name}/workflow/validate", guarded(put_workflow), methods=["POST"]),
    Route("/admin/moderation/words", guarded(get_words), methods=["GET"]),
    Route("/admin/moderation/words", guarded(put_words), methods=["PUT"]),
]


def too_large(scope: Scope, limit: int) -> Response:
    return error_response(413, "body_too_large", f"the request body is larger than {limit} bytes")


def body_limit(limit: int) -> BodyLimit:
    return BodyLimit(lambda path: path.startswith("/admin/"), limit, too_large)
