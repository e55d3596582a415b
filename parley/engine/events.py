"""The typed events of a turn. Faces render them to their own wire shapes.

Events carry deltas; whole-text rendering is a face's business. Identifiers common to
the whole turn (record ids, session, request id) live in `TurnInfo`, not in each event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Procedure names and titles as ADP's token_stat and thought events show them.
PROCEDURE_TITLES = {
    "knowledge": "调用知识库",
    "large_language_model": "大模型回复",
    "thought": "思考",
    "file": "读取文件",
    "workflow": "工作流",
    "search_engine": "调用搜索引擎",
    "image": "调用图像理解",
}


@dataclass(slots=True, frozen=True)
class Procedure:
    name: str
    status: str  # processing | success | failed | stop
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    elapsed_ms: int = 0
    detail: str = ""
    """What the step did, in words, when its status alone does not say (a search that found
    nothing, images the model could not see)."""
    node: str = ""
    """A workflow node's name, for a `workflow` procedure that is one node's model usage."""

    @property
    def title(self) -> str:
        return self.node or PROCEDURE_TITLES.get(self.name, self.name)


@dataclass(slots=True, frozen=True)
class UserEcho:
    """The visitor's message, recorded, with the sensitive-content verdict."""

    record_id: int
    content: str
    timestamp: int
    is_evil: bool = False
    file_infos: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Progress:
    """Token statistics: the turn's status and its procedures so far."""

    status: str  # processing | success | failed | stop
    procedures: tuple[Procedure, ...]
    elapsed_ms: int

    @property
    def token_count(self) -> int:
        return sum(p.input_tokens + p.output_tokens for p in self.procedures)


@dataclass(slots=True, frozen=True)
class ThoughtDelta:
    text: str
    elapsed_ms: int


@dataclass(slots=True, frozen=True)
class ThoughtEnd:
    elapsed_ms: int


ReplyDelta = str
"""A piece of the answer's visible text, published as the plain string itself.

Reply deltas are the one event that arrives by the thousand (one per token of every open
stream) and stays in the bus until the turn is retained no more. As objects they were the
garbage collector's whole net growth while streams were open: a collection every couple of
seconds at a few thousand streams, each pausing the event loop for 60-95 ms (gc callbacks in
the capacity benchmark). Plain strings are not tracked by the collector at all.
"""


@dataclass(slots=True, frozen=True)
class References:
    items: tuple[dict[str, Any], ...]


@dataclass(slots=True, frozen=True)
class Final:
    """The answer, complete and recorded. Always the last event of a turn that did not fail."""

    content: str
    reply_method: int
    timestamp: int
    is_llm_generated: bool
    status: str = "success"  # success | stop
    is_evil: bool = False
    """The answer hit a sensitive word and was replaced by the refusal."""
    knowledge: tuple[dict[str, Any], ...] = ()
    quote_infos: tuple[dict[str, int], ...] = ()
    work_flow: dict[str, Any] | None = None
    """A workflow's answer: ADP's work_flow object (option cards, outputs, the last node)."""

    @property
    def option_cards(self) -> list[str]:
        """The buttons a paused workflow shows, whose text the visitor answers with."""
        return list((self.work_flow or {}).get("option_cards") or [])

    def plain_text(self) -> str:
        """The answer for faces that show text only (IM, CloudBase): a paused workflow's option
        cards are listed after it, one a line, so that the visitor can answer with one."""
        cards = self.option_cards
        if not cards:
            return self.content
        listed = "\n".join(f"- {card}" for card in cards)
        return f"{self.content}\n\n{listed}" if self.content else listed


@dataclass(slots=True, frozen=True)
class WorkflowStatus:
    """A workflow node started or ended: ADP's work_flow object, with current_node."""

    work_flow: dict[str, Any]


@dataclass(slots=True, frozen=True)
class WorkflowStep:
    """A workflow node started, waits for the user, succeeded or failed: a step of the answer's
    progress for clients that follow it (ADP shows it as a thought with `is_workflow`)."""

    workflow_name: str
    node_id: str
    node_name: str
    status: str  # processing | waiting | success | failed
    cost_ms: int
    """The node's own time so far."""
    elapsed_ms: int
    """The turn's time so far."""
    detail: str = ""
    """Why it failed, or what it asks the user."""


@dataclass(slots=True, frozen=True)
class Failure:
    """The turn failed after it started; whatever was sent stands, the record says failed."""

    kind: str  # an ErrorKind value
    message: str


Event = (
    UserEcho | Progress | ThoughtDelta | ThoughtEnd | ReplyDelta | References | WorkflowStatus | WorkflowStep | Final
    | Failure
)


class ReplyMethod:
    """ADP's reply_method values (the engine uses the same numbering for every face)."""

    LLM = 1
    UNKNOWN_QUESTION = 2
    REJECTED = 3
    SENSITIVE = 4
    QA_PAIR = 5
    GREETING = 6
    CONCURRENCY_EXCEEDED = 7
    SEARCH_ENGINE = 11
    IMAGE_UNDERSTANDING = 13
    REALTIME_DOCUMENT = 14
    WORKFLOW = 16
    WORKFLOW_OPERATION = 17
    """A workflow that only performed an operation (its end node gives no reply)."""


def compact_events(events: list[Any]) -> list[Any]:
    """A finished turn's events with each run of text deltas merged into one.

    A finished turn is kept for late subscribers (see Settings.turn_retention); merged, it
    holds a handful of events instead of one per token. A subscriber replaying it gets the
    same text in fewer, larger packets.
    """
    merged: list[Any] = []
    for event in events:
        last = merged[-1] if merged else None
        if type(event) is ReplyDelta and type(last) is ReplyDelta:
            merged[-1] = last + event
        elif type(event) is ThoughtDelta and type(last) is ThoughtDelta:
            merged[-1] = ThoughtDelta(last.text + event.text, event.elapsed_ms)
        else:
            merged.append(event)
    return merged
