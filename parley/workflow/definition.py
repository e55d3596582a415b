"""A workflow as the operator writes it: nodes, edges and the references between them.

The format is Parley's own, declarative YAML (docs/workflows.md). Every node has an `id`
(referenced by edges and by `{{node_id.field}}` in text), a `type` and the type's fields.
A definition is parsed in two steps, first the node's type and then the type's own model,
so that every error names the node and the field at fault.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

FORMAT_VERSION = 1
NODE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
VALUE_TYPES = ("string", "number", "integer", "boolean", "object", "array", "any")


class NodeSpec(BaseModel):
    """What every node has. Subclasses add their fields and say which outputs they give."""

    model_config = ConfigDict(extra="forbid")

    type_name: ClassVar[str] = ""
    adp_type: ClassVar[int] = 0
    """ADP's NodeType number (current_node.NodeType)."""
    branching: ClassVar[bool] = False
    """Its outgoing edges carry ports and only the chosen port's edges run."""
    suspends: ClassVar[bool] = False
    """It may pause the run until the user's next question."""
    grace: ClassVar[float] = 0.0
    """Seconds the runner waits past `timeout` (a node that enforces the timeout itself
    reports better why it stopped)."""

    id: str
    type: str
    name: str = ""
    """Shown as NodeName; the id when empty."""
    timeout: float | None = Field(None, gt=0, le=3600)
    """Seconds this node may take; the runner's default when left out."""

    @property
    def title(self) -> str:
        return self.name or self.id

    def output_fields(self) -> set[str] | None:
        """The fields other nodes may reference; None: any field (an object whose shape varies)."""
        return set()

    def ports(self) -> list[str]:
        """The ports a branching node chooses from."""
        return []

    def texts(self) -> list[tuple[str, Any]]:
        """(field, value) pairs whose strings may hold `{{references}}`, for validation."""
        return []


class InputParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: Literal["string", "number", "integer", "boolean", "object", "array", "any"] = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    options: list[str] = Field(default_factory=list)


class StartNode(NodeSpec):
    type_name: ClassVar[str] = "start"
    adp_type: ClassVar[int] = 1
    type: Literal["start"] = "start"
    inputs: list[InputParam] = Field(default_factory=list)
    """API parameters, filled from the request's custom_variables (JSON strings allowed)."""

    def output_fields(self) -> set[str]:
        return {p.name for p in self.inputs}


class ModelNode(NodeSpec):
    model: str | None = None
    """A configured model's name; none: the application's model. Sampling settings are the
    model's own (its entry in the settings)."""


class ParameterExtractorNode(ModelNode):
    type_name: ClassVar[str] = "parameter_extractor"
    adp_type: ClassVar[int] = 2
    suspends: ClassVar[bool] = True
    type: Literal["parameter_extractor"] = "parameter_extractor"
    query: str = "{{sys.query}}"
    parameters: list[InputParam]
    instruction: str = ""
    ask: str = ""
    """What to ask when a required parameter is missing; `{{missing}}` names them. Empty: a
    sentence built from the parameters' descriptions."""
    max_asks: int = Field(3, ge=0, le=20)
    """Questions asked before the node fails for want of a value."""

    def output_fields(self) -> set[str]:
        return {p.name for p in self.parameters}

    def texts(self) -> list[tuple[str, Any]]:
        return [("query", self.query), ("instruction", self.instruction)]


class LLMNode(ModelNode):
    type_name: ClassVar[str] = "llm"
    adp_type: ClassVar[int] = 3
    type: Literal["llm"] = "llm"
    system: str = ""
    prompt: str = "{{sys.query}}"
    history: int = Field(0, ge=0, le=100)
    """Earlier question-and-answer pairs of the conversation sent along (chat memory)."""

    def output_fields(self) -> set[str]:
        return {"text"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("system", self.system), ("prompt", self.prompt)]


class KnowledgeRetrievalNode(NodeSpec):
    type_name: ClassVar[str] = "knowledge_retrieval"
    adp_type: ClassVar[int] = 5
    type: Literal["knowledge_retrieval"] = "knowledge_retrieval"
    query: str = "{{sys.query}}"
    labels: dict[str, list[str]] = Field(default_factory=dict)
    """Label scope: attribute -> accepted values (values may be references)."""
    top_k: int = Field(5, ge=1, le=50)

    def output_fields(self) -> set[str]:
        return {"result", "text"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("query", self.query), ("labels", self.labels)]


class KnowledgeQANode(ModelNode):
    type_name: ClassVar[str] = "knowledge_qa"
    adp_type: ClassVar[int] = 4
    type: Literal["knowledge_qa"] = "knowledge_qa"
    query: str = "{{sys.query}}"
    labels: dict[str, list[str]] = Field(default_factory=dict)
    top_k: int = Field(5, ge=1, le=50)
    system: str = ""

    def output_fields(self) -> set[str]:
        return {"text", "result"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("query", self.query), ("labels", self.labels), ("system", self.system)]


class Tag(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str = ""
    values: list[str] = Field(default_factory=list)
    """Allowed values; empty: free text."""


class TagExtractorNode(ModelNode):
    type_name: ClassVar[str] = "tag_extractor"
    adp_type: ClassVar[int] = 6
    type: Literal["tag_extractor"] = "tag_extractor"
    query: str = "{{sys.query}}"
    tags: list[Tag]
    instruction: str = ""

    def output_fields(self) -> set[str]:
        return {t.name for t in self.tags} | {"tags"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("query", self.query), ("instruction", self.instruction)]


class CodeNode(NodeSpec):
    type_name: ClassVar[str] = "code"
    adp_type: ClassVar[int] = 7
    grace: ClassVar[float] = 2.0
    type: Literal["code"] = "code"
    language: Literal["python"] = "python"
    code: str
    """Defines `main(**inputs)`, which returns a dict of the outputs."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Argument name -> value (a reference or a literal)."""
    outputs: dict[str, Literal["string", "number", "integer", "boolean", "object", "array", "any"]] = Field(
        default_factory=dict
    )

    def output_fields(self) -> set[str]:
        return set(self.outputs)

    def texts(self) -> list[tuple[str, Any]]:
        return [("inputs", self.inputs)]


class HTTPNode(NodeSpec):
    type_name: ClassVar[str] = "http"
    adp_type: ClassVar[int] = 8
    type: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    """A string (sent as is) or an object (sent as JSON); strings inside may hold references."""
    max_response_bytes: int = Field(1_000_000, ge=1, le=50_000_000)

    def output_fields(self) -> set[str]:
        return {"status_code", "body", "headers", "json"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("url", self.url), ("headers", self.headers), ("params", self.params), ("body", self.body)]


OPERATORS = (
    "equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with", "empty", "not_empty",
    "gt", "ge", "lt", "le", "in", "not_in",
)


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any
    """The left side, usually a reference: `{{node.field}}`."""
    op: Literal[OPERATORS]  # type: ignore[valid-type]
    to: Any = None
    """The right side (not for empty / not_empty); may be a reference."""


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: str
    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(min_length=1)


class ConditionNode(NodeSpec):
    """if / elif / else: the first branch whose conditions hold; else the `else` port."""

    type_name: ClassVar[str] = "condition"
    adp_type: ClassVar[int] = 9
    branching: ClassVar[bool] = True
    type: Literal["condition"] = "condition"
    branches: list[Branch] = Field(min_length=1)

    def output_fields(self) -> set[str]:
        return {"port"}

    def ports(self) -> list[str]:
        return [b.port for b in self.branches] + ["else"]

    def texts(self) -> list[tuple[str, Any]]:
        return [(f"branches.{i}.conditions", [c.model_dump() for c in b.conditions]) for i, b in enumerate(self.branches)]


class MessageNode(NodeSpec):
    type_name: ClassVar[str] = "message"
    adp_type: ClassVar[int] = 10
    type: Literal["message"] = "message"
    text: str

    def output_fields(self) -> set[str]:
        return {"text"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("text", self.text)]


class OptionCardsNode(NodeSpec):
    """Shows buttons and waits: the user's next question is the choice. Ports: each option's
    text, and `other` for an answer that is none of them."""

    type_name: ClassVar[str] = "option_cards"
    adp_type: ClassVar[int] = 11
    branching: ClassVar[bool] = True
    suspends: ClassVar[bool] = True
    type: Literal["option_cards"] = "option_cards"
    text: str
    options: list[str] = Field(min_length=1)

    def output_fields(self) -> set[str]:
        return {"choice", "index"}

    def ports(self) -> list[str]:
        return [*self.options, "other"]

    def texts(self) -> list[tuple[str, Any]]:
        return [("text", self.text), ("options", self.options)]


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str
    target: str
    port: str | None = None
    """For an edge leaving a branching node: the branch (condition port, intent id, option)."""


class Graph(BaseModel):
    """Nodes and edges; parsed node by node (see `parse_nodes`)."""

    model_config = ConfigDict(extra="forbid")
    nodes: list[dict[str, Any]]
    edges: list[Edge] = Field(default_factory=list)


class LoopNode(NodeSpec):
    """Runs its body once per item of a list (or `count` times), at most `max_iterations`,
    stopping early when `break_when` holds. Inside, `{{loop_id.item}}` and
    `{{loop_id.index}}`; the body's `output` reference is collected into `outputs`."""

    type_name: ClassVar[str] = "loop"
    adp_type: ClassVar[int] = 12
    type: Literal["loop"] = "loop"
    items: Any = None
    count: int | None = Field(None, ge=0)
    max_iterations: int = Field(100, ge=1, le=10_000)
    break_when: list[Condition] = Field(default_factory=list)
    """Checked after each iteration (any of them)."""
    body: Graph
    _parsed_body: Any = PrivateAttr(default=None)
    output: str | None = None
    """A reference into the body, e.g. `{{step.text}}`, collected each iteration."""

    def output_fields(self) -> set[str]:
        return {"outputs", "iterations", "item", "index"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("items", self.items)]  # break_when and output see the body: checked with it

    def body_nodes(self) -> tuple[list[NodeSpec], list[Problem]]:
        """The body's nodes, parsed once (their problems are named `loop_id/node_id`)."""
        cached = self._parsed_body
        if cached is None:
            nodes, problems = parse_nodes(self.body.nodes, f"{self.id}.body.nodes")
            for problem in problems:
                problem.node = f"{self.id}/{problem.node}" if problem.node else self.id
            cached = self._parsed_body = (nodes, problems)
        return cached


class Intent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    description: str = ""


class IntentNode(ModelNode):
    """Intent recognition (Dify's question classifier): the model answers with JSON naming one
    intent; the run follows the port of that intent's id."""

    type_name: ClassVar[str] = "intent"
    adp_type: ClassVar[int] = 13
    branching: ClassVar[bool] = True
    type: Literal["intent"] = "intent"
    query: str = "{{sys.query}}"
    intents: list[Intent] = Field(min_length=1)
    instruction: str = ""
    fallback: str | None = None
    """The intent taken when the answer is not valid JSON naming an intent; the first when unset."""

    def output_fields(self) -> set[str]:
        return {"intent", "name", "parse_error"}

    def ports(self) -> list[str]:
        return [i.id for i in self.intents]

    def texts(self) -> list[tuple[str, Any]]:
        return [("query", self.query), ("instruction", self.instruction)]


class WorkflowNode(NodeSpec):
    """Another workflow, run to its end with these inputs; its outputs become this node's."""

    type_name: ClassVar[str] = "workflow"
    adp_type: ClassVar[int] = 14
    type: Literal["workflow"] = "workflow"
    workflow: str
    inputs: dict[str, Any] = Field(default_factory=dict)

    def output_fields(self) -> None:
        return None

    def texts(self) -> list[tuple[str, Any]]:
        return [("inputs", self.inputs)]


class EndNode(NodeSpec):
    """Ends the run: `reply` is the answer (reply method 16); `outputs` are the run's outputs.
    With no reply the workflow only performed an operation (reply method 17)."""

    type_name: ClassVar[str] = "end"
    adp_type: ClassVar[int] = 16
    type: Literal["end"] = "end"
    reply: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)

    def output_fields(self) -> set[str]:
        return set(self.outputs) | {"reply"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("reply", self.reply), ("outputs", self.outputs)]


class AggregatorNode(NodeSpec):
    """The first of `variables` that has a value: joins the branches of a condition."""

    type_name: ClassVar[str] = "variable_aggregator"
    adp_type: ClassVar[int] = 17
    type: Literal["variable_aggregator"] = "variable_aggregator"
    variables: list[str] = Field(min_length=1)

    def output_fields(self) -> set[str]:
        return {"output"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("variables", self.variables)]


TEMPLATE_NODE_TYPE = 101
"""ADP has no number for a template transform; 101 lies outside ADP's range (0-17)."""


class TemplateNode(NodeSpec):
    """A Jinja2 template rendered in Jinja2's sandbox; `variables` name its inputs."""

    type_name: ClassVar[str] = "template"
    adp_type: ClassVar[int] = TEMPLATE_NODE_TYPE
    type: Literal["template"] = "template"
    template: str
    variables: dict[str, Any] = Field(default_factory=dict)

    def output_fields(self) -> set[str]:
        return {"output"}

    def texts(self) -> list[tuple[str, Any]]:
        return [("variables", self.variables)]


NODE_TYPES: dict[str, type[NodeSpec]] = {
    cls.type_name: cls
    for cls in (
        StartNode, ParameterExtractorNode, LLMNode, KnowledgeQANode, KnowledgeRetrievalNode, TagExtractorNode,
        CodeNode, HTTPNode, ConditionNode, MessageNode, OptionCardsNode, LoopNode, IntentNode, WorkflowNode,
        EndNode, AggregatorNode, TemplateNode,
    )
}


class Problem(BaseModel):
    """One thing wrong with a definition: where (node and field) and what."""

    node: str | None = None
    field: str | None = None
    message: str

    def __str__(self) -> str:
        where = " ".join(filter(None, [f"node {self.node!r}" if self.node else "", f"field {self.field!r}" if self.field else ""]))
        return f"{where}: {self.message}" if where else self.message


class WorkflowInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class WorkflowDefinition(BaseModel):
    """A parsed workflow. Build it with `parse_workflow` (which also validates the graph)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    workflow: int = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = ""
    mode: Literal["chat", "run"] = "chat"
    """chat: answers a conversation (history available); run: one run with inputs and outputs."""
    nodes: list[NodeSpec]
    edges: list[Edge] = Field(default_factory=list)
    _node_index: dict[str, NodeSpec] | None = PrivateAttr(default=None)

    def node(self, node_id: str) -> NodeSpec:
        return self._index()[node_id]

    def _index(self) -> dict[str, NodeSpec]:
        if self._node_index is None or len(self._node_index) != len(self.nodes):
            self._node_index = {n.id: n for n in self.nodes}
        return self._node_index

    def to_data(self) -> dict[str, Any]:
        """The definition as plain data (what YAML and a release snapshot hold)."""
        return {
            "workflow": self.workflow, "name": self.name, "description": self.description, "mode": self.mode,
            "nodes": [_node_data(n) for n in self.nodes],
            "edges": [e.model_dump(exclude_none=True) for e in self.edges],
        }


def _node_data(node: NodeSpec) -> dict[str, Any]:
    data = node.model_dump(exclude_defaults=True)
    data = {"id": node.id, "type": node.type, **data}
    if isinstance(node, LoopNode):
        data["body"] = {"nodes": node.body.nodes, "edges": [e.model_dump(exclude_none=True) for e in node.body.edges]}
    return data


def parse_nodes(raw: Any, where: str = "nodes") -> tuple[list[NodeSpec], list[Problem]]:
    """Each node through its own type's model; the problems name node and field."""
    problems: list[Problem] = []
    nodes: list[NodeSpec] = []
    if not isinstance(raw, list):
        return [], [Problem(field=where, message="must be a list of nodes")]
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(Problem(field=f"{where}.{index}", message="a node must be a mapping"))
            continue
        node_id = item.get("id")
        if not isinstance(node_id, str) or not NODE_ID.match(node_id):
            problems.append(Problem(field=f"{where}.{index}.id",
                                    message=f"missing or invalid node id {node_id!r} (letters, digits, '_', '-')"))
            continue
        kind = item.get("type")
        cls = NODE_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            problems.append(Problem(node=node_id, field="type",
                                    message=f"unknown node type {kind!r} (known: {', '.join(NODE_TYPES)})"))
            continue
        try:
            nodes.append(cls.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(Problem(node=node_id, field=".".join(str(p) for p in err["loc"]) or None,
                                        message=err["msg"]))
    return nodes, problems


def parse_workflow(data: Any) -> WorkflowDefinition:
    """A definition from plain data (parsed YAML or the admin API's JSON), validated;
    raises WorkflowInvalid listing every problem found."""
    from parley.workflow.validate import check_graph

    if not isinstance(data, dict):
        raise WorkflowInvalid([Problem(message="a workflow must be a mapping")])
    problems: list[Problem] = []
    nodes, node_problems = parse_nodes(data.get("nodes"))
    problems += node_problems
    header = {k: v for k, v in data.items() if k not in ("nodes", "edges")}
    edges: list[Edge] = []
    raw_edges = data.get("edges") or []
    if not isinstance(raw_edges, list):
        problems.append(Problem(field="edges", message="must be a list of edges"))
        raw_edges = []
    for index, raw_edge in enumerate(raw_edges):
        try:
            edges.append(Edge.model_validate(raw_edge))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(Problem(field=f"edges.{index}.{'.'.join(str(p) for p in err['loc'])}", message=err["msg"]))
    try:
        definition = WorkflowDefinition.model_validate({**header, "nodes": [], "edges": []})
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(Problem(field=".".join(str(p) for p in err["loc"]), message=err["msg"]))
        raise WorkflowInvalid(problems) from None
    if definition.workflow != FORMAT_VERSION:
        problems.append(Problem(field="workflow", message=f"unsupported format version {definition.workflow} (this Parley reads {FORMAT_VERSION})"))
    definition.nodes = nodes
    definition.edges = edges
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
    unparsed = {item["id"] for item in raw_nodes if isinstance(item, dict) and isinstance(item.get("id"), str)}
    unparsed -= {n.id for n in nodes}
    problems += check_graph(definition.nodes, definition.edges, top_level=True, unparsed=unparsed)
    if problems:
        raise WorkflowInvalid(problems)
    return definition


def walk_nodes(definition: WorkflowDefinition) -> list[tuple[str, NodeSpec]]:
    """(path, node) for every node, loop bodies included (a body's node as `loop/node`)."""
    found: list[tuple[str, NodeSpec]] = []

    def walk(nodes: list[NodeSpec], prefix: str) -> None:
        for node in nodes:
            found.append((prefix + node.id, node))
            if isinstance(node, LoopNode):
                walk(node.body_nodes()[0], f"{prefix}{node.id}/")

    walk(definition.nodes, "")
    return found


def models_used(definition: WorkflowDefinition) -> list[tuple[str, str]]:
    """(node id, model name) for every node that names a model, loop bodies included."""
    return [(path, node.model) for path, node in walk_nodes(definition) if isinstance(node, ModelNode) and node.model]


def workflows_called(definition: WorkflowDefinition) -> list[tuple[str, str]]:
    """(node id, workflow name) for every workflow node, loop bodies included."""
    return [(path, node.workflow) for path, node in walk_nodes(definition) if isinstance(node, WorkflowNode)]
