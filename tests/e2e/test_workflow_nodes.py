"""Each node type alone, end to end over ADP SSE (issue 17): an application whose workflow is
start -> the node -> end answers one question through a running server, with the node's
current_node reported (its ADP NodeType, Status 2) and its output in the end node's reply. The
runner's own tests (tests/workflow) cover each type's cases; these prove the server wiring:
the application's model, the operator's sandbox and HTTP settings, custom_variables. Nodes
shown elsewhere over SSE: message, llm, option cards and workflow (test_workflow_sse.py),
knowledge retrieval (test_knowledge_chat.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import Stream, post_chat


@pytest.fixture(scope="module")
def server(
    scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    """One server per database, with code nodes on and HTTP nodes allowed to reach loopback
    (where the scripted model listens)."""
    config = default_config(scripted_model) + "\n[workflows]\ncode_enabled = true\nhttp_allow_private = true\n"
    parley = start_parley(tmp_path_factory.mktemp("workflow-nodes"), config, database_args)
    yield parley
    parley.close()


def single(node: dict[str, Any], reply: str, inputs: list[dict[str, Any]] | None = None,
           ports: dict[str, str] | None = None) -> dict[str, Any]:
    """start -> node -> end (or one end per port, each replying with the port's name)."""
    nodes = [{"id": "start", "type": "start", "inputs": inputs or []}, node]
    edges = [{"source": "start", "target": node["id"]}]
    if ports:
        for port, text in ports.items():
            nodes.append({"id": f"end-{port}", "type": "end", "reply": text})
            edges.append({"source": node["id"], "target": f"end-{port}", "port": port})
    else:
        nodes.append({"id": "end", "type": "end", "reply": reply})
        edges.append({"source": node["id"], "target": "end"})
    return {"name": "one-" + node["type"], "nodes": nodes, "edges": edges}


def ask(server: ParleyServer, app: dict[str, Any], session: str, question: str, **fields: Any) -> Stream:
    return post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "nodes-visitor",
                                  "session_id": session, "content": question, "request_id": str(uuid.uuid4()), **fields})


def node_reports(stream: Stream, node_id: str) -> list[dict[str, Any]]:
    return [r["work_flow"]["current_node"] for r in stream.answer_replies
            if not r["is_final"] and r.get("work_flow") and r["work_flow"]["current_node"]["NodeID"] == node_id]


CASES = {
    "parameter_extractor": (
        single({"id": "n", "type": "parameter_extractor", "ask": "Which {{missing}}?",
                "parameters": [{"name": "city", "type": "string", "required": True, "description": "the city"}]},
               "City: {{n.city}}"),
        [("param question: a room in Oslo", '{"city": "Oslo"}')], "param question: a room in Oslo", {}, 2, "City: Oslo"),
    "llm": (
        single({"id": "n", "type": "llm", "prompt": "llm node: {{sys.query}}"}, "{{n.text}}"),
        [("llm node: hello", "Hi there.")], "hello", {}, 3, "Hi there."),
    "tag_extractor": (
        single({"id": "n", "type": "tag_extractor", "tags": [{"name": "mood", "values": ["happy", "angry"]}]},
               "mood={{n.mood}}"),
        [("tag question: lovely day", '{"mood": "happy"}')], "tag question: lovely day", {}, 6, "mood=happy"),
    "code": (
        single({"id": "n", "type": "code", "code": "def main(x):\n    return {'double': x * 2}",
                "inputs": {"x": "{{start.x}}"}, "outputs": {"double": "integer"}, "timeout": 10},
               "{{n.double}}", inputs=[{"name": "x", "type": "integer", "default": 1}]),
        [], "double it", {"x": "21"}, 7, "42"),
    "http": (
        single({"id": "n", "type": "http", "method": "GET", "url": "{{start.base}}/models"},
               "{{n.status_code}} {{n.json.object}}", inputs=[{"name": "base", "type": "string"}]),
        [], "call it", {"base": "MODEL_BASE"}, 8, "200 list"),
    "condition": (
        single({"id": "n", "type": "condition",
                "branches": [{"port": "big", "conditions": [{"value": "{{start.amount}}", "op": "ge", "to": 100}]}]},
               "", inputs=[{"name": "amount", "type": "integer", "default": 0}],
               ports={"big": "a big order", "else": "a small order"}),
        [], "how big?", {"amount": "150"}, 9, "a big order"),
    "message": (
        single({"id": "n", "type": "message", "text": "Working on {{sys.query}}..."}, "done"),
        [], "the report", {}, 10, "Working on the report...\n\ndone"),
    "loop": (
        single({"id": "n", "type": "loop", "count": 3, "output": "{{sq.output}}",
                "body": {"nodes": [{"id": "sq", "type": "template", "template": "#{{ i }}",
                                    "variables": {"i": "{{n.index}}"}}], "edges": []}},
               "{{n.iterations}} rounds"),
        [], "loop it", {}, 12, "3 rounds"),
    "intent": (
        single({"id": "n", "type": "intent", "fallback": "refund",
                "intents": [{"id": "weather", "name": "weather questions"}, {"id": "refund", "name": "refunds"}]},
               "", ports={"weather": "a weather question", "refund": "a refund"}),
        [("intent question: rain tomorrow", '{"intent": "weather"}')], "intent question: rain tomorrow", {}, 13,
        "a weather question"),
    "variable_aggregator": (
        single({"id": "n", "type": "variable_aggregator", "variables": ["{{start.nickname}}", "{{start.name}}"]},
               "Hello {{n.output}}", inputs=[{"name": "nickname", "type": "string"},
                                              {"name": "name", "type": "string", "default": "Ada"}]),
        [], "greet me", {}, 17, "Hello Ada"),
    "template": (
        single({"id": "n", "type": "template", "template": "{{ who | upper }} x{{ n }}",
                "variables": {"who": "{{start.who}}", "n": 2}}, "{{n.output}}",
               inputs=[{"name": "who", "type": "string", "default": "ann"}]),
        [], "render", {}, 101, "ANN x2"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_node_type_answers_over_sse(server, model, kind):
    workflow, scripts, question, variables, node_type, reply = CASES[kind]
    for match, content in scripts:
        model.script(match, content=content)
    variables = {k: v.replace("MODEL_BASE", model.base_url) for k, v in variables.items()}
    app = server.create_app(f"node-{kind}".replace("_", "-"), workflow=workflow)
    stream = ask(server, app, f"nodes-{kind}", question, custom_variables=variables)
    assert not stream.of("error"), stream.raw
    final = stream.answer_replies[-1]
    assert final["is_final"] and final["reply_method"] == 16 and final["content"] == reply, final
    reports = node_reports(stream, "n")
    assert reports and reports[-1]["NodeType"] == node_type and reports[-1]["Status"] == 2, reports


def test_a_parameter_extractor_asks_for_a_missing_value_over_sse(server, model):
    workflow = CASES["parameter_extractor"][0]
    app = server.create_app("node-asks", workflow=workflow)
    model.script("asks: a room please", content="{}")
    first = ask(server, app, "nodes-asks", "asks: a room please").answer_replies[-1]
    assert first["content"] == "Which the city?" and first["reply_method"] == 16
    assert first["work_flow"]["current_node"]["Status"] == 1  # waiting for the answer
    model.script("asks: Lisbon", content='{"city": "Lisbon"}')
    second = ask(server, app, "nodes-asks", "asks: Lisbon").answer_replies[-1]
    assert second["content"] == "City: Lisbon"
    assert second["work_flow"]["workflow_run_id"] == first["work_flow"]["workflow_run_id"]


@pytest.mark.parametrize(("code", "words"), [
    ("def main():\n    while True:\n        pass", "stopped"),
    ("def main():\n    open('/tmp/escaped-by-a-code-node', 'w').write('x')\n    return {}",
     "writing outside the working folder is not allowed"),
])
def test_a_code_node_that_misbehaves_is_stopped_and_reported(server, model, code, words):
    workflow = single({"id": "n", "type": "code", "code": code, "inputs": {}, "outputs": {}, "timeout": 1.5}, "never")
    name = "node-bad-code-" + uuid.uuid4().hex[:6]
    app = server.create_app(name, workflow=workflow)
    stream = ask(server, app, "nodes-bad-code", "run it")
    [error] = stream.of("error")
    assert error["error"]["code"] == 501 and words in error["error"]["message"], error
    failed = node_reports(stream, "n")[-1]
    assert failed["Status"] == 3 and words in failed["FailMessage"]
    [record] = [r for r in server.records(name, "nodes-bad-code") if not r["is_from_self"]]
    assert record["status"] == "failed" and words in record["error_message"]
    assert not Path("/tmp/escaped-by-a-code-node").exists()
