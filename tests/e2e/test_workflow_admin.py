"""An application's workflow is part of its configuration: validated when applied, frozen by
publishing (issue 17); and its own admin API, /admin/apps/{name}/workflow (draft only, Dify
DSL imported on the way, problems naming workflow, node and field)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

DIFY = Path(__file__).parent.parent / "workflow" / "dify"


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


def put_text(parley, path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {**parley.admin_headers, "Content-Type": content_type}
    return httpx.put(parley.url + path, content=body, headers=headers, timeout=30)

WORKFLOW = {
    "name": "desk",
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "city", "type": "string"}]},
        {"id": "ask", "type": "llm", "model": "scripted", "prompt": "Weather in {{start.city}}?"},
        {"id": "end", "type": "end", "reply": "{{ask.text}}"},
    ],
    "edges": [{"source": "start", "target": "ask"}, {"source": "ask", "target": "end"}],
}


def test_a_workflow_is_validated_when_applied(parley):
    bad = {**WORKFLOW, "nodes": [*WORKFLOW["nodes"][:2], {"id": "end", "type": "end", "reply": "{{ask.txt}}"}]}
    response = parley.admin("POST", "/admin/apps", json={"name": "wf-bad", "workflow": bad})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_workflow"
    assert response.json()["error"]["problems"][0] | {"message": ""} == {"workflow": "desk", "node": "end", "field": "reply", "message": ""}
    assert "node 'end' field 'reply': {{ask.txt}}: node 'ask' has no output 'txt'" in response.json()["error"]["message"]

    unknown_model = {**WORKFLOW, "nodes": [WORKFLOW["nodes"][0], {**WORKFLOW["nodes"][1], "model": "gpt-nothing"}, WORKFLOW["nodes"][2]]}
    response = parley.admin("POST", "/admin/apps", json={"name": "wf-bad", "workflow": unknown_model})
    assert response.status_code == 400
    assert "workflow 'desk' node 'ask' field 'model': model 'gpt-nothing' is not configured" in response.json()["error"]["message"]
    assert parley.admin("GET", "/admin/apps/wf-bad").status_code == 404


def test_a_workflow_reaches_the_release_at_publish(parley):
    parley.create_app("wf-desk", publish=True, workflow=WORKFLOW)
    changed = {**WORKFLOW, "nodes": [*WORKFLOW["nodes"][:2], {"id": "end", "type": "end", "reply": "Sky: {{ask.text}}"}]}
    draft = parley.create_app("wf-desk", publish=False, workflow=changed)
    assert draft["has_unpublished_changes"]
    assert draft["release"]["workflow"]["nodes"][2]["reply"] == "{{ask.text}}"
    assert draft["draft"]["workflow"]["nodes"][2]["reply"] == "Sky: {{ask.text}}"
    published = parley.admin("POST", "/admin/apps/wf-desk/publish", json={}).json()
    assert published["release"]["workflow"]["nodes"][2]["reply"] == "Sky: {{ask.text}}"
    assert published["release"]["workflow"]["workflow"] == 1  # stored normalised, with its format version


def test_the_workflow_api_edits_the_draft_only(parley):
    parley.create_app("wf-api", publish=True, workflow=WORKFLOW)
    path = "/admin/apps/wf-api/workflow"
    shown = parley.admin("GET", path).json()
    assert shown["workflow"]["name"] == "desk" and shown["release"]["version"] == 1 and shown["workflows"] == []

    changed = {**WORKFLOW, "nodes": [*WORKFLOW["nodes"][:2], {"id": "end", "type": "end", "reply": "Sky: {{ask.text}}"}]}
    put = parley.admin("PUT", path, json=changed)
    assert put.status_code == 200, put.text
    assert put.json()["workflow"]["nodes"][2]["reply"] == "Sky: {{ask.text}}" and put.json()["has_unpublished_changes"]
    assert put.json()["release"]["workflow"]["nodes"][2]["reply"] == "{{ask.text}}"  # visitors: after the publish
    parley.admin("POST", "/admin/apps/wf-api/publish", json={})
    assert parley.admin("GET", path).json()["release"]["workflow"]["nodes"][2]["reply"] == "Sky: {{ask.text}}"

    bad = {**WORKFLOW, "nodes": [*WORKFLOW["nodes"][:2], {"id": "end", "type": "end", "reply": "{{ask.txt}}"}]}
    for method, where in (("PUT", path), ("POST", path + "/validate")):
        refused = parley.admin(method, where, json=bad)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "invalid_workflow"
        assert error["problems"] == [{"workflow": "desk", "node": "end", "field": "reply",
                                      "message": "{{ask.txt}}: node 'ask' has no output 'txt' (its outputs: text)"}]
    checked = parley.admin("POST", path + "/validate", json={"workflow": changed, "workflows": []})
    assert checked.status_code == 200 and checked.json()["valid"]
    assert parley.admin("GET", "/admin/apps/wf-api").json()["has_unpublished_changes"] is False  # validate stores nothing

    assert parley.admin("DELETE", path).status_code == 204
    assert parley.admin("GET", path).json()["workflow"] is None
    assert parley.admin("GET", "/admin/apps/wf-nothing/workflow").status_code == 404
    assert parley.admin("PUT", "/admin/apps/wf-nothing/workflow", json=WORKFLOW).status_code == 404
    assert put_text(parley, path, b"[1", "application/json").json()["error"]["code"] == "bad_json"
    assert put_text(parley, path, b"{a: [", "application/yaml").json()["error"]["code"] == "bad_yaml"


def test_the_workflow_api_imports_dify_and_checks_workflow_nodes(parley):
    parley.create_app("wf-dify", publish=False)
    path = "/admin/apps/wf-dify/workflow"
    legacy = (DIFY / "legacy_workflow.yml").read_bytes()
    unmapped = put_text(parley, path, legacy, "application/yaml")
    assert unmapped.status_code == 400
    problems = unmapped.json()["error"]["problems"]
    assert [p["node"] for p in problems] == ["1711528919501", "1711528920788"]  # Dify's node ids
    assert "Dify llm node: model 'gpt-3.5-turbo' is not configured here" in problems[0]["message"]

    import yaml

    document = yaml.safe_load(legacy)
    put = parley.admin("PUT", path, json={"workflow": document, "models": {"gpt-3.5-turbo": "scripted"}})
    assert put.status_code == 200, put.text
    assert put.json()["workflow"]["name"] == "tone-switch" and put.json()["workflow"]["workflow"] == 1

    caller = {"name": "caller", "nodes": [{"id": "start", "type": "start"},
                                          {"id": "call", "type": "workflow", "workflow": "helper"},
                                          {"id": "end", "type": "end", "reply": "{{call.reply}}"}],
              "edges": [{"source": "start", "target": "call"}, {"source": "call", "target": "end"}]}
    missing = parley.admin("PUT", path, json={"workflow": caller})
    assert missing.json()["error"]["problems"] == [{"workflow": "caller", "node": "call", "field": "workflow",
                                                    "message": "no workflow named 'helper' in the application (known: caller)"}]
    helper = {"name": "helper", "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end", "reply": "hi"}],
              "edges": [{"source": "start", "target": "end"}]}
    both = parley.admin("PUT", path, json={"workflow": caller, "workflows": [helper]})
    assert both.status_code == 200 and [w["name"] for w in both.json()["workflows"]] == ["helper"]
