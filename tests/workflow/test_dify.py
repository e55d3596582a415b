"""Dify DSL files (written for these tests, in Dify's export format) imported and run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.workflow.definition import parse_workflow
from parley.workflow.dify import DifyImportError, import_dify
from parley.workflow.events import WorkflowFinished, WorkflowSuspended
from parley.workflow.sandbox import LocalProcessSandbox
from tests.support.processes import ScriptedModel
from tests.workflow.conftest import Driver, LoopbackServer, WordRetriever

FILES = Path(__file__).parent / "dify"
ROOT = Path(__file__).parents[2]


def dify(name: str, **replace: str) -> dict:
    text = (FILES / name).read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    return yaml.safe_load(text)


def imported(name: str, **options):
    data, notes = import_dify(dify(name, **options.pop("replace", {})), **options)
    return parse_workflow(data), notes


def test_every_mapped_node_type_is_covered_by_the_files() -> None:
    kinds = set()
    for path in FILES.glob("*.yml"):
        for node in yaml.safe_load(path.read_text(encoding="utf-8"))["workflow"]["graph"]["nodes"]:
            kinds.add(node["data"]["type"])
    assert kinds >= {"start", "end", "answer", "llm", "knowledge-retrieval", "question-classifier",
                     "parameter-extractor", "if-else", "code", "template-transform", "http-request",
                     "variable-aggregator", "variable-assigner", "iteration", "iteration-start", ""}


async def test_a_chatflow_with_classifier_extractor_http_and_knowledge(driver: Driver, model: ScriptedModel) -> None:
    seen: list[dict] = []

    async def weather(request: Request) -> JSONResponse:
        seen.append({"city": request.query_params.get("city"), "auth": request.headers.get("authorization"),
                     "session": request.headers.get("x-conversation"), "question": request.headers.get("x-question")})
        return JSONResponse({"sky": "clear"})

    async with LoopbackServer(Starlette(routes=[Route("/weather", weather)])) as server:
        definition, notes = imported("support_chatflow.yml", replace={"WEATHER_PORT": str(server.port)})
        assert definition.mode == "chat" and definition.name == "Support-Chatflow"
        assert "skipped canvas note 1718000000099" in notes
        assert [n.type for n in definition.nodes] == [
            "start", "intent", "parameter_extractor", "http", "template", "end", "knowledge_retrieval", "message", "llm", "end"]
        driver.runner.runtime.http.allow_private = True  # the weather API is on loopback here

        model.script("weather in", content='{"intent": "1"}')
        model.script("weather in Paris", content='{"intent": "1", "city": "Paris"}')
        outcome = await driver.run(definition, query="weather in Paris?", session="s-9")
        assert isinstance(outcome.last(), WorkflowFinished)
        assert outcome.last().reply == 'Weather in Paris: {"sky":"clear"} (Weather questions)'
        assert seen == [{"city": "Paris", "auth": "Bearer secret-token", "session": "s-9", "question": "weather in Paris?"}]

        # the extractor asks for the missing city; the next question resumes the run
        first = await driver.run(definition, query="weather in my town?")
        assert isinstance(first.last(), WorkflowSuspended)
        model.script("Lyon", content='{"city": "Lyon"}')
        second = await driver.resume(definition, first.state.model_dump_json(), "Lyon")
        assert second.last().reply == 'Weather in Lyon: {"sky":"clear"} (Weather questions)'

    driver.runner.runtime.retriever = WordRetriever([("refunds take 14 days", {}), ("shipping is free", {})])
    model.script("refund", content='{"intent": "2"}')
    model.script("Refund question:", content="Within 14 days.")
    refund = await driver.run(definition, query="how long does a refund take")
    assert refund.messages() == ["Let me check our refund policy..."]
    assert refund.last().reply == "Within 14 days."
    system = model.stats()["requests"][-1]["messages"][0]["content"]
    assert system.startswith("Answer refund questions from this policy: [{") and "refunds take 14 days" in system


@pytest.mark.parametrize(("words", "summary"), [
    ("a, bb,ccc", "Many: 1. A! (2); 2. BB! (3); 3. CCC! (4)"),
    ("hi", "Few: 1. HI! (3)"),
    (",", "None"),
])
async def test_a_workflow_with_code_iteration_branches_and_aggregation(driver: Driver, words: str, summary: str) -> None:
    definition, _ = imported("batch_workflow.yml")
    assert definition.mode == "run"
    driver.runner.runtime.sandbox = LocalProcessSandbox(memory_mb=256)
    outcome = await driver.run(definition, inputs={"words": words})
    assert outcome.state.status == "finished", outcome.state.error
    assert outcome.last().reply == summary and outcome.state.outputs == {"summary": summary}


async def test_the_oldest_dsl_with_a_model_mapping(driver: Driver, model: ScriptedModel) -> None:
    with pytest.raises(DifyImportError) as refused:
        imported("legacy_workflow.yml", known_models=["scripted", "gpt-4o-mini"])
    assert refused.value.problems == [
        "node 1711528919501 (llm): model 'gpt-3.5-turbo' is not configured here (map it: --model gpt-3.5-turbo=NAME, or the admin API's models; known: scripted, gpt-4o-mini)",
        "node 1711528920788 (llm): model 'gpt-3.5-turbo' is not configured here (map it: --model gpt-3.5-turbo=NAME, or the admin API's models; known: scripted, gpt-4o-mini)",
    ]
    definition, _ = imported("legacy_workflow.yml", models={"gpt-3.5-turbo": "scripted"}, known_models=["scripted"])
    assert definition.name == "tone-switch"
    model.script("Formal: hey", content="Good day.")
    model.script("Casual: hey", content="Yo!")
    formal = await driver.run(definition, inputs={"tone": "formal", "text": "hey there"})
    casual = await driver.run(definition, inputs={"tone": "casual", "text": "hey there"})
    assert formal.state.outputs == {"rewritten": "Good day.", "tone": "formal"}
    assert casual.state.outputs == {"rewritten": "Yo!", "tone": "casual"}
    assert formal.last().reply_method == 17  # two outputs and no single answer: an operation
    bad = await driver.run(definition, inputs={"tone": "angry", "text": "x"})
    assert bad.node("1711528914102")["FailMessage"] == "input 'tone' must be one of ['formal', 'casual'], got 'angry'"


def test_unmappable_nodes_are_refused_each_by_id() -> None:
    doc = dify("support_chatflow.yml")
    nodes = doc["workflow"]["graph"]["nodes"]
    nodes.append({"id": "tool1", "data": {"type": "tool", "title": "Search", "provider_id": "tavily"}})
    nodes.append({"id": "agent7", "data": {"type": "agent", "title": "Agent"}})
    nodes.append({"id": "js", "data": {"type": "code", "code_language": "javascript", "code": "", "outputs": {}}})
    nodes.append({"id": "env1", "data": {"type": "template-transform", "template": "x",
                                         "variables": [{"variable": "k", "value_selector": ["env", "API_KEY"]}]}})
    nodes.append({"id": "files", "data": {"type": "answer", "answer": "{{#sys.files#}}"}})
    with pytest.raises(DifyImportError) as caught:
        import_dify(doc)
    assert caught.value.problems == [
        "node tool1 (tool): Parley has no counterpart for a 'tool' node",
        "node agent7 (agent): Parley has no counterpart for a 'agent' node",
        "node js (code): javascript code (only Python is run)",
        "node env1 (template-transform): env variables (env.API_KEY) are not imported",
        "node files (answer): sys.files has no Parley counterpart",
    ]


@pytest.mark.parametrize(("doc", "message"), [
    ({"kind": "app", "app": {"mode": "chat"}}, "app mode 'chat' is not a workflow (expected workflow or advanced-chat)"),
    ({"kind": "dataset"}, "not a Dify app file (expected `kind: app`)"),
])
def test_non_workflow_files_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(DifyImportError) as caught:
        import_dify(doc)
    assert caught.value.problems == [message]


def _parley(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parley", "workflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def test_the_command_line(tmp_path: Path, scripted_model: ScriptedModel) -> None:
    scripted_model.reset()
    config = tmp_path / "parley.toml"
    config.write_text(f'default_model = "scripted"\nlocal_model = false\n[[models]]\nname = "scripted"\n'
                      f'base_url = "{scripted_model.base_url}"\n')
    legacy = FILES / "legacy_workflow.yml"

    imported_file = tmp_path / "tone.yaml"
    done = _parley("import", str(legacy), "-o", str(imported_file), "--model", "gpt-3.5-turbo=scripted",
                   "--check-models", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert parse_workflow(yaml.safe_load(imported_file.read_text())).name == "tone-switch"

    refused = _parley("import", str(legacy), "--check-models", "-c", str(config), cwd=tmp_path)
    assert refused.returncode == 2
    assert "node 1711528919501 (llm): model 'gpt-3.5-turbo' is not configured here" in refused.stderr

    valid = _parley("validate", str(imported_file), cwd=tmp_path)
    assert valid.returncode == 0 and "workflow 'tone-switch' is valid (6 nodes)" in valid.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nnodes:\n  - {id: s, type: start}\n  - {id: e, type: end, reply: '{{s.x}}'}\n"
                      "edges: [{source: s, target: e}, {source: e, target: ghost}]\n")
    invalid = _parley("validate", str(broken), cwd=tmp_path)
    assert invalid.returncode == 2
    assert "node 'e' field 'reply': {{s.x}}: node 's' has no output 'x'" in invalid.stderr
    assert "edge e -> ghost names a node that does not exist" in invalid.stderr

    scripted_model.script("Casual: hi", content="Hiya!")
    ran = _parley("run", str(imported_file), "-c", str(config), "--input", "tone=casual", "--input", "text=hi", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert '"rewritten": "Hiya!"' in ran.stdout
    assert "ok 1711528920788 [llm]" in ran.stderr

    menu = tmp_path / "menu.yaml"
    menu.write_text("name: menu\nnodes:\n  - {id: s, type: start}\n  - {id: pick, type: option_cards, text: 'Which?', options: [A, B]}\n"
                    "  - {id: a, type: end, reply: chose A}\n  - {id: b, type: end, reply: chose B}\n"
                    "edges: [{source: s, target: pick}, {source: pick, target: a, port: A}, {source: pick, target: b, port: B}]\n")
    waiting = _parley("run", str(menu), "-c", str(config), cwd=tmp_path)
    assert waiting.returncode == 3 and "? Which?  [A | B]" in waiting.stdout
    answered = _parley("run", str(menu), "-c", str(config), "--answer", "B", cwd=tmp_path)
    assert answered.returncode == 0 and answered.stdout.strip().endswith("chose B")
