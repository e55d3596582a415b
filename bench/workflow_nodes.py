"""Parley's own time per workflow node, model time excluded: a 10-node workflow run many times.

    .venv/bin/python -m bench.workflow_nodes [--runs 3000]

The workflow: start, intent recognition (model), condition, template (Jinja2), variable
aggregator, knowledge retrieval, message, LLM (model), loop (three iterations of a template
node) and end. The models and the retriever are in-process stand-ins that answer at once (a
model's own time is not Parley's; each record's model_ms is subtracted all the same), so the
figures are the runner's and the nodes' own work: rendering references, building prompts,
parsing JSON, records, events.

Per node type: p50 and p99 of the node's own time (its record's cost minus model time).
Per run: wall time of the whole run divided by the nodes that ran (the runner's scheduling,
events and records between nodes included), through `execute` (a callback per event) and
through `stream` (an asyncio queue per run, what a face will consume). The baseline, measured
in the same run, is a message node with constant text: the cheapest node there is.
Raw results go to bench/results/workflow_nodes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from parley.models.base import ChatMessage
from parley.workflow.definition import parse_workflow
from parley.workflow.runner import SystemValues, WorkflowRunner
from parley.workflow.seams import ModelAnswer, Passage, WorkflowRuntime

RESULTS = Path(__file__).resolve().parent / "results"

WORKFLOW = """
name: bench
nodes:
  - {id: start, type: start, inputs: [{name: level, type: integer, default: 3}, {name: tags, type: array, default: [a, b, c]}]}
  - {id: intent, type: intent, intents: [{id: order, name: order questions}, {id: other, name: anything else}]}
  - id: check
    type: condition
    branches: [{port: high, conditions: [{value: "{{start.level}}", op: ge, to: 2}, {value: "{{intent.intent}}", op: equals, to: order}]}]
  - {id: shape, type: template, template: "Level {{ level }} for {{ who }}", variables: {level: "{{start.level}}", who: "{{sys.visitor}}"}}
  - {id: plain, type: template, template: "plain", variables: {}}
  - {id: join, type: variable_aggregator, variables: ["{{shape.output}}", "{{plain.output}}"]}
  - {id: find, type: knowledge_retrieval, query: "{{sys.query}} {{join.output}}", top_k: 3}
  - {id: note, type: message, text: "Looking into {{intent.name}} ({{join.output}})..."}
  - {id: answer, type: llm, system: "Use: {{find.text}}", prompt: "{{sys.query}}", history: 2}
  - id: each
    type: loop
    items: "{{start.tags}}"
    output: "{{tag.output}}"
    body: {nodes: [{id: tag, type: template, template: "#{{ t }}", variables: {t: "{{each.item}}"}}]}
  - {id: end, type: end, reply: "{{answer.text}} {{each.outputs}}", outputs: {tags: "{{each.outputs}}"}}
edges:
  - {source: start, target: intent}
  - {source: intent, target: check, port: order}
  - {source: intent, target: check, port: other}
  - {source: check, target: shape, port: high}
  - {source: check, target: plain, port: else}
  - {source: shape, target: join}
  - {source: plain, target: join}
  - {source: join, target: find}
  - {source: find, target: note}
  - {source: note, target: answer}
  - {source: answer, target: each}
  - {source: each, target: end}
"""

BASELINE = """
name: baseline
nodes:
  - {id: start, type: start}
  - {id: m, type: message, text: "constant"}
  - {id: end, type: end}
edges: [{source: start, target: m}, {source: m, target: end}]
"""


class InstantModel:
    """Answers at once: JSON for the intent node's prompt, text otherwise."""

    async def __call__(self, model: str | None, messages: list[ChatMessage]) -> ModelAnswer:
        text = '{"intent": "order"}' if "Classify" in messages[0].content else "Your order ships tomorrow."
        return ModelAnswer(text=text, model_name="instant", input_tokens=40, output_tokens=6)


class InstantRetriever:
    async def retrieve(self, query: str, *, labels: dict[str, list[str]], top_k: int) -> list[Passage]:
        return [Passage(content=f"passage {i} about orders", title=f"doc {i}", score=1.0 - i / 10) for i in range(top_k)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(runs: int) -> dict[str, Any]:
    runner = WorkflowRunner(WorkflowRuntime(chat=InstantModel(), retriever=InstantRetriever()))
    definition = parse_workflow(yaml.safe_load(WORKFLOW))
    baseline = parse_workflow(yaml.safe_load(BASELINE))
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 3
    system = SystemValues(query="where is my order", visitor="v-1", session="s-1", history=history)
    own: dict[str, list[float]] = defaultdict(list)
    per_node_execute: list[float] = []
    per_node_stream: list[float] = []
    nodes_per_run = 0
    for index in range(runs + runs // 10):
        warm = index < runs // 10
        for which in ("execute", "stream"):
            state = runner.start(definition, system, {"level": "3"})
            started = time.perf_counter()
            if which == "execute":
                await runner.execute(definition, state, lambda event: None)
            else:
                async for _ in runner.stream(definition, state):
                    pass
            wall = (time.perf_counter() - started) * 1000
            assert state.status == "finished", state.error
            model_ms = sum(r.model_ms for r in state.records if not r.belong_node_id)
            nodes_per_run = len(state.records)
            if warm:
                continue
            (per_node_execute if which == "execute" else per_node_stream).append((wall - model_ms) / len(state.records))
            if which == "execute":
                for record in state.records:
                    own[record.type_name].append(record.cost_ms - record.model_ms)
        state = runner.start(baseline, system)
        await runner.execute(baseline, state, lambda event: None)
        if not warm:
            own["baseline (constant message)"].append(state.records[1].cost_ms)
    rows = {
        kind: {"n": len(values), "p50_ms": round(pct(values, 0.5), 4), "p99_ms": round(pct(values, 0.99), 4)}
        for kind, values in sorted(own.items())
    }
    base = rows["baseline (constant message)"]["p50_ms"]
    for row in rows.values():
        row["x_baseline_p50"] = round(row["p50_ms"] / base, 1) if base else None
    return {
        "runs": runs, "nodes_per_run": nodes_per_run,
        "per_node": rows,
        "per_node_whole_run_execute": {"p50_ms": round(pct(per_node_execute, 0.5), 4), "p99_ms": round(pct(per_node_execute, 0.99), 4)},
        "per_node_whole_run_stream": {"p50_ms": round(pct(per_node_stream, 0.5), 4), "p99_ms": round(pct(per_node_stream, 0.99), 4)},
        "median_run_ms_stream": round(statistics.median(per_node_stream) * nodes_per_run, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.runs))
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workflow_nodes.json").write_text(json.dumps(result, indent=1))
    print(f"{result['runs']} runs of {result['nodes_per_run']} node runs each")
    print("| node | p50 ms | p99 ms | x baseline (p50) |\n| --- | --- | --- | --- |")
    for kind, row in result["per_node"].items():
        print(f"| {kind} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['x_baseline_p50']} |")
    for key in ("per_node_whole_run_execute", "per_node_whole_run_stream"):
        print(f"{key}: p50 {result[key]['p50_ms']:.3f} ms, p99 {result[key]['p99_ms']:.3f} ms")


if __name__ == "__main__":
    main()
