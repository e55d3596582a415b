"""Workflows answering over ADP SSE (issue 17): work_flow.current_node as nodes run, message
nodes' text and the end node's reply as the answer with reply method 16 (17 for an operation),
option cards that pause the run until the next question, a failing node's FailMessage in the
error and the record, and `workflow_status: disable`."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.support.sse import event_blocks, post_chat


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
    # token_stat: the run's `workflow` procedure, then one per node that called a model, with its usage
    stat = stream.of("token_stat")[-1]["payload"]
    workflow, forecast_usage = stat["procedures"]
    assert (workflow["name"], workflow["status"], workflow["count"]) == ("workflow", "success", 0)
    assert (forecast_usage["name"], forecast_usage["title"], forecast_usage["status"]) == ("workflow", "Forecast", "success")
    assert (forecast_usage["input_count"], forecast_usage["output_count"]) == (5, 1)
    assert forecast_usage["token_usage_details"][0]["model_name"] == "scripted"
    assert stat["token_count"] == stat["used_count"] == 6
    # thoughts: each node's start and end, the workflow named
    thoughts = [t["payload"] for t in stream.of("thought")]
    assert all(t["is_workflow"] and t["workflow_name"] == "weather" for t in thoughts)
    assert [(t["procedures"][-1]["node_name"], t["procedures"][-1]["status"]) for t in thoughts] == [
        ("start", "processing"), ("start", "success"), ("hello", "processing"), ("hello", "success"),
        ("Forecast", "processing"), ("Forecast", "success"), ("end", "processing"), ("end", "success")]
    last = thoughts[-1]["procedures"]
    assert [p["title"] for p in last] == ["start", "hello", "Forecast", "end"] and [p["index"] for p in last] == [0, 1, 2, 3]
    assert all(p["status"] == "success" and p["switch"] == "workflow" and p["plugin_type"] == 2 for p in last)
    assert last[2]["debugging"]["content"].startswith("Forecast: done (")
    [record] = [r for r in parley.records("wf-weather", "wf-s1") if not r["is_from_self"]]
    assert record["content"] == "Checking Oslo...\n\nSnow." and record["reply_method"] == 16
    assert [(p["name"], p.get("node"), p["input_tokens"]) for p in record["token_stat"]["procedures"]] == [
        ("workflow", None, 0), ("workflow", "Forecast", 5)]


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


def test_the_run_trace_pages_filters_and_shows_values_and_timings(parley, model):
    app = parley.create_app("wf-paged", workflow=MENU)
    for session in ("wf-p1", "wf-p2", "wf-p3"):
        ask(parley, app, session, "drink?")
    ask(parley, app, "wf-p2", "Tea")
    path = "/admin/apps/wf-paged/workflow-runs"
    newest_first = [r["run_id"] for r in parley.admin("GET", path).json()]
    assert len(newest_first) == 3
    page = parley.admin("GET", path, params={"limit": 2}).json()
    rest = parley.admin("GET", path, params={"limit": 2, "before": page[-1]["run_id"]}).json()
    assert [r["run_id"] for r in page + rest] == newest_first
    waiting = parley.admin("GET", path, params={"status": "suspended"}).json()
    assert sorted(r["session_id"] for r in waiting) == ["wf-p1", "wf-p3"] and waiting[0]["waiting"] == "pick"
    [done] = parley.admin("GET", path, params={"status": "finished"}).json()
    assert done["session_id"] == "wf-p2" and done["node_count"] == 4 and done["cost_ms"] >= 0
    detail = parley.admin("GET", f"{path}/{done['run_id']}").json()
    assert detail["values"]["pick"] == {"choice": "Tea", "index": 0} and detail["values"]["sys"]["query"] == "Tea"
    assert all(n["started_at"] > 0 and n["cost_ms"] >= 0 for n in detail["nodes"])
    pending = parley.admin("GET", f"{path}/{waiting[0]['run_id']}").json()
    assert pending["node_state"]["pick"]  # what the waiting node keeps between questions
    for bad in ({"status": "sleeping"}, {"before": "x"}):
        assert parley.admin("GET", path, params=bad).status_code == 400


def test_a_broken_run_is_traced_with_its_failure(parley, model):
    app = parley.create_app("wf-broken-trace", workflow=BROKEN)
    ask(parley, app, "wf-s6", "go")
    [run] = parley.admin("GET", "/admin/apps/wf-broken-trace/workflow-runs").json()
    detail = parley.admin("GET", f"/admin/apps/wf-broken-trace/workflow-runs/{run['run_id']}").json()
    assert detail["status"] == "failed" and detail["failed_node"] == "start"
    assert detail["nodes"][-1]["fail_message"] == "required input 'n' is missing (custom_variables)"


SLOW_MENU = {
    "name": "slow-menu",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "pick", "type": "option_cards", "text": "Tea or coffee?", "options": ["Tea", "Coffee"]},
        {"id": "brew", "type": "llm", "prompt": "Brew {{pick.choice}} slowly"},
        {"id": "end", "type": "end", "reply": "{{brew.text}}"},
    ],
    "edges": [{"source": "start", "target": "pick"}, {"source": "pick", "target": "brew", "port": "Tea"},
              {"source": "pick", "target": "brew", "port": "Coffee"}, {"source": "brew", "target": "end"}],
}


def test_two_questions_at_once_resume_a_paused_run_only_once(parley, model):
    """The second question finds the run claimed by the first and gets ADP's busy error
    (460011), rather than running the paused run a second time (before: both resumed it)."""
    from concurrent.futures import ThreadPoolExecutor

    app = parley.create_app("wf-race", workflow=SLOW_MENU)
    paused = ask(parley, app, "wf-s7", "a drink").answer_replies[-1]
    run_id = paused["work_flow"]["workflow_run_id"]
    # a question refused after it claimed the run (the session is another visitor's) gives it back
    intruder = ask(parley, app, "wf-s7", "Tea", visitor_biz_id="wf-intruder")
    assert intruder.of("error") and intruder.of("error")[0]["error"]["code"] != 460011
    model.script("slowly", content="Brewed.", ttft=1.5)
    with ThreadPoolExecutor(2) as pool:
        streams = list(pool.map(lambda _: ask(parley, app, "wf-s7", "Tea"), range(2)))
    answered = [s for s in streams if s.answer_replies and s.answer_replies[-1]["is_final"]]
    refused = [s for s in streams if s.of("error")]
    assert len(answered) == 1 and len(refused) == 1, [s.raw for s in streams]
    final = answered[0].answer_replies[-1]
    assert final["content"] == "Brewed." and final["work_flow"]["workflow_run_id"] == run_id
    [error] = refused[0].of("error")
    assert error["error"]["code"] == 460011
    assert model.stats()["calls"] == 1
    run = parley.admin("GET", f"/admin/apps/wf-race/workflow-runs/{run_id}").json()
    assert run["status"] == "finished" and [n["node_id"] for n in run["nodes"]].count("brew") == 1
    # the refused question left the session able to go on
    assert ask(parley, app, "wf-s7", "again").answer_replies[-1]["option_cards"] == ["Tea", "Coffee"]


def test_a_workflow_node_pauses_with_its_inner_workflow(parley, model):
    """A workflow node (NodeType 14) whose workflow shows option cards pauses the outer run;
    the click resumes inside the inner workflow, then the outer one ends."""
    outer = {
        "name": "shop",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "order", "type": "workflow", "workflow": "menu"},
            {"id": "end", "type": "end", "reply": "Order: {{order.reply}}"},
        ],
        "edges": [{"source": "start", "target": "order"}, {"source": "order", "target": "end"}],
    }
    app = parley.create_app("wf-nested", workflow=outer, workflows=[MENU])
    first = ask(parley, app, "wf-s8", "shopping").answer_replies
    final = first[-1]
    assert final["content"] == "Tea or coffee?" and final["option_cards"] == ["Tea", "Coffee"]
    nodes = [r["work_flow"]["current_node"] for r in first if r.get("work_flow") and not r["is_final"]]
    assert ("pick", 1, "order") in [(n["NodeID"], n["Status"], n["BelongNodeID"]) for n in nodes]
    assert (nodes[-1]["NodeID"], nodes[-1]["NodeType"], nodes[-1]["Status"]) == ("order", 14, 1)
    second = ask(parley, app, "wf-s8", "Tea").answer_replies
    assert second[-1]["content"] == "Order: Tea it is" and second[-1]["reply_method"] == 16
    assert second[-1]["work_flow"]["workflow_run_id"] == final["work_flow"]["workflow_run_id"]
    resumed = [(r["work_flow"]["current_node"]["NodeID"], r["work_flow"]["current_node"]["Status"])
               for r in second if r.get("work_flow") and not r["is_final"]]
    assert resumed[:2] == [("pick", 2), ("tea", 1)] and resumed[-2:] == [("end", 1), ("end", 2)]

    refused = parley.admin("POST", "/admin/apps", json={"name": "wf-nested", "workflow": outer})
    assert refused.status_code == 400
    assert "node 'order' field 'workflow': no workflow named 'menu'" in refused.json()["error"]["message"]


def test_a_stopped_run_leaves_the_session_free(parley, model):
    """A visitor who stops the answer while a resumed run works ends that run (stored
    `stopped`): the session's next question starts the workflow afresh (before: the run stayed
    claimed and every question got 460011 until `claim_timeout`, 10 minutes)."""
    app = parley.create_app("wf-stopped", workflow=SLOW_MENU)
    paused = ask(parley, app, "wf-s10", "a drink").answer_replies[-1]
    run_id = paused["work_flow"]["workflow_run_id"]
    model.script("Brew Coffee slowly", content="Brewed.", ttft=30)
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "wf-visitor", "session_id": "wf-s10",
            "content": "Coffee", "request_id": str(uuid.uuid4())}
    events = []
    with httpx.stream("POST", f"{parley.url}/v1/qbot/chat/sse", json=body, timeout=60) as response:
        for block in event_blocks(response):
            data = json.loads(block.split("data:", 1)[1])
            events.append(data)
            current = (data["payload"].get("work_flow") or {}).get("current_node") or {}
            if data["type"] == "reply" and current.get("NodeID") == "brew" and current.get("Status") == 1:
                stop = httpx.post(f"{parley.url}/v1/qbot/chat/stop", timeout=30, json={
                    **{k: body[k] for k in ("bot_app_key", "visitor_biz_id", "session_id")},
                    "record_id": data["payload"]["record_id"], "request_id": "wf-stop"})
                assert stop.json()["type"] == "stop", stop.text
    assert events[-1]["type"] == "reply" and events[-1]["payload"]["is_final"]
    run = parley.admin("GET", f"/admin/apps/wf-stopped/workflow-runs/{run_id}").json()
    assert run["status"] == "stopped", run
    again = ask(parley, app, "wf-s10", "another drink")
    assert not again.of("error"), again.raw
    final = again.answer_replies[-1]
    assert final["option_cards"] == ["Tea", "Coffee"] and final["work_flow"]["workflow_run_id"] != run_id
