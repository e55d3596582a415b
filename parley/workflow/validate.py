"""The graph's own rules, beyond each node's fields: edges that lead somewhere, no cycles
(repetition is a loop node's job), and references only to values that will exist."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from parley.workflow.definition import (
    AggregatorNode,
    Edge,
    EndNode,
    IntentNode,
    LoopNode,
    NodeSpec,
    Problem,
    StartNode,
)
from parley.workflow.references import SYSTEM, SYSTEM_FIELDS, references_in, single_reference


def check_graph(
    nodes: list[NodeSpec], edges: list[Edge], *, top_level: bool, outer: dict[str, NodeSpec] | None = None,
    prefix: str = "", unparsed: set[str] | None = None,
) -> list[Problem]:
    """Every problem of one graph (the workflow's, or a loop's body, which also sees `outer`).
    `unparsed`: nodes whose own fields were wrong (already reported); edges and references
    to them are not reported again."""
    unparsed = unparsed or set()
    problems: list[Problem] = []
    name = lambda node_id: f"{prefix}{node_id}"  # noqa: E731
    by_id: dict[str, NodeSpec] = {}
    for node in nodes:
        if node.id in by_id or (outer and node.id in outer):
            problems.append(Problem(node=name(node.id), field="id", message="this id is used by another node"))
        by_id[node.id] = node

    outgoing: dict[str, list[Edge]] = defaultdict(list)
    incoming: dict[str, list[Edge]] = defaultdict(list)
    for index, edge in enumerate(edges):
        if edge.source in unparsed or edge.target in unparsed:
            continue
        dangling = [end for end in (edge.source, edge.target) if end not in by_id]
        for end in dangling:
            problems.append(Problem(node=name(end), field=f"edges.{index}",
                                    message=f"edge {edge.source} -> {edge.target} names a node that does not exist"))
        if dangling:
            continue
        outgoing[edge.source].append(edge)
        incoming[edge.target].append(edge)

    for node in nodes:
        out = outgoing[node.id]
        if node.branching:
            ports = node.ports()
            for edge in out:
                if edge.port is None:
                    problems.append(Problem(node=name(node.id), field="edges",
                                            message=f"edge to {edge.target} needs a port (one of: {', '.join(ports)})"))
                elif edge.port not in ports:
                    problems.append(Problem(node=name(node.id), field="edges",
                                            message=f"edge to {edge.target}: unknown port {edge.port!r} (one of: {', '.join(ports)})"))
        else:
            for edge in out:
                if edge.port is not None:
                    problems.append(Problem(node=name(node.id), field="edges",
                                            message=f"edge to {edge.target}: a {node.type} node has no ports"))
        if isinstance(node, EndNode) and out:
            problems.append(Problem(node=name(node.id), field="edges", message="an end node cannot lead anywhere"))
        if isinstance(node, StartNode) and incoming[node.id]:
            problems.append(Problem(node=name(node.id), field="edges", message="nothing may lead into the start node"))

    starts = [n for n in nodes if isinstance(n, StartNode)]
    if top_level:
        if len(starts) != 1:
            problems.append(Problem(field="nodes", message=f"a workflow needs exactly one start node (found {len(starts)})"))
        if not any(isinstance(n, EndNode) for n in nodes):
            problems.append(Problem(field="nodes", message="a workflow needs at least one end node"))
    else:
        for node in nodes:
            if isinstance(node, (StartNode, EndNode)):
                problems.append(Problem(node=name(node.id), field="type", message=f"a loop body cannot hold a {node.type} node"))
            elif node.suspends:
                problems.append(Problem(node=name(node.id), field="type",
                                        message=f"a {node.type} node waits for the user and cannot run inside a loop"))

    cycle = _find_cycle(by_id, outgoing)
    if cycle:
        problems.append(Problem(node=name(cycle[0]), field="edges",
                                message=f"cycle {' -> '.join(cycle)} outside a loop node (repeat with a loop node)"))
        return problems  # ancestors are meaningless with a cycle

    if top_level and len(starts) == 1 and not unparsed:
        reachable = _reachable(starts[0].id, outgoing)
        for node in nodes:
            if node.id not in reachable:
                problems.append(Problem(node=name(node.id), message="no path leads here from the start node"))

    scope_outer = outer or {}
    for node in nodes:
        visible = {a: by_id[a] for a in _ancestors(node.id, incoming)}
        problems += _check_references(node, {**scope_outer, **visible}, name(node.id), unparsed)
        if isinstance(node, AggregatorNode):
            for index, item in enumerate(node.variables):
                if single_reference(item) is None:
                    problems.append(Problem(node=name(node.id), field=f"variables.{index}",
                                            message=f"must be one reference like {{{{node.field}}}}, not {item!r}"))
        if isinstance(node, IntentNode) and node.fallback is not None and node.fallback not in node.ports():
            problems.append(Problem(node=name(node.id), field="fallback", message=f"no intent with id {node.fallback!r}"))
        if isinstance(node, LoopNode):
            problems += _check_loop(node, {**scope_outer, **visible}, name(node.id))
    return problems


def _check_loop(node: LoopNode, visible: dict[str, NodeSpec], label: str) -> list[Problem]:
    problems: list[Problem] = []
    if (node.items is None) == (node.count is None):
        problems.append(Problem(node=label, field="items", message="give either `items` (a list) or `count`"))
    body, body_problems = node.body_nodes()
    problems += body_problems
    if body_problems:
        return problems
    if not body:
        problems.append(Problem(node=label, field="body", message="a loop needs at least one node in its body"))
        return problems
    inner_scope = {**visible, node.id: node}
    problems += check_graph(body, node.body.edges, top_level=False, outer=inner_scope, prefix=f"{label}/")
    body_ids = {n.id: n for n in body}
    for field, value in (("output", node.output), ("break_when", [c.model_dump() for c in node.break_when])):
        problems += _check_refs_against(references_in(value), {**inner_scope, **body_ids}, label, field)
    if node.output is not None and single_reference(node.output) is None:
        problems.append(Problem(node=label, field="output", message="must be one reference like {{node.field}}"))
    return problems


def _check_references(node: NodeSpec, visible: dict[str, NodeSpec], label: str, unparsed: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for field, value in node.texts():
        refs = [r for r in references_in(value) if r[0] not in unparsed]
        problems += _check_refs_against(refs, visible, label, field)
    return problems


def _check_refs_against(refs: Iterable[tuple[str, str]], visible: dict[str, NodeSpec], label: str, field: str) -> list[Problem]:
    problems: list[Problem] = []
    for ref_node, path in refs:
        head = path.split(".", 1)[0]
        if ref_node == SYSTEM:
            if head not in SYSTEM_FIELDS:
                problems.append(Problem(node=label, field=field,
                                        message=f"no system value sys.{head} (known: {', '.join('sys.' + f for f in SYSTEM_FIELDS)})"))
            continue
        target = visible.get(ref_node)
        if target is None:
            problems.append(Problem(node=label, field=field,
                                    message=f"{{{{{ref_node}.{path}}}}}: no node {ref_node!r} runs before this one"))
            continue
        fields = target.output_fields()
        if fields is not None and head not in fields:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(Problem(node=label, field=field,
                                    message=f"{{{{{ref_node}.{path}}}}}: node {ref_node!r} has no output {head!r} (its outputs: {known})"))
    return problems


def _find_cycle(by_id: dict[str, NodeSpec], outgoing: dict[str, list[Edge]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(by_id, WHITE)
    for root in by_id:
        if colour[root] != WHITE:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = GREY
        while stack:
            current, index = stack[-1]
            edges = outgoing[current]
            if index < len(edges):
                stack[-1] = (current, index + 1)
                nxt = edges[index].target
                if colour[nxt] == GREY:
                    return path[path.index(nxt):] + [nxt]
                if colour[nxt] == WHITE:
                    colour[nxt] = GREY
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                colour[current] = BLACK
                stack.pop()
                path.pop()
    return None


def _walk(node_id: str, edges: dict[str, list[Edge]], *, backwards: bool) -> set[str]:
    """The nodes reached from `node_id` along `edges` (outgoing, or incoming when `backwards`)."""
    seen: set[str] = set()
    todo = [node_id]
    while todo:
        for edge in edges[todo.pop()]:
            other = edge.source if backwards else edge.target
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _reachable(start: str, outgoing: dict[str, list[Edge]]) -> set[str]:
    return {start} | _walk(start, outgoing, backwards=False)


def _ancestors(node_id: str, incoming: dict[str, list[Edge]]) -> set[str]:
    return _walk(node_id, incoming, backwards=True)
