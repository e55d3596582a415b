"""Defining applications: the admin API and `parley app apply`, and `parley chat` in a terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.processes import ROOT


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


def parley_cli(server, *args, input_text=None):
    return subprocess.run(
        [sys.executable, "-m", "parley", *args, "--config", str(server.config_file), "--data-dir", str(server.data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=server.env, input=input_text,
    )


def test_the_admin_api_needs_the_token(parley):
    import httpx

    assert httpx.get(f"{parley.url}/admin/apps").status_code == 401
    wrong = httpx.get(f"{parley.url}/admin/apps", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert parley.admin("GET", "/admin/apps").status_code == 200


def test_the_admin_api_explains_a_bad_definition(parley):
    response = parley.admin("POST", "/admin/apps", json={"name": "bad app!", "history_depth": -1, "colour": "red"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "name" in message and "history_depth" in message and "colour" in message
    unknown = parley.admin("POST", "/admin/apps", json={"name": "bad-model", "model": "gpt-nothing"})
    assert unknown.status_code == 400 and "gpt-nothing" in unknown.json()["error"]["message"]
    assert parley.admin("GET", "/admin/apps/bad-model").status_code == 404


def test_models_list_their_limits(parley):
    models = {m["name"]: m for m in parley.admin("GET", "/admin/models").json()}
    assert models["scripted"]["input_len_limit"] == 200 and models["scripted"]["role_len_limit"] == 100
    assert models["scripted"]["default"] and models["Deepseek/deepseek-r1-0528"]["reasoning"]


def test_publishing_keeps_releases_immutable(parley):
    parley.create_app("admin-releases", publish=True, greeting="v1")
    draft = parley.create_app("admin-releases", publish=False, greeting="v2")
    assert draft["release"]["greeting"] == "v1" and draft["draft"]["greeting"] == "v2"
    assert draft["has_unpublished_changes"] and draft["release_version"] == 1
    published = parley.admin("POST", "/admin/apps/admin-releases/publish", json={"description": "second"}).json()
    assert published["release"]["greeting"] == "v2" and published["release_version"] == 2
    assert published["app_key"] == draft["app_key"]


def test_apply_a_yaml_file_then_chat_in_the_terminal(parley, model, tmp_path):
    definition = tmp_path / "apps.yaml"
    definition.write_text(textwrap.dedent("""\
        apps:
          - name: cli-bot
            system_role: You are the CLI bot.
            greeting: Hi from the CLI.
            streaming: {throttle: 3}
          - name: cli-bot-2
            history_depth: 0
        """))
    applied = parley_cli(parley, "app", "apply", str(definition), "--publish")
    assert applied.returncode == 0, applied.stderr
    assert "created cli-bot" in applied.stdout and "created cli-bot-2" in applied.stdout
    listed = parley_cli(parley, "app", "list")
    assert "cli-bot  (published v1)" in listed.stdout

    model.script("terminal question", reasoning="Let me think.", content="Terminal answer.")
    chat = subprocess.run(
        [sys.executable, "-m", "parley", "chat", "cli-bot", "--server", parley.url, "-m", "terminal question",
         "--model", "Deepseek/deepseek-r1-0528", "--config", str(parley.config_file), "--data-dir", str(parley.data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=parley.env,
    )
    assert chat.returncode == 0, chat.stdout + chat.stderr
    assert "thinking: Let me think." in chat.stdout and "Terminal answer." in chat.stdout
    assert model.stats()["requests"][-1]["messages"][0]["content"] == "You are the CLI bot."


def test_apply_refuses_a_bad_file_and_changes_nothing(parley, tmp_path):
    parley.create_app("cli-keep", greeting="original")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: cli-keep\ngreeting: changed\nhistory_depth: many\n")
    result = parley_cli(parley, "app", "apply", str(bad))
    assert result.returncode == 2 and "history_depth" in result.stderr
    assert parley.admin("GET", "/admin/apps/cli-keep").json()["draft"]["greeting"] == "original"


def test_workflow_apply_puts_a_workflow_into_the_draft(parley, tmp_path):
    parley.create_app("cli-flow", publish=True, greeting="hello")
    (tmp_path / "helper.yaml").write_text("name: helper\nnodes:\n  - {id: s, type: start}\n  - {id: e, type: end, reply: hi}\n"
                                          "edges: [{source: s, target: e}]\n")
    caller = tmp_path / "caller.yaml"
    caller.write_text("name: caller\nnodes:\n  - {id: s, type: start}\n  - {id: call, type: workflow, workflow: helper}\n"
                      "  - {id: e, type: end, reply: '{{call.reply}}'}\n"
                      "edges: [{source: s, target: call}, {source: call, target: e}]\n")
    applied = parley_cli(parley, "workflow", "apply", str(caller), "--app", "cli-flow")
    assert applied.returncode == 0, applied.stderr
    assert "applied workflow 'caller', 'helper' to the draft of cli-flow" in applied.stdout
    shown = parley.admin("GET", "/admin/apps/cli-flow/workflow").json()
    assert shown["workflow"]["name"] == "caller" and [w["name"] for w in shown["workflows"]] == ["helper"]
    assert shown["release"]["workflow"] is None and shown["has_unpublished_changes"]  # visitors: at the next publish

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nnodes:\n  - {id: s, type: start}\n  - {id: e, type: end, reply: '{{s.x}}'}\n"
                      "edges: [{source: s, target: e}]\n")
    refused = parley_cli(parley, "workflow", "apply", str(broken), "--app", "cli-flow")
    assert refused.returncode == 2
    assert "workflow 'broken' node 'e' field 'reply': {{s.x}}: node 's' has no output 'x'" in refused.stderr
    assert parley.admin("GET", "/admin/apps/cli-flow/workflow").json()["workflow"]["name"] == "caller"
    missing = parley_cli(parley, "workflow", "apply", str(caller), "--app", "cli-nothing")
    assert missing.returncode == 2 and "no application named 'cli-nothing'" in missing.stderr


def test_chat_reports_an_error_event(parley):
    result = subprocess.run(
        [sys.executable, "-m", "parley", "chat", "no-such-app-key", "--server", parley.url, "-m", "hello"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=parley.env,
    )
    assert result.returncode == 1 and "4505004" in result.stdout


def test_a_command_run_beside_the_server_leaves_its_answers_in_progress_alone(parley, request):
    """`parley app ...` opens the server's database too: it must not close the live server's
    answers in progress as if a previous run had left them (on SQLite it did). An answer is made
    "in progress" in the database itself, so that no timing decides the outcome."""
    import sqlite3

    from tests.support.sse import post_chat

    app = parley.create_app("cli-beside")
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": "s-beside", "content": "hello"}
    answer_id = post_chat(parley.url, body).answer_replies[-1]["record_id"]

    def set_status(status: str) -> None:
        statement = f"UPDATE records SET status = '{status}' WHERE id = {int(answer_id)}"
        if parley.database_url is None:
            with sqlite3.connect(parley.data_dir / "parley.db") as connection:
                connection.execute(statement)
        else:
            request.getfixturevalue("postgres").psql(parley.database_url.rsplit("/", 1)[1], statement)

    set_status("streaming")
    try:
        listed = parley_cli(parley, "app", "list")
        assert listed.returncode == 0, listed.stderr
        assert [r["status"] for r in parley.records("cli-beside", "s-beside")] == ["success", "streaming"]
    finally:
        set_status("success")
