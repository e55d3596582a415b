"""The code node: the user's program runs in the runtime's sandbox, never here."""

from __future__ import annotations

from typing import Any

from parley.workflow.definition import CodeNode
from parley.workflow.references import render
from parley.workflow.runner import NodeContext, NodeFailed, NodeResult
from parley.workflow.sandbox import SandboxError

_TYPES: dict[str, Any] = {
    "string": str, "number": (int, float), "integer": int, "boolean": bool, "object": dict, "array": list,
}


async def run_code(ctx: NodeContext) -> NodeResult:
    node: CodeNode = ctx.node  # type: ignore[assignment]
    sandbox = ctx.runtime.sandbox
    if sandbox is None:
        raise NodeFailed("code nodes are disabled on this server (the operator enables them: workflow_code = true)")
    inputs = render(node.inputs, ctx.values)
    ctx.record.input = inputs
    timeout = node.timeout or ctx.runtime.node_timeout
    try:
        result = await sandbox.run(node.code, inputs, timeout=timeout)
    except SandboxError as exc:
        raise NodeFailed(f"code: {exc}") from None
    ctx.record.task_output = result.stdout
    outputs = result.outputs
    for name, kind in node.outputs.items():
        if name not in outputs:
            raise NodeFailed(f"code: main() returned no {name!r} (declared in outputs)")
        expected = _TYPES.get(kind)
        value = outputs[name]
        if expected is not None and value is not None and (not isinstance(value, expected) or
                                                           (kind in ("number", "integer") and isinstance(value, bool))):
            raise NodeFailed(f"code: output {name!r} must be {kind}, got {type(value).__name__}")
    return NodeResult(outputs=outputs)
