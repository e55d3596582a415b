"""Validation names the node and the field at fault."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import yaml

from parley.workflow.definition import WorkflowInvalid, parse_workflow

BASE = """
name: checks
nodes:
  - {id: start, type: start, inputs: [{name: city, type: string}]}
  - {id: answer, type: llm, prompt: "Weather in {{start.city}}?"}
  - {id: end, type: end, reply: "{{answer.text}}"}
edges:
  - {source: start, target: answer}
  - {source: answer, target: end}
"""


def problems_of(text: str) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow(yaml.safe_load(text))
    return [(p.node, p.field, p.message) for p in caught.value.problems]


def test_a_valid_workflow_parses_and_round_trips() -> None:
    definition = parse_workflow(yaml.safe_load(BASE))
    assert [n.id for n in definition.nodes] == ["start", "answer", "end"]
    assert definition.node("answer").adp_type == 3
    again = parse_workflow(definition.to_data())
    assert again.to_data() == definition.to_data()


@pytest.mark.parametrize(
    ("change", "node", "field", "words"),
    [
        (("answer", "type", "frobnicate"), "answer", "type", "unknown node type 'frobnicate'"),
        (("answer", "prompt", "{{start.town}}"), "answer", "prompt", "node 'start' has no output 'town'"),
        (("answer", "prompt", "{{nowhere.text}}"), "answer", "prompt", "no node 'nowhere' runs before this one"),
        (("answer", "prompt", "{{end.reply}}"), "answer", "prompt", "no node 'end' runs before this one"),
        (("answer", "prompt", "{{sys.weather}}"), "answer", "prompt", "no system value sys.weather"),
        (("answer", "temperature_x", 1), "answer", "temperature_x", "Extra inputs are not permitted"),
        (("answer", "history", -1), "answer", "history", "greater than or equal to 0"),
    ],
)
def test_node_problems_name_node_and_field(change: tuple, node: str, field: str, words: str) -> None:
    data = yaml.safe_load(BASE)
    target, key, value = change
    next(n for n in data["nodes"] if n["id"] == target)[key] = value
    found = problems_of(yaml.safe_dump(data))
    assert any(p[0] == node and p[1] == field and words in p[2] for p in found), found


def test_dangling_edge_and_unreachable_node() -> None:
    data = yaml.safe_load(BASE)
    data["edges"].append({"source": "answer", "target": "ghost"})
    data["nodes"].append({"id": "lonely", "type": "message", "text": "hi"})
    found = problems_of(yaml.safe_dump(data))
    assert ("ghost", "edges.2", "edge answer -> ghost names a node that does not exist") in found
    assert ("lonely", None, "no path leads here from the start node") in found


def test_cycle_outside_a_loop_node_is_refused() -> None:
    found = problems_of("""
name: cyclic
nodes:
  - {id: start, type: start}
  - {id: a, type: message, text: a}
  - {id: b, type: message, text: b}
  - {id: end, type: end}
edges:
  - {source: start, target: a}
  - {source: a, target: b}
  - {source: b, target: a}
  - {source: b, target: end}
""")
    assert found == [("a", "edges", "cycle a -> b -> a outside a loop node (repeat with a loop node)")]


def test_ports_of_branching_nodes() -> None:
    found = problems_of("""
name: ports
nodes:
  - {id: start, type: start, inputs: [{name: n, type: number}]}
  - {id: check, type: condition, branches: [{port: big, conditions: [{value: "{{start.n}}", op: gt, to: 5}]}]}
  - {id: end, type: end}
  - {id: end2, type: end}
edges:
  - {source: start, target: check}
  - {source: check, target: end, port: huge}
  - {source: check, target: end2}
""")
    assert ("check", "edges", "edge to end: unknown port 'huge' (one of: big, else)") in found
    assert ("check", "edges", "edge to end2 needs a port (one of: big, else)") in found


def test_start_and_end_are_required() -> None:
    found = problems_of("name: empty\nnodes: [{id: m, type: message, text: hi}]\n")
    assert (None, "nodes", "a workflow needs exactly one start node (found 0)") in found
    assert (None, "nodes", "a workflow needs at least one end node") in found


def test_loop_body_is_checked_with_its_own_scope() -> None:
    found = problems_of("""
name: loops
nodes:
  - {id: start, type: start, inputs: [{name: xs, type: array}]}
  - id: each
    type: loop
    items: "{{start.xs}}"
    output: "{{step.text}}"
    body:
      nodes:
        - {id: step, type: message, text: "{{each.item}} {{each.nothing}}"}
        - {id: pick, type: option_cards, text: pick, options: [a]}
      edges: [{source: step, target: pick, port: a}]
  - {id: end, type: end, reply: "{{each.outputs}}"}
edges:
  - {source: start, target: each}
  - {source: each, target: end}
""")
    assert ("each/step", "text", "{{each.nothing}}: node 'each' has no output 'nothing' (its outputs: index, item, iterations, outputs)") in found
    assert ("each/pick", "type", "a option_cards node waits for the user and cannot run inside a loop") in found
    assert ("each/step", "edges", "edge to pick: a message node has no ports") in found


def test_every_problem_is_reported_at_once() -> None:
    found = problems_of("""
name: many
nodes:
  - {id: start, type: start}
  - {id: x, type: nope}
  - {id: end, type: end, reply: "{{start.missing}} {{x.text}}"}
edges: [{source: start, target: x}, {source: x, target: end}, {source: end, target: nowhere}]
""")
    assert [p[0] for p in found] == ["x", "nowhere", "end"], found


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
node_types = st.sampled_from(["start", "end", "llm", "loop", "condition", "code", "intent", "message", "nope"])
nodes = st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "c", "start"]), "type": node_types},
                              optional={"reply": json_values, "body": json_values, "branches": json_values,
                                        "prompt": json_values, "text": json_values, "items": json_values})


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({"name": st.sampled_from(["w", "bad name!", 3])},
                             optional={"nodes": st.lists(nodes, max_size=5) | json_values,
                                       "edges": st.lists(json_values, max_size=4) | json_values,
                                       "mode": json_values, "workflow": json_values}))
def test_any_input_is_either_a_workflow_or_a_list_of_problems(data: dict) -> None:
    """The admin API hands whatever a client sends to parse_workflow: it must never crash."""
    try:
        parse_workflow(data)
    except WorkflowInvalid as exc:
        assert exc.problems and all(p.message for p in exc.problems)
