"""Nodes that run other graphs: the loop (its body, once per item) and a workflow as a node."""

from __future__ import annotations

from typing import Any

from parley.workflow.definition import LoopNode, WorkflowNode
from parley.workflow.events import WorkflowEvent, WorkflowFailed, WorkflowFinished, WorkflowSuspended
from parley.workflow.nodes.basic import holds
from parley.workflow.references import render
from parley.workflow.runner import NodeContext, NodeFailed, NodeResult, RunState, Suspend, SystemValues
from parley.workflow.references import SYSTEM


def _inner_emit(ctx: NodeContext):
    """Nested nodes' progress and messages go out; the nested run's own end does not."""

    def emit(event: WorkflowEvent) -> None:
        if not isinstance(event, (WorkflowFailed, WorkflowFinished, WorkflowSuspended)):
            ctx.emit(event)

    return emit


async def run_loop(ctx: NodeContext) -> NodeResult:
    node: LoopNode = ctx.node  # type: ignore[assignment]
    body, _ = node.body_nodes()
    graph = ctx.runner.graph(node, body, node.body.edges)
    if node.items is not None:
        items = render(node.items, ctx.values)
        if not isinstance(items, list):
            raise NodeFailed(f"items must be a list, got {type(items).__name__}")
    else:
        items = list(range(node.count or 0))
    if len(items) > node.max_iterations:
        raise NodeFailed(f"{len(items)} items is more than max_iterations ({node.max_iterations})")
    ctx.record.input = {"items": items}
    collected: list[Any] = []
    iterations = 0
    emit = _inner_emit(ctx)
    for index, item in enumerate(items):
        iterations += 1
        values = {**ctx.values, node.id: {"item": item, "index": index}}
        inner = RunState(run_id=ctx.values[SYSTEM].get("run_id", ""), workflow_name="", values=values)
        finished = await ctx.runner.run_graph(graph, inner, emit, depth=ctx.depth, belong=node.id)
        ctx.trace.extend(inner.records)
        ctx.record.model_ms += sum(r.model_ms for r in inner.records)
        if finished is None and inner.status == "suspended":
            raise NodeFailed(f"iteration {index}: node {inner.waiting} waits for the user, which a loop's body cannot do")
        if finished is None:
            raise NodeFailed(f"iteration {index}: node {inner.failed_node}: {inner.error}")
        if node.output is not None:
            collected.append(render(node.output, inner.values))
        if node.break_when and any(holds(c, inner.values) for c in node.break_when):
            break
    return NodeResult(outputs={"outputs": collected, "iterations": iterations})


async def run_workflow(ctx: NodeContext) -> NodeResult:
    """Runs the named workflow to its end, or until it waits for the user: then this node (and
    so the outer run) waits too, with the inner question or cards, and keeps the inner run's
    state (plain data) in its own; the next question resumes the inner run where it paused."""
    node: WorkflowNode = ctx.node  # type: ignore[assignment]
    if ctx.depth + 1 >= ctx.runner.MAX_DEPTH:
        raise NodeFailed(f"workflows nested more than {ctx.runner.MAX_DEPTH} deep")
    finder = ctx.runtime.workflows
    definition = finder(node.workflow) if finder else None
    if definition is None:
        raise NodeFailed(f"no workflow named {node.workflow!r}")
    system = ctx.values.get(SYSTEM, {})
    paused = ctx.state.get("inner")
    if paused is not None and ctx.resumed_with is not None:
        ctx.record.input = ctx.state.get("input")
        system_now = SystemValues(**{k: system[k] for k in SystemValues.model_fields if k in system and k != "query"})
        inner = ctx.runner.resume(RunState.model_validate(paused), ctx.resumed_with, system_now)
    else:
        inputs = render(node.inputs, ctx.values)
        ctx.record.input = inputs
        inner = ctx.runner.start(definition, SystemValues(**{k: system[k] for k in SystemValues.model_fields if k in system}), inputs)
        inner.values[SYSTEM]["run_id"] = system.get("run_id", inner.run_id)
    emit = _inner_emit(ctx)
    asked: list[WorkflowSuspended] = []

    def tagged(event: WorkflowEvent) -> None:
        record = getattr(event, "record", None)
        if record is not None and not record.belong_node_id:
            record.belong_node_id = node.id
        if isinstance(event, WorkflowSuspended):
            asked.append(event)
        emit(event)

    await ctx.runner.execute(definition, inner, tagged, depth=ctx.depth + 1)
    for record in inner.records:
        record.belong_node_id = record.belong_node_id or node.id
    ctx.trace.extend(inner.records)
    ctx.record.model_ms += sum(r.model_ms for r in inner.records)
    if inner.status == "failed":
        raise NodeFailed(f"workflow {node.workflow}: node {inner.failed_node}: {inner.error}")
    if inner.status == "suspended":
        inner.records = []  # already in the outer run's trace
        ctx.state.update(inner=inner.model_dump(mode="json"), input=ctx.record.input)
        question = asked[-1] if asked else WorkflowSuspended(node_id=inner.waiting or "", reply="")
        return NodeResult(suspend=Suspend(question.reply, list(question.option_cards)),
                          task_output=f"waiting in {node.workflow}: node {inner.waiting}")
    return NodeResult(outputs={**inner.outputs, "reply": inner.reply, "outputs": inner.outputs})
