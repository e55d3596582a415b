"""Nodes that need nothing outside the run: start, end, message, option cards, condition,
variable aggregator, template transform."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from parley.workflow.definition import (
    AggregatorNode,
    Condition,
    ConditionNode,
    EndNode,
    InputParam,
    MessageNode,
    OptionCardsNode,
    StartNode,
    TemplateNode,
)
from parley.workflow.references import as_text, render, render_text
from parley.workflow.runner import NodeContext, NodeFailed, NodeResult, Suspend, message

TEMPLATE_OUTPUT_LIMIT = 100_000
"""Characters a template may produce."""


def coerce(param: InputParam, value: Any) -> Any:
    """A start input in its declared type; JSON text is accepted for non-string types
    (custom_variables carry only strings)."""
    kind = param.type
    if kind in ("string", "any") or value is None:
        if kind == "string" and not isinstance(value, str) and value is not None:
            return as_text(value)
        return value
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise NodeFailed(f"input {param.name!r} must be {kind}, got text that is not JSON: {value[:80]!r}") from None
    checks = {
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    if not checks[kind](value):
        raise NodeFailed(f"input {param.name!r} must be {kind}, got {orjson.dumps(value).decode()[:80]}")
    return value


async def run_start(ctx: NodeContext) -> NodeResult:
    node: StartNode = ctx.node  # type: ignore[assignment]
    given = ctx.values.get("__inputs__", {})
    ctx.record.input = given
    outputs: dict[str, Any] = {}
    for param in node.inputs:
        value = given.get(param.name, param.default)
        if value is None or value == "":
            if param.required and param.default is None:
                raise NodeFailed(f"required input {param.name!r} is missing (custom_variables)")
            value = param.default
        value = coerce(param, value)
        if param.options and value is not None and value not in param.options:
            raise NodeFailed(f"input {param.name!r} must be one of {param.options}, got {value!r}")
        outputs[param.name] = value
    return NodeResult(outputs=outputs)


async def run_end(ctx: NodeContext) -> NodeResult:
    node: EndNode = ctx.node  # type: ignore[assignment]
    outputs = render(node.outputs, ctx.values)
    reply = render_text(node.reply, ctx.values)
    return NodeResult(outputs={"reply": reply, "outputs": outputs, **outputs}, reply=reply, finish=True)


async def run_message(ctx: NodeContext) -> NodeResult:
    node: MessageNode = ctx.node  # type: ignore[assignment]
    text = render_text(node.text, ctx.values)
    message(ctx, text)
    return NodeResult(outputs={"text": text}, reply=text)


async def run_option_cards(ctx: NodeContext) -> NodeResult:
    node: OptionCardsNode = ctx.node  # type: ignore[assignment]
    options = [render_text(o, ctx.values) for o in node.options]
    text = render_text(node.text, ctx.values)
    if ctx.resumed_with is None:
        ctx.state["options"] = options
        ctx.record.input = {"text": text, "options": options}
        return NodeResult(reply=text, suspend=Suspend(reply=text, option_cards=options))
    options = ctx.state.get("options", options)
    answer = ctx.resumed_with.strip()
    ctx.record.input = {"options": options, "answer": answer}
    index = next((i for i, o in enumerate(options) if o.strip() == answer), -1)
    if index < 0:  # a case-insensitive match before giving up
        index = next((i for i, o in enumerate(options) if o.strip().casefold() == answer.casefold()), -1)
    port = node.options[index] if index >= 0 else "other"
    return NodeResult(outputs={"choice": options[index] if index >= 0 else answer, "index": index}, port=port)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def holds(condition: Condition, values: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether one condition holds, with both sides' references filled in."""
    left = render(condition.value, values)
    right = render(condition.to, values)
    op = condition.op
    if op == "empty":
        return left in (None, "", [], {})
    if op == "not_empty":
        return left not in (None, "", [], {})
    if op in ("gt", "ge", "lt", "le"):
        a, b = _number(left), _number(right)
        if a is None or b is None:
            return False
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
    if op in ("equals", "not_equals"):
        same = left == right or (not isinstance(left, (dict, list)) and as_text(left) == as_text(right))
        if not same and _number(left) is not None and _number(right) is not None:
            same = _number(left) == _number(right)
        return same if op == "equals" else not same
    if op in ("contains", "not_contains"):
        if isinstance(left, (list, dict)):
            found = right in left
        else:
            found = as_text(right) in as_text(left)
        return found if op == "contains" else not found
    if op == "starts_with":
        return as_text(left).startswith(as_text(right))
    if op == "ends_with":
        return as_text(left).endswith(as_text(right))
    if op in ("in", "not_in"):
        found = isinstance(right, (list, tuple)) and (left in right or as_text(left) in [as_text(r) for r in right])
        return found if op == "in" else not found
    raise NodeFailed(f"unknown operator {op!r}")


async def run_condition(ctx: NodeContext) -> NodeResult:
    node: ConditionNode = ctx.node  # type: ignore[assignment]
    for branch in node.branches:
        results = [holds(c, ctx.values) for c in branch.conditions]
        if (all(results) if branch.match == "all" else any(results)):
            return NodeResult(outputs={"port": branch.port}, port=branch.port)
    return NodeResult(outputs={"port": "else"}, port="else")


async def run_aggregator(ctx: NodeContext) -> NodeResult:
    node: AggregatorNode = ctx.node  # type: ignore[assignment]
    for reference in node.variables:
        value = render(reference, ctx.values)
        if value is not None:
            return NodeResult(outputs={"output": value})
    return NodeResult(outputs={"output": None})


_jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


async def run_template(ctx: NodeContext) -> NodeResult:
    """Jinja2's immutable sandbox: no attribute tricks to reach Python internals, no mutation
    of the inputs; unknown names are errors rather than silent blanks."""
    node: TemplateNode = ctx.node  # type: ignore[assignment]
    variables = render(node.variables, ctx.values)
    ctx.record.input = variables
    try:
        text = _compiled(node.template).render(**variables)
    except TemplateError as exc:
        raise NodeFailed(f"template: {exc}") from None
    if len(text) > TEMPLATE_OUTPUT_LIMIT:
        raise NodeFailed(f"template output is over {TEMPLATE_OUTPUT_LIMIT} characters")
    return NodeResult(outputs={"output": text})


_templates: dict[str, Any] = {}


def _compiled(source: str) -> Any:
    template = _templates.get(source)
    if template is None:
        try:
            template = _jinja.from_string(source)
        except TemplateError as exc:
            raise NodeFailed(f"template does not compile: {exc}") from None
        if len(_templates) > 1000:
            _templates.clear()
        _templates[source] = template
    return template
