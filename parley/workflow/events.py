"""What a run reports as it goes, for a face to render (ADP's work_flow.current_node,
message replies, option cards) and for the run trace an operator debugs from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, Field

NODE_INITIAL, NODE_RUNNING, NODE_SUCCEEDED, NODE_FAILED = 0, 1, 2, 3
"""ADP's current_node.Status values."""

REPLY_METHOD_WORKFLOW, REPLY_METHOD_OPERATION = 16, 17


class ModelStatistics(BaseModel):
    """One model call of a node (ADP StatisticInfo)."""

    model_name: str
    first_token_ms: int = 0
    total_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def adp(self) -> dict[str, Any]:
        return {
            "ModelName": self.model_name, "FirstTokenCost": self.first_token_ms, "TotalCost": self.total_ms,
            "InputTokens": self.input_tokens, "OutputTokens": self.output_tokens,
            "TotalTokens": self.input_tokens + self.output_tokens,
        }


class NodeRecord(BaseModel):
    """One node's run: what it was given, what it gave, how long it took, how it failed."""

    node_id: str
    node_type: int
    type_name: str
    node_name: str
    status: int = NODE_INITIAL
    input: Any = None
    output: Any = None
    task_output: str = ""
    """The raw output (a model's text before parsing, a program's stdout)."""
    fail_message: str = ""
    cost_ms: float = 0.0
    reply: str = ""
    belong_node_id: str = ""
    """The loop or workflow node this node ran inside of."""
    statistics: list[ModelStatistics] = Field(default_factory=list)
    model_ms: float = 0.0
    """Of cost_ms, the time spent waiting for models (Parley's own time is the rest)."""
    started_at: int = 0
    """Unix milliseconds."""

    def current_node(self) -> dict[str, Any]:
        """ADP's work_flow.current_node object."""
        stats = self.statistics
        merged = None
        if stats:
            merged = stats[0].adp() if len(stats) == 1 else ModelStatistics(
                model_name=stats[-1].model_name, first_token_ms=stats[0].first_token_ms,
                total_ms=sum(s.total_ms for s in stats), input_tokens=sum(s.input_tokens for s in stats),
                output_tokens=sum(s.output_tokens for s in stats),
            ).adp()
        return {
            "NodeID": self.node_id, "NodeType": self.node_type, "NodeName": self.node_name, "Status": self.status,
            "Input": _json_text(self.input), "Output": _json_text(self.output), "TaskOutput": self.task_output,
            "FailMessage": self.fail_message, "CostMilliSeconds": str(int(round(self.cost_ms))), "Reply": self.reply,
            "BelongNodeID": self.belong_node_id, "StatisticInfo": merged,
        }


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


@dataclass(slots=True)
class NodeProgress:
    """A node started (status 1), is waiting for the user (1, with a reply), succeeded (2) or failed (3)."""

    record: NodeRecord


@dataclass(slots=True)
class WorkflowMessage:
    """Text for the user mid-run (a message node)."""

    node_id: str
    text: str


@dataclass(slots=True)
class WorkflowSuspended:
    """The run waits for the user's next question: `reply` asks, `option_cards` are buttons."""

    node_id: str
    reply: str
    option_cards: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WorkflowFinished:
    """The run ended: `reply` is the answer (reply method 16); none: an operation (17)."""

    reply: str
    outputs: dict[str, Any]

    @property
    def reply_method(self) -> int:
        return REPLY_METHOD_WORKFLOW if self.reply else REPLY_METHOD_OPERATION


@dataclass(slots=True)
class WorkflowFailed:
    node_id: str | None
    message: str


WorkflowEvent = NodeProgress | WorkflowMessage | WorkflowSuspended | WorkflowFinished | WorkflowFailed
