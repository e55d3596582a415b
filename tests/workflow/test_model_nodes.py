"""Nodes that ask a model (the scripted model server, through Parley's model registry and its
OpenAI-compatible client) or the knowledge base."""

from __future__ import annotations

import orjson
import pytest

from parley.workflow.definition import parse_workflow
from parley.workflow.events import WorkflowFinished, WorkflowSuspended
from parley.workflow.nodes.model import parse_json_object
from tests.support.processes import ScriptedModel
from tests.workflow.conftest import Driver, WordRetriever, workflow

LLM = workflow("""
name: llm
nodes:
  - {id: start, type: start, inputs: [{name: tone, type: string, default: friendly}]}
  - {id: think, type: llm, model: gpt-4o-mini, system: "Be {{start.tone}}.", prompt: "Q: {{sys.query}}", history: 1}
  - {id: end, type: end, reply: "{{think.text}}"}
edges: [{source: start, target: think}, {source: think, target: end}]
""")


async def test_llm_node_sends_its_prompt_and_reports_usage(driver: Driver, model: ScriptedModel) -> None:
    model.script("Q: capital", content="Paris.", usage={"prompt_tokens": 11, "completion_tokens": 2})
    history = [{"role": "user", "content": "old q"}, {"role": "assistant", "content": "old a"},
               {"role": "user", "content": "recent q"}, {"role": "assistant", "content": "recent a"}]
    outcome = await driver.run(LLM, query="capital of France?", history=history)
    assert outcome.last() == WorkflowFinished(reply="Paris.", outputs={})
    sent = model.stats()["requests"][-1]["messages"]
    assert sent == [{"role": "system", "content": "Be friendly."}, {"role": "user", "content": "recent q"},
                    {"role": "assistant", "content": "recent a"}, {"role": "user", "content": "Q: capital of France?"}]
    node = outcome.node("think")
    assert node["StatisticInfo"]["ModelName"] == "gpt-4o-mini"
    assert node["StatisticInfo"]["InputTokens"] == 11 and node["StatisticInfo"]["OutputTokens"] == 2
    assert node["TaskOutput"] == "Paris."
    record = outcome.state.records[-2]
    assert record.node_id == "think" and 0 < record.model_ms <= record.cost_ms


async def test_a_model_failure_fails_the_node(driver: Driver, model: ScriptedModel) -> None:
    model.script("Q: broken", status=500)
    outcome = await driver.run(LLM, query="broken")
    assert outcome.state.status == "failed"
    assert outcome.node("think")["Status"] == 3
    assert "answered HTTP 500" in outcome.node("think")["FailMessage"]


async def test_a_slow_node_times_out(driver: Driver, model: ScriptedModel) -> None:
    data = LLM.to_data()
    data["nodes"][1]["timeout"] = 0.5
    slow = parse_workflow(data)
    model.script("Q: slow", content="late", ttft=3)
    outcome = await driver.run(slow, query="slow")
    assert outcome.node("think")["FailMessage"] == "timed out after 0.5 s"
    assert outcome.state.status == "failed"


BOOKING = workflow("""
name: booking
nodes:
  - {id: start, type: start}
  - id: slots
    type: parameter_extractor
    parameters:
      - {name: city, type: string, required: true, description: the destination city}
      - {name: nights, type: integer, required: true, description: how many nights}
      - {name: breakfast, type: boolean}
    ask: "Which {{missing}}?"
  - {id: end, type: end, reply: "Booked {{slots.nights}} nights in {{slots.city}}", outputs: {city: "{{slots.city}}"}}
edges: [{source: start, target: slots}, {source: slots, target: end}]
""")


async def test_parameter_extractor_fills_typed_values(driver: Driver, model: ScriptedModel) -> None:
    model.script("3 nights in Rome", content='```json\n{"city": "Rome", "nights": "3", "breakfast": true}\n```')
    outcome = await driver.run(BOOKING, query="3 nights in Rome please")
    assert outcome.last().reply == "Booked 3 nights in Rome"
    assert orjson.loads(outcome.node("slots")["Output"]) == {"city": "Rome", "nights": 3, "breakfast": True}
    system = model.stats()["requests"][-1]["messages"][0]["content"]
    assert "- nights (integer, required): how many nights" in system


async def test_parameter_extractor_asks_for_what_is_missing(driver: Driver, model: ScriptedModel) -> None:
    model.script("a room in Oslo", content='{"city": "Oslo"}')
    model.script("four", content='{"nights": 4}')
    first = await driver.run(BOOKING, query="a room in Oslo")
    asked = first.last()
    assert isinstance(asked, WorkflowSuspended) and asked.reply == "Which how many nights?" and asked.option_cards == []
    assert first.node("slots")["Reply"] == "Which how many nights?" and first.node("slots")["Status"] == 1
    second = await driver.resume(BOOKING, first.state.model_dump_json(), "four")
    assert second.last().reply == "Booked 4 nights in Oslo"  # Oslo was kept from the first question
    assert second.state.outputs == {"city": "Oslo"}


async def test_parameter_extractor_gives_up_after_max_asks(driver: Driver, model: ScriptedModel) -> None:
    model.script("a room", content="{}")
    model.script("dunno", content="{}")
    outcome = await driver.run(BOOKING, query="a room")
    for _ in range(3):
        assert isinstance(outcome.last(), WorkflowSuspended)
        outcome = await driver.resume(BOOKING, outcome.state.model_dump_json(), "dunno")
    assert outcome.state.status == "failed"
    assert outcome.node("slots")["FailMessage"] == "still missing after 3 questions: city, nights"


async def test_parameter_extractor_fails_on_an_answer_that_is_not_json(driver: Driver, model: ScriptedModel) -> None:
    model.script("gibberish", content="Sure! The city is Rome.")
    outcome = await driver.run(BOOKING, query="gibberish")
    assert outcome.state.status == "failed"
    node = outcome.node("slots")
    assert node["Status"] == 3
    assert node["FailMessage"] == "the model's answer is not a JSON object: 'Sure! The city is Rome.'"
    assert node["TaskOutput"] == "Sure! The city is Rome."


ROUTER = workflow("""
name: router
nodes:
  - {id: start, type: start}
  - id: intent
    type: intent
    intents:
      - {id: weather, name: weather questions}
      - {id: refund, name: refunds and returns}
    fallback: refund
  - {id: tags, type: tag_extractor, tags: [{name: mood, values: [happy, angry]}, {name: topic}]}
  - {id: w, type: end, reply: "weather ({{tags.mood}}, {{tags.topic}})"}
  - {id: r, type: end, reply: "refund ({{intent.parse_error}})"}
edges:
  - {source: start, target: intent}
  - {source: intent, target: tags, port: weather}
  - {source: intent, target: r, port: refund}
  - {source: tags, target: w}
""")


async def test_intent_routes_and_tags_are_extracted(driver: Driver, model: ScriptedModel) -> None:
    model.script("rain tomorrow", content='{"intent": "weather"}')
    outcome = await driver.run(ROUTER, query="rain tomorrow?")
    # the tag extractor asks the same question: the newest matching rule answers it
    assert outcome.node("intent")["Output"] == orjson.dumps({"intent": "weather", "name": "weather questions", "parse_error": ""}).decode()
    assert outcome.node("intent")["NodeType"] == 13

    model.script("sunny", content='{"intent": "weather"}')
    model.script("sunny", content='{"mood": "happy", "topic": "sun", "intent": "weather"}')
    tagged = await driver.run(ROUTER, query="sunny?")
    assert tagged.last().reply == "weather (happy, sun)"
    assert tagged.node("tags")["NodeType"] == 6


@pytest.mark.parametrize(("answer", "error"), [
    ("I think it's about the weather", "not a JSON object: \"I think it's about the weather\""),
    ('{"intent": "cooking"}', "names no known intent: '{\"intent\": \"cooking\"}'"),
])
async def test_intent_falls_back_when_the_answer_is_not_usable(driver: Driver, model: ScriptedModel, answer: str, error: str) -> None:
    model.script("hmm", content=answer)
    outcome = await driver.run(ROUTER, query="hmm")
    assert outcome.state.status == "finished"
    assert outcome.last().reply == f"refund ({error})"


async def test_tag_extractor_drops_values_outside_the_allowed_ones(driver: Driver, model: ScriptedModel) -> None:
    model.script("storm", content='{"intent": "weather", "mood": "furious", "topic": "storm"}')
    outcome = await driver.run(ROUTER, query="storm")
    assert outcome.last().reply == "weather (, storm)"


KNOWLEDGE = workflow("""
name: knowledge
nodes:
  - {id: start, type: start, inputs: [{name: product, type: string, default: phone}]}
  - {id: find, type: knowledge_retrieval, labels: {product: ["{{start.product}}"]}, top_k: 2}
  - {id: qa, type: knowledge_qa, query: "{{sys.query}}", labels: {product: ["{{start.product}}"]}}
  - {id: end, type: end, reply: "{{qa.text}}", outputs: {found: "{{find.text}}"}}
edges: [{source: start, target: find}, {source: find, target: qa}, {source: qa, target: end}]
""")


async def test_knowledge_nodes_search_within_the_label_scope(driver: Driver, model: ScriptedModel) -> None:
    retriever = WordRetriever([
        ("the phone battery lasts two days", {"product": "phone"}),
        ("the laptop battery lasts ten hours", {"product": "laptop"}),
    ])
    driver.runner.runtime.retriever = retriever
    model.script("battery", content="Two days.")
    outcome = await driver.run(KNOWLEDGE, query="how long does the battery last")
    assert outcome.last().reply == "Two days."
    assert outcome.state.outputs == {"found": "the phone battery lasts two days"}
    assert retriever.calls[0]["labels"] == {"product": ["phone"]}
    system = model.stats()["requests"][-1]["messages"][0]["content"]
    assert "[1] the phone battery lasts two days" in system and "laptop" not in system
    assert outcome.node("find")["NodeType"] == 5 and outcome.node("qa")["NodeType"] == 4

    laptop = await driver.run(KNOWLEDGE, query="battery", inputs={"product": "laptop"})
    assert laptop.state.outputs == {"found": "the laptop battery lasts ten hours"}


async def test_knowledge_nodes_without_a_knowledge_base_fail_clearly(driver: Driver) -> None:
    outcome = await driver.run(KNOWLEDGE, query="battery")
    assert outcome.node("find")["FailMessage"] == "this application has no knowledge base to search"


@pytest.mark.parametrize(("text", "parsed"), [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('Here you go: {"a": {"b": 2}} hope it helps', {"a": {"b": 2}}),
    ("[1, 2]", None),
    ("not json", None),
    ('{"a": ', None),
])
def test_parse_json_object(text: str, parsed: dict | None) -> None:
    assert parse_json_object(text) == parsed


async def test_a_workflow_node_waits_while_its_parameter_extractor_asks(driver: Driver, model: ScriptedModel) -> None:
    """The booking workflow used as a node: its question pauses the outer run, and the answer
    goes to the inner parameter extractor, which kept what it had (Oslo)."""
    model.script("a room in Oslo", content='{"city": "Oslo"}')
    model.script("four", content='{"nights": 4}')
    outer = workflow("""
name: trip
nodes:
  - {id: start, type: start}
  - {id: book, type: workflow, workflow: booking}
  - {id: end, type: end, reply: "Trip: {{book.reply}}"}
edges: [{source: start, target: book}, {source: book, target: end}]
""")
    driver.runner.runtime.workflows = {"booking": BOOKING}.get
    first = await driver.run(outer, query="a room in Oslo")
    assert isinstance(first.last(), WorkflowSuspended) and first.last().reply == "Which how many nights?"
    second = await driver.resume(outer, first.state.model_dump_json(), "four")
    assert second.last().reply == "Trip: Booked 4 nights in Oslo"
    assert second.node("slots")["BelongNodeID"] == "book"
