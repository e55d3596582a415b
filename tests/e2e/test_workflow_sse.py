"""Workflows answering over ADP SSE (issue 17): work_flow.current_node as nodes run, message
nodes' text and the end node's reply as the answer with reply method 16 (17 for an operation),
option cards that pause the run until the next question, a failing node's FailMessage in the
error and the record, and `workflow_status: disable`."""

from __future__ import annotations

import uuid

import pytest

from tests.support.sse import post_chat


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


WEATHER = {
    "name": "weather",
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "city", "type": "string", "default": "Paris"}]},
        {"id": "hello", "type": "message", "text": "Checking {{start.city}}..."},
        {"id": "ask", "type": "llm", "name": "Forecast", "prompt": "Forecast for {{start.city}}"},
        {"id": "end", "type": "end", "reply": "{{ask.text}}"},
    ],
    "edges": [{"source": "start", "target": "hello"}, {"source": "hello", "target": "ask"},
              {"source": "ask", "target": "end"}],
}

MENU = {
    "name": "menu",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "pick", "type": "option_cards", "text": "Tea or coffee?", "options": ["Tea", "Coffee"]},
        {"id": "tea", "type": "end", "reply": "Tea it is"},
        {"id": "coffee", "type": "end", "outputs": {"ordered": "{{pick.choice}}"}},
    ],
    "edges": [{"source": "start", "target": "pick"}, {"source": "pick", "target": "tea", "port": "Tea"},
              {"source": "pick", "target": "coffee", "port": "Coffee"}],
}

BROKEN = {
    "name": "broken",
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "n", "type": "integer", "required": True}]},
        {"id": "end", "type": "end", "reply": "{{start.n}}"},
    ],
    "edges": [{"source": "start", "target": "end"}],
}


def ask(parley, app, session, content, **fields):
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "wf-visitor", "session_id": session,
            "content": content, "request_id": str(uuid.uuid4()), **fields}
    return post_chat(parley.url, body)


def test_a_workflow_answers_with_its_nodes_progress(parley, model):
    app = parley.create_app("wf-weather", workflow=WEATHER)
    model.script("Forecast for Oslo", content="Snow.", usage={"prompt_tokens": 5, "completion_tokens": 1})
    stream = ask(parley, app, "wf-s1", "weather?", custom_variables={"city": "Oslo"})
    replies = stream.answer_replies
    final = replies[-1]
    assert final["is_final"] and final["reply_method"] == 16
    assert final["content"] == "Checking Oslo...\n\nSnow."
    nodes = [r["work_flow"]["current_node"] for r in replies if r.get("work_flow") and not r["is_final"]]
    assert [(n["NodeID"], n["Status"]) for n in nodes] == [
        ("start", 1), ("start", 2), ("hello", 1), ("hello", 2), ("ask", 1), ("ask", 2), ("end", 1), ("end", 2)]
    forecast = nodes[5]
    assert forecast["NodeType"] == 3 and forecast["NodeName"] == "Forecast" and forecast["Output"] == '{"text":"Snow."}'
    assert forecast["StatisticInfo"]["InputTokens"] == 5 and forecast["StatisticInfo"]["ModelName"] == "scripted"
    assert final["work_flow"]["workflow_name"] == "weather" and final["work_flow"]["workflow_run_id"]
    procedures = stream.of("token_stat")[-1]["payload"]["procedures"]
    assert procedures[-1]["name"] == "workflow" and procedures[-1]["input_count"] == 5
    [record] = [r for r in parley.records("wf-weather", "wf-s1") if not r["is_from_self"]]
    assert record["content"] == "Checking Oslo...\n\nSnow." and record["reply_method"] == 16


def test_option_cards_pause_until_the_next_question(parley, model):
    app = parley.create_app("wf-menu", workflow=MENU)
    first = ask(parley, app, "wf-s2", "I'd like a drink")
    final = first.answer_replies[-1]
    assert final["content"] == "Tea or coffee?" and final["option_cards"] == ["Tea", "Coffee"]
    assert final["work_flow"]["option_cards"] == ["Tea", "Coffee"]
    second = ask(parley, app, "wf-s2", "Tea")
    assert second.answer_replies[-1]["content"] == "Tea it is"
    assert second.answer_replies[-1]["work_flow"]["workflow_run_id"] == final["work_flow"]["workflow_run_id"]
    # a new question in the same session starts a new run; Coffee ends with outputs only: an operation
    ask(parley, app, "wf-s2", "another one")
    operation = ask(parley, app, "wf-s2", "Coffee").answer_replies[-1]
    assert operation["reply_method"] == 17 and operation["work_flow"]["outputs"] == ["ordered: Coffee"]


def test_a_failing_node_reaches_the_client_and_the_record(parley, model):
    app = parley.create_app("wf-broken", workflow=BROKEN)
    stream = ask(parley, app, "wf-s3", "go", custom_variables={"n": "many"})
    [error] = stream.of("error")
    assert error["error"]["code"] == 501
    assert "node start: input 'n' must be integer, got text that is not JSON: 'many'" in error["error"]["message"]
    failed = [r["work_flow"]["current_node"] for r in stream.answer_replies if r.get("work_flow")][-1]
    assert failed["Status"] == 3 and failed["FailMessage"] == "input 'n' must be integer, got text that is not JSON: 'many'"
    [record] = [r for r in parley.records("wf-broken", "wf-s3") if not r["is_from_self"]]
    assert record["status"] == "failed" and "input 'n' must be integer" in record["error_message"]


def test_workflow_status_disable_skips_the_workflow(parley, model):
    app = parley.create_app("wf-skip", workflow=WEATHER)
    stream = ask(parley, app, "wf-s4", "just chat", workflow_status="disable")
    final = stream.answer_replies[-1]
    assert final["content"] == "Echo: just chat" and final["reply_method"] == 1 and "work_flow" not in final


def test_runs_are_readable_through_the_admin_api(parley, model):
    app = parley.create_app("wf-traced", workflow=MENU)
    paused = ask(parley, app, "wf-s5", "drink?").answer_replies[-1]
    run_id = paused["work_flow"]["workflow_run_id"]
    [listed] = parley.admin("GET", "/admin/apps/wf-traced/workflow-runs", params={"session_id": "wf-s5"}).json()
    assert listed["run_id"] == run_id and listed["status"] == "suspended" and listed["record_id"] == paused["record_id"]
    ask(parley, app, "wf-s5", "Tea")
    run = parley.admin("GET", f"/admin/apps/wf-traced/workflow-runs/{run_id}").json()
    assert run["status"] == "finished" and run["reply"] == "Tea it is" and run["release_version"] == 1
    assert [(n["node_id"], n["status"]) for n in run["nodes"]] == [("start", 2), ("pick", 1), ("pick", 2), ("tea", 2)]
    assert run["nodes"][2]["input"] == {"options": ["Tea", "Coffee"], "answer": "Tea"}
    assert parley.admin("GET", "/admin/apps/wf-traced/workflow-runs/123").status_code == 404
    assert parley.admin("GET", "/admin/apps/wf-traced/workflow-runs/nope").status_code == 404
    assert parley.admin("GET", "/admin/apps/wf-traced/workflow-runs", params={"limit": "0"}).status_code == 400


def test_a_broken_run_is_traced_with_its_failure(parley, model):
    app = parley.create_app("wf-broken-trace", workflow=BROKEN)
    ask(parley, app, "wf-s6", "go")
    [run] = parley.admin("GET", "/admin/apps/wf-broken-trace/workflow-runs").json()
    detail = parley.admin("GET", f"/admin/apps/wf-broken-trace/workflow-runs/{run['run_id']}").json()
    assert detail["status"] == "failed" and detail["failed_node"] == "start"
    assert detail["nodes"][-1]["fail_message"] == "required input 'n' is missing (custom_variables)"
