"""The runner with the nodes that need nothing outside: start, condition, message, option
cards, aggregator, template, loop, workflow-as-node, end; pauses, failures, timeouts."""

from __future__ import annotations

import orjson
import pytest

from parley.workflow.events import NodeProgress, WorkflowFailed, WorkflowFinished, WorkflowSuspended
from parley.workflow.runner import RunState
from tests.workflow.conftest import Driver, workflow

BRANCHES = workflow("""
name: branches
mode: run
nodes:
  - id: start
    type: start
    inputs:
      - {name: n, type: number, required: true}
      - {name: tags, type: array, default: []}
      - {name: profile, type: object, default: {}}
  - id: check
    type: condition
    branches:
      - {port: big, conditions: [{value: "{{start.n}}", op: ge, to: 100}]}
      - {port: vip, match: any, conditions: [{value: "{{start.tags}}", op: contains, to: vip},
                                             {value: "{{start.profile.level}}", op: equals, to: gold}]}
  - {id: big, type: message, text: "big {{start.n}}"}
  - {id: vip, type: template, template: "{{ name | upper }} is VIP", variables: {name: "{{start.profile.name}}"}}
  - {id: other, type: message, text: "plain"}
  - {id: join, type: variable_aggregator, variables: ["{{big.text}}", "{{vip.output}}", "{{other.text}}"]}
  - {id: end, type: end, reply: "{{join.output}}", outputs: {n: "{{start.n}}", said: "{{join.output}}"}}
edges:
  - {source: start, target: check}
  - {source: check, target: big, port: big}
  - {source: check, target: vip, port: vip}
  - {source: check, target: other, port: else}
  - {source: big, target: join}
  - {source: vip, target: join}
  - {source: other, target: join}
  - {source: join, target: end}
""")


@pytest.mark.parametrize(
    ("inputs", "reply", "branch"),
    [
        ({"n": "150"}, "big 150", "big"),  # custom_variables carry strings: JSON text is parsed
        ({"n": 1, "tags": '["vip"]', "profile": '{"name": "ann"}'}, "ANN is VIP", "vip"),
        ({"n": 1, "profile": {"name": "bo", "level": "gold"}}, "BO is VIP", "vip"),
        ({"n": 1}, "plain", "other"),
    ],
)
async def test_if_elif_else_and_a_join(driver: Driver, inputs: dict, reply: str, branch: str) -> None:
    outcome = await driver.run(BRANCHES, inputs=inputs)
    assert outcome.state.status == "finished"
    finished = outcome.last()
    assert isinstance(finished, WorkflowFinished) and finished.reply == reply and finished.reply_method == 16
    assert finished.outputs["said"] == reply
    assert outcome.ran() == ["start", "check", branch, "join", "end"]
    port = "else" if branch == "other" else branch
    assert outcome.node("check")["Output"] == orjson.dumps({"port": port}).decode()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "required input 'n' is missing (custom_variables)"),
        ({"n": "many"}, "input 'n' must be number, got text that is not JSON: 'many'"),
        ({"n": 1, "tags": '{"a": 1}'}, 'input \'tags\' must be array, got {"a":1}'),
    ],
)
async def test_bad_inputs_fail_the_start_node(driver: Driver, inputs: dict, message: str) -> None:
    outcome = await driver.run(BRANCHES, inputs=inputs)
    assert outcome.state.status == "failed"
    node = outcome.node("start")
    assert node["Status"] == 3 and node["FailMessage"] == message and node["NodeType"] == 1
    failed = outcome.last()
    assert isinstance(failed, WorkflowFailed) and failed.node_id == "start" and message in failed.message
    assert outcome.state.records[-1].fail_message == message  # the trace keeps it


async def test_current_node_has_every_adp_field(driver: Driver) -> None:
    outcome = await driver.run(BRANCHES, inputs={"n": 5})
    events = [e.record.current_node() for e in outcome.events if isinstance(e, NodeProgress) and e.record.node_id == "other"]
    assert [e["Status"] for e in events] == [1, 2]
    assert set(events[-1]) == {"NodeID", "NodeType", "NodeName", "Status", "Input", "Output", "TaskOutput", "FailMessage",
                               "CostMilliSeconds", "Reply", "BelongNodeID", "StatisticInfo"}
    assert events[-1]["NodeType"] == 10 and events[-1]["Reply"] == "plain"
    assert outcome.messages() == ["plain"]


OPERATION = workflow("""
name: operation
nodes:
  - {id: start, type: start}
  - {id: end, type: end, outputs: {done: true}}
edges: [{source: start, target: end}]
""")


async def test_an_end_without_reply_is_an_operation(driver: Driver) -> None:
    finished = (await driver.run(OPERATION)).last()
    assert isinstance(finished, WorkflowFinished) and finished.reply == "" and finished.reply_method == 17


MENU = workflow("""
name: menu
nodes:
  - {id: start, type: start}
  - {id: hello, type: message, text: "Hi {{sys.visitor}}"}
  - {id: pick, type: option_cards, text: "Tea or coffee?", options: [Tea, Coffee]}
  - {id: tea, type: end, reply: "Tea it is ({{pick.choice}})"}
  - {id: coffee, type: end, reply: "Coffee it is"}
  - {id: other, type: end, reply: "We only have tea or coffee, not {{pick.choice}}"}
edges:
  - {source: start, target: hello}
  - {source: hello, target: pick}
  - {source: pick, target: tea, port: Tea}
  - {source: pick, target: coffee, port: Coffee}
  - {source: pick, target: other, port: other}
""")


@pytest.mark.parametrize(("click", "reply"), [("Tea", "Tea it is (Tea)"), ("coffee", "Coffee it is"),
                                              ("juice", "We only have tea or coffee, not juice")])
async def test_option_cards_wait_and_the_next_question_resumes(driver: Driver, click: str, reply: str) -> None:
    first = await driver.run(MENU, visitor="v1")
    suspended = first.last()
    assert isinstance(suspended, WorkflowSuspended)
    assert suspended.option_cards == ["Tea", "Coffee"] and suspended.reply == "Tea or coffee?"
    assert first.state.status == "suspended" and first.state.waiting == "pick"
    assert first.messages() == ["Hi v1"]
    stored = first.state.model_dump_json()  # what the store keeps between the two questions
    second = await driver.resume(MENU, stored, click)
    assert second.state.status == "finished"
    assert isinstance(second.last(), WorkflowFinished) and second.last().reply == reply
    assert "hello" not in second.ran()  # nothing before the pause runs again


async def test_resuming_a_finished_run_is_refused(driver: Driver) -> None:
    outcome = await driver.run(OPERATION)
    with pytest.raises(ValueError, match="is finished, not waiting"):
        driver.runner.resume(outcome.state, "again")


LOOP = workflow("""
name: loop
nodes:
  - {id: start, type: start, inputs: [{name: words, type: array, required: true}]}
  - id: each
    type: loop
    items: "{{start.words}}"
    output: "{{shout.output}}"
    break_when: [{value: "{{each.item}}", op: equals, to: stop}]
    body:
      nodes:
        - {id: shout, type: template, template: "{{ i }}:{{ w.upper() }}", variables: {w: "{{each.item}}", i: "{{each.index}}"}}
        - {id: say, type: message, text: "{{shout.output}}"}
      edges: [{source: shout, target: say}]
  - id: count
    type: loop
    count: 3
    output: "{{twice.output}}"
    body:
      nodes: [{id: twice, type: template, template: "{{ i * 2 }}", variables: {i: "{{count.index}}"}}]
  - {id: end, type: end, reply: "{{each.outputs}} {{count.outputs}}", outputs: {n: "{{each.iterations}}"}}
edges: [{source: start, target: each}, {source: each, target: count}, {source: count, target: end}]
""")


async def test_loops_over_items_and_counts_and_break(driver: Driver) -> None:
    outcome = await driver.run(LOOP, inputs={"words": '["a", "b", "stop", "never"]'})
    assert outcome.last().reply == '["0:A","1:B","2:STOP"] ["0","2","4"]'
    assert outcome.state.outputs == {"n": 3}
    assert outcome.messages() == ["0:A", "1:B", "2:STOP"]
    inner = [e.record for e in outcome.events if isinstance(e, NodeProgress) and e.record.node_id == "shout" and e.record.status == 2]
    assert [r.belong_node_id for r in inner] == ["each"] * 3
    assert {r.node_id for r in outcome.state.records} >= {"shout", "say", "twice", "each", "count"}


async def test_a_failure_inside_a_loop_fails_the_loop(driver: Driver) -> None:
    outcome = await driver.run(LOOP, inputs={"words": '["ok", {}]'})  # a dict has no upper()
    assert outcome.state.status == "failed"
    assert outcome.node("shout")["Status"] == 3
    assert outcome.node("each")["FailMessage"].startswith("iteration 1: node shout: template:")
    assert outcome.state.failed_node == "each"


async def test_workflow_as_a_node(driver: Driver) -> None:
    inner = workflow("""
name: greet
mode: run
nodes:
  - {id: start, type: start, inputs: [{name: who, type: string, required: true}]}
  - {id: make, type: template, template: "Hello, {{ who }}!", variables: {who: "{{start.who}}"}}
  - {id: end, type: end, outputs: {greeting: "{{make.output}}"}}
edges: [{source: start, target: make}, {source: make, target: end}]
""")
    outer = workflow("""
name: outer
nodes:
  - {id: start, type: start}
  - {id: call, type: workflow, workflow: greet, inputs: {who: "{{sys.visitor}}"}}
  - {id: end, type: end, reply: "{{call.greeting}}"}
edges: [{source: start, target: call}, {source: call, target: end}]
""")
    driver.runner.runtime.workflows = {"greet": inner}.get
    outcome = await driver.run(outer, visitor="Ada")
    assert outcome.last().reply == "Hello, Ada!"
    assert outcome.node("make")["BelongNodeID"] == "call"
    assert outcome.node("call")["NodeType"] == 14

    driver.runner.runtime.workflows = {}.get
    failed = await driver.run(outer, visitor="Ada")
    assert failed.node("call")["FailMessage"] == "no workflow named 'greet'"


async def test_a_workflow_calling_itself_stops_at_the_depth_limit(driver: Driver) -> None:
    selfish = workflow("""
name: selfish
nodes:
  - {id: start, type: start}
  - {id: again, type: workflow, workflow: selfish}
  - {id: end, type: end}
edges: [{source: start, target: again}, {source: again, target: end}]
""")
    driver.runner.runtime.workflows = {"selfish": selfish}.get
    outcome = await driver.run(selfish)
    assert outcome.state.status == "failed"
    assert "workflows nested more than 5 deep" in outcome.state.error


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "template: access to attribute '__class__' of 'str' object is unsafe."),
        ("{{ missing_name }}", "template: 'missing_name' is undefined"),
        ("{% for %}", "template does not compile:"),
    ],
)
async def test_the_template_node_is_sandboxed(driver: Driver, template: str, message: str) -> None:
    definition = workflow(f"""
name: tpl
nodes:
  - {{id: start, type: start}}
  - {{id: t, type: template, template: {template!r}}}
  - {{id: end, type: end, reply: "{{{{t.output}}}}"}}
edges: [{{source: start, target: t}}, {{source: t, target: end}}]
""")
    outcome = await driver.run(definition)
    assert outcome.node("t")["Status"] == 3
    assert outcome.node("t")["FailMessage"].startswith(message)
    assert outcome.node("t")["NodeType"] == 101


async def test_run_state_is_plain_data(driver: Driver) -> None:
    outcome = await driver.run(BRANCHES, inputs={"n": 7})
    restored = RunState.model_validate_json(outcome.state.model_dump_json())
    assert restored == outcome.state


MENU_INNER = """
name: menu
mode: run
nodes:
  - {id: start, type: start, inputs: [{name: drink, type: string, default: tea}]}
  - {id: pick, type: option_cards, text: "Which {{start.drink}}?", options: [Green, Black]}
  - {id: green, type: end, reply: "green tea", outputs: {kind: green}}
  - {id: black, type: end, reply: "black tea", outputs: {kind: black}}
edges: [{source: start, target: pick}, {source: pick, target: green, port: Green}, {source: pick, target: black, port: Black}]
"""


@pytest.mark.parametrize("through", [[], ["middle"]], ids=["one-deep", "two-deep"])
async def test_a_workflow_node_pauses_with_its_inner_workflow(driver: Driver, through: list[str]) -> None:
    """The inner workflow's option cards pause the outer run; the next question resumes the
    inner run where it waited, from the stored (JSON) state, and the outer run goes on."""
    library = {"menu": workflow(MENU_INNER)}
    called = "menu"
    for name in through:  # a workflow in between, which only calls the next one
        library[name] = workflow(f"""
name: {name}
mode: run
nodes:
  - {{id: start, type: start}}
  - {{id: deeper, type: workflow, workflow: {called}}}
  - {{id: end, type: end, outputs: {{kind: "{{{{deeper.kind}}}}"}}}}
edges: [{{source: start, target: deeper}}, {{source: deeper, target: end}}]
""")
        called = name
    outer = workflow(f"""
name: outer
nodes:
  - {{id: start, type: start}}
  - {{id: call, type: workflow, workflow: {called}, inputs: {{drink: "{{{{sys.query}}}}"}}}}
  - {{id: end, type: end, reply: "Your {{{{call.kind}}}} tea, {{{{sys.visitor}}}}"}}
edges: [{{source: start, target: call}}, {{source: call, target: end}}]
""")
    driver.runner.runtime.workflows = library.get
    paused = await driver.run(outer, query="tea", visitor="Ada")
    assert paused.state.status == "suspended" and paused.state.waiting == "call"
    asked = paused.last()
    assert isinstance(asked, WorkflowSuspended) and asked.node_id == "call"
    assert (asked.reply, asked.option_cards) == ("Which tea?", ["Green", "Black"])
    assert paused.node("pick")["BelongNodeID"] == ("deeper" if through else "call")

    resumed = await driver.resume(outer, paused.state.model_dump_json(), "Black")
    assert resumed.state.status == "finished", resumed.state.error
    assert resumed.last().reply == "Your black tea, Ada"
    assert "start" not in resumed.ran()  # the outer run went on where it paused, not from its start
    trace = [(r.node_id, r.status) for r in resumed.state.records]
    assert trace.count(("pick", 2)) == 1 and trace.count(("pick", 1)) == 1
    assert trace[-2:] == [("call", 2), ("end", 2)]


async def test_a_loop_body_that_waits_for_the_user_fails_clearly(driver: Driver) -> None:
    driver.runner.runtime.workflows = {"menu": workflow(MENU_INNER)}.get
    looped = workflow("""
name: looped
nodes:
  - {id: start, type: start}
  - id: each
    type: loop
    count: 2
    body:
      nodes: [{id: call, type: workflow, workflow: menu}]
  - {id: end, type: end, reply: done}
edges: [{source: start, target: each}, {source: each, target: end}]
""")
    outcome = await driver.run(looped)
    assert outcome.state.status == "failed"
    assert outcome.node("each")["FailMessage"] == "iteration 0: node call waits for the user, which a loop's body cannot do"
