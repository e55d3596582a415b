"""Runs a workflow's graph: node by node in definition order as their inputs become ready,
following only the chosen ports of branching nodes, pausing when a node waits for the user.

A node runs once every edge into it is settled and at least one of them was taken; when all
of them were skipped (a branch not chosen) the node is skipped too, and so on downstream, so
that a join after an if/else waits for the branch that ran. Branches run one after the other
(in the order the nodes are written), which keeps messages and traces deterministic.

The whole state of a run is a `RunState`, plain data that can be stored between a question
that paused it and the answer that resumes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from parley.ids import new_id
from parley.workflow.definition import Edge, EndNode, NodeSpec, WorkflowDefinition
from parley.workflow.events import (
    NODE_FAILED,
    NODE_RUNNING,
    NODE_SUCCEEDED,
    ModelStatistics,
    NodeProgress,
    NodeRecord,
    WorkflowEvent,
    WorkflowFailed,
    WorkflowFinished,
    WorkflowMessage,
    WorkflowSuspended,
)
from parley.workflow.references import SYSTEM
from parley.workflow.seams import WorkflowRuntime

Emit = Callable[[WorkflowEvent], None]
TAKEN, SKIPPED = "taken", "skipped"


class NodeFailed(Exception):
    """A node could not do its job; the message becomes FailMessage."""


@dataclass(slots=True)
class Suspend:
    reply: str
    option_cards: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NodeResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    port: str | None = None
    reply: str = ""
    task_output: str = ""
    suspend: Suspend | None = None
    finish: bool = False
    """An end node: the run stops here."""


class SystemValues(BaseModel):
    query: str = ""
    history: list[dict[str, str]] = Field(default_factory=list)
    visitor: str = ""
    session: str = ""
    turn: int = 0


class RunState(BaseModel):
    """Everything about one run; stored while it waits for the user."""

    run_id: str
    workflow_name: str
    status: Literal["running", "suspended", "finished", "failed", "stopped"] = "running"
    values: dict[str, dict[str, Any]] = Field(default_factory=dict)
    edges: dict[int, str] = Field(default_factory=dict)
    """Edge index -> taken / skipped."""
    done: list[str] = Field(default_factory=list)
    """Nodes that ran or were skipped."""
    waiting: str | None = None
    """The node waiting for the user's next question."""
    node_state: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """What a waiting node keeps between questions (what it asked, what it gathered)."""
    records: list[NodeRecord] = Field(default_factory=list)
    reply: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    failed_node: str | None = None


@dataclass(slots=True)
class NodeContext:
    """What a node handler sees of its run."""

    runner: WorkflowRunner
    node: NodeSpec
    values: dict[str, dict[str, Any]]
    record: NodeRecord
    emit: Emit
    state: dict[str, Any]
    """This node's own state, kept across a pause (empty on the first run)."""
    resumed_with: str | None = None
    """The user's answer when the node resumes after a pause."""
    depth: int = 0
    trace: list[NodeRecord] = field(default_factory=list)
    """The run's node records (nodes inside loops and workflow nodes add theirs)."""

    @property
    def runtime(self) -> WorkflowRuntime:
        return self.runner.runtime

    def model_used(self, answer: Any) -> None:
        self.record.statistics.append(ModelStatistics(
            model_name=answer.model_name, first_token_ms=answer.first_token_ms, total_ms=answer.total_ms,
            input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
        ))

    def model_time(self, seconds: float) -> None:
        self.record.model_ms += seconds * 1000


Handler = Callable[[NodeContext], Any]
"""async (NodeContext) -> NodeResult"""


class Graph:
    """A graph's wiring, computed once per definition (or loop body)."""

    __slots__ = ("nodes", "edges", "incoming", "outgoing")

    def __init__(self, nodes: list[NodeSpec], edges: list[Edge]) -> None:
        self.nodes = nodes
        self.edges = edges
        self.incoming: dict[str, list[int]] = {n.id: [] for n in nodes}
        self.outgoing: dict[str, list[int]] = {n.id: [] for n in nodes}
        for index, edge in enumerate(edges):
            self.outgoing[edge.source].append(index)
            self.incoming[edge.target].append(index)


class WorkflowRunner:
    """Runs definitions with one runtime (models, retriever, sandbox, HTTP policy)."""

    MAX_DEPTH = 5
    """Workflows inside workflows, at most this deep."""

    def __init__(self, runtime: WorkflowRuntime | None = None) -> None:
        from parley.workflow.nodes import HANDLERS

        self.runtime = runtime or WorkflowRuntime()
        self._handlers: dict[str, Handler] = HANDLERS
        self._graphs: dict[int, tuple[Any, Graph]] = {}

    def graph(self, owner: Any, nodes: list[NodeSpec], edges: list[Edge]) -> Graph:
        cached = self._graphs.get(id(owner))
        if cached is None or cached[0] is not owner:
            cached = self._graphs[id(owner)] = (owner, Graph(nodes, edges))
        return cached[1]

    # -- starting and resuming ------------------------------------------------------------

    def start(self, definition: WorkflowDefinition, system: SystemValues, inputs: dict[str, Any] | None = None) -> RunState:
        """A new run, not yet started: `inputs` are the start node's parameters (custom_variables)."""
        run_id = new_id_text()
        values = {SYSTEM: {**system.model_dump(), "run_id": run_id}, "__inputs__": dict(inputs or {})}
        return RunState(run_id=run_id, workflow_name=definition.name, values=values)

    def resume(self, state: RunState, question: str, system: SystemValues | None = None) -> RunState:
        """The user's next question resumes a waiting run."""
        if state.status != "suspended" or state.waiting is None:
            raise ValueError(f"run {state.run_id} is {state.status}, not waiting for the user")
        state = state.model_copy(deep=True)
        sys_values = state.values[SYSTEM]
        if system is not None:
            sys_values.update(system.model_dump(exclude={"query"}))
        sys_values["query"] = question
        state.node_state.setdefault(state.waiting, {})["__answer__"] = question
        state.status = "running"
        return state

    async def stream(self, definition: WorkflowDefinition, state: RunState) -> AsyncIterator[WorkflowEvent]:
        """Runs (or continues) `state`, yielding events as they happen; `state` is updated in place."""
        queue: asyncio.Queue[WorkflowEvent | None] = asyncio.Queue()
        task = asyncio.ensure_future(self.execute(definition, state, queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            task.result()
        finally:
            if not task.done():
                task.cancel()

    async def execute(self, definition: WorkflowDefinition, state: RunState, emit: Emit, depth: int = 0) -> RunState:
        """Runs (or continues) `state` until it finishes, fails or waits for the user."""
        graph = self.graph(definition, definition.nodes, definition.edges)
        answer: str | None = None
        if state.waiting is not None:
            answer = state.node_state.get(state.waiting, {}).pop("__answer__", None)
        outcome = await self.run_graph(graph, state, emit, depth=depth, resumed=(state.waiting, answer))
        if outcome is None:
            return state
        if state.status == "running":
            state.status = "finished"
            emit(WorkflowFinished(reply=state.reply, outputs=state.outputs))
        return state

    # -- the graph walk ---------------------------------------------------------------------

    async def run_graph(
        self, graph: Graph, state: RunState, emit: Emit, *, depth: int, belong: str = "",
        resumed: tuple[str | None, str | None] = (None, None),
    ) -> bool | None:
        """Walks `graph` over `state`. Returns True when it ran to the end (or an end node), None
        when it paused or failed (state.status says which)."""
        done = set(state.done)
        edges = state.edges
        waiting, answer = resumed
        while True:
            node = self._next_ready(graph, done, edges)
            if node is None:
                return True
            incoming = graph.incoming[node.id]
            if incoming and all(edges.get(i) == SKIPPED for i in incoming):
                self._settle(graph, node.id, done, state, edges, taken_port=None, skip_all=True)
                continue
            is_resume = node.id == waiting
            result = await self.run_node(node, state, emit, depth=depth, belong=belong,
                                         resumed_with=answer if is_resume else None)
            if is_resume:
                waiting = None
            if result is None:
                return None
            if result.suspend is not None:
                state.status = "suspended"
                state.waiting = node.id
                state.done = list(done)
                emit(WorkflowSuspended(node_id=node.id, reply=result.suspend.reply, option_cards=result.suspend.option_cards))
                return None
            state.waiting = None
            state.node_state.pop(node.id, None)
            self._settle(graph, node.id, done, state, edges, taken_port=result.port, skip_all=False)
            if result.finish:
                return True

    @staticmethod
    def _next_ready(graph: Graph, done: set[str], edges: dict[int, str]) -> NodeSpec | None:
        for node in graph.nodes:
            if node.id in done:
                continue
            if all(i in edges for i in graph.incoming[node.id]):
                return node
        return None

    @staticmethod
    def _settle(graph: Graph, node_id: str, done: set[str], state: RunState, edges: dict[int, str], *,
                taken_port: str | None, skip_all: bool) -> None:
        done.add(node_id)
        state.done.append(node_id)
        for index in graph.outgoing[node_id]:
            edge = graph.edges[index]
            taken = not skip_all and (edge.port is None or edge.port == taken_port)
            edges[index] = TAKEN if taken else SKIPPED

    async def run_node(
        self, node: NodeSpec, state: RunState, emit: Emit, *, depth: int, belong: str = "",
        resumed_with: str | None = None,
    ) -> NodeResult | None:
        """One node: its record, its events, its timeout. None when it failed (the run is failed)."""
        record = NodeRecord(node_id=node.id, node_type=node.adp_type, type_name=node.type, node_name=node.title,
                            status=NODE_RUNNING, belong_node_id=belong, started_at=int(time.time() * 1000))
        if resumed_with is None:
            emit(NodeProgress(record.model_copy()))
        ctx = NodeContext(self, node, state.values, record, emit, state.node_state.setdefault(node.id, {}),
                          resumed_with, depth, state.records)
        started = time.perf_counter()
        timeout = node.timeout or self.runtime.node_timeout
        try:
            async with asyncio.timeout(timeout + node.grace):
                result: NodeResult = await self._handlers[node.type](ctx)
        except NodeFailed as exc:
            return self._fail(state, record, emit, started, str(exc))
        except TimeoutError:
            return self._fail(state, record, emit, started, f"timed out after {timeout:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a node's fault must end the run cleanly, never escape
            return self._fail(state, record, emit, started, f"{type(exc).__name__}: {exc}")
        record.cost_ms += (time.perf_counter() - started) * 1000
        record.reply = result.reply
        record.task_output = record.task_output or result.task_output
        if result.suspend is not None:
            record.output = result.outputs or None
            state.records.append(record)
            emit(NodeProgress(record.model_copy()))
            return result
        state.values[node.id] = result.outputs
        record.status = NODE_SUCCEEDED
        record.output = result.outputs
        state.records.append(record)
        emit(NodeProgress(record.model_copy()))
        if isinstance(node, EndNode) and not belong:
            state.reply = result.reply
            state.outputs = result.outputs.get("outputs", {})
        return result

    @staticmethod
    def _fail(state: RunState, record: NodeRecord, emit: Emit, started: float, message: str) -> None:
        record.cost_ms += (time.perf_counter() - started) * 1000
        record.status = NODE_FAILED
        record.fail_message = message
        state.records.append(record)
        state.status = "failed"
        state.error = message
        state.failed_node = record.node_id
        emit(NodeProgress(record.model_copy()))
        emit(WorkflowFailed(node_id=record.node_id, message=f"node {record.node_id}: {message}"))
        return None


def new_id_text() -> str:
    return str(new_id())


def message(ctx: NodeContext, text: str) -> None:
    """Sends text to the user mid-run."""
    ctx.emit(WorkflowMessage(node_id=ctx.node.id, text=text))
