"""An application's workflow is part of its configuration: validated when applied, frozen by
publishing (issue 17). Answering through it on the wire comes with the engine's part."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


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
    assert response.status_code == 400
    assert "node 'end' field 'reply': {{ask.txt}}: node 'ask' has no output 'txt'" in response.json()["error"]["message"]

    unknown_model = {**WORKFLOW, "nodes": [WORKFLOW["nodes"][0], {**WORKFLOW["nodes"][1], "model": "gpt-nothing"}, WORKFLOW["nodes"][2]]}
    response = parley.admin("POST", "/admin/apps", json={"name": "wf-bad", "workflow": unknown_model})
    assert response.status_code == 400
    assert "workflow node 'ask': model 'gpt-nothing' is not configured" in response.json()["error"]["message"]
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
