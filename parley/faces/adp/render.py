"""Engine events to ADP events: `reply`, `token_stat`, `thought`, `reference`, `error`.

Rendering is per subscriber, because `incremental` and `streaming_throttle` are the
client's choice. Reply packets are the hot path: everything but the text is serialised
once per turn, and each packet splices the text into that template.
"""

from __future__ import annotations

from typing import Any

import orjson

from parley.engine.events import (
    Failure,
    Final,
    Procedure,
    Progress,
    References,
    ReplyDelta,
    ThoughtDelta,
    ThoughtEnd,
    UserEcho,
    WorkflowStatus,
    WorkflowStep,
)
from parley.engine.ratings import UNRATABLE_METHODS
from parley.engine.turn import TurnInfo
from parley.faces.adp.errors import code_and_message

KEEPALIVE = b": keep-alive\n\n"
THOUGHT_TITLE = "思考"
WORKFLOW_PLUGIN_TYPE = 2
"""A thought procedure's plugin_type for a workflow (the seed: 0 custom plugin, 1 official, 2 workflow)."""
STEP_WORDS = {"processing": "running", "waiting": "waiting for the user", "success": "done", "failed": "failed"}


def frame(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event: `event:NAME`, one `data:` line of JSON, a blank line (no spaces after colons)."""
    return b"event:%s\ndata:%s\n\n" % (name.encode(), orjson.dumps({"type": name, "payload": payload}))


def error_body(code: int, message: str, request_id: str = "") -> dict[str, Any]:
    """An error in both shapes clients read: top-level `error` and `payload.error`."""
    error = {"code": code, "message": message}
    return {"type": "error", "request_id": request_id, "error": error, "payload": {"request_id": request_id, "error": error}}


def error_frame(code: int, message: str, request_id: str = "") -> bytes:
    """An `error` event (see error_body)."""
    return b"event:error\ndata:%s\n\n" % orjson.dumps(error_body(code, message, request_id))


class AdpRenderer:
    """Renders one turn's events for one subscriber. `render` returns b"" when nothing is due."""

    one_event = True  # each render is at most one event: its id is put on without searching the bytes

    def __init__(self, info: TurnInfo, *, incremental: bool, throttle: int, stream: bool) -> None:
        self.info = info
        self.incremental = incremental
        self.throttle = max(throttle, 1)
        self.stream = stream
        self.finished = False
        self._reply = ""
        self._reply_sent = 0  # characters of _reply already sent
        self._thought = ""
        self._thought_sent = 0
        self._thought_elapsed = 0
        self._steps: dict[str, dict[str, Any]] = {}  # a workflow's thought procedures, by node id
        self._common = {
            "request_id": info.request_id,
            "session_id": info.session_id,
            "record_id": str(info.answer_record_id),
            "trace_id": str(info.turn_id),
        }
        answer = {
            **self._common,
            "related_record_id": str(info.question_record_id),
            "is_from_self": False,
            "can_rating": True,
            "can_feedback": True,
            "timestamp": info.timestamp,
            "is_evil": False,
            "is_llm_generated": True,
            "reply_method": 1,
            "knowledge": [],
            "quote_infos": [],
            "file_infos": [],
            "from_name": info.app_name,
            "from_avatar": info.app_avatar,
            "is_final": False,
        }
        self._reply_prefix = b'event:reply\ndata:{"type":"reply","payload":' + orjson.dumps(answer)[:-1] + b',"content":'
        self._answer = answer

    def render(self, event: Any) -> bytes:
        if isinstance(event, ReplyDelta):
            self._reply += event
            if self.stream and len(self._reply) - self._reply_sent >= self.throttle:
                return self._reply_packet()
            return b""
        if isinstance(event, ThoughtDelta):
            self._thought += event.text
            self._thought_elapsed = event.elapsed_ms
            if self.stream and len(self._thought) - self._thought_sent >= self.throttle:
                return self._thought_packet("processing")
            return b""
        if isinstance(event, ThoughtEnd):
            self._thought_elapsed = event.elapsed_ms
            return self._thought_packet("success")  # the rest of the thought, and its status
        if isinstance(event, UserEcho):
            return self._echo(event)
        if isinstance(event, Progress):
            return frame("token_stat", self._token_stat(event))
        if isinstance(event, References):
            return frame("reference", {**self._common, "references": list(event.items)})
        if isinstance(event, WorkflowStatus):
            return self._workflow_packet(event.work_flow)
        if isinstance(event, WorkflowStep):
            return self._workflow_thought(event)
        if isinstance(event, Final):
            self.finished = True
            return self._final(event)
        if isinstance(event, Failure):
            self.finished = True
            code, message = code_and_message(event.kind, event.message)
            return error_frame(code, message, self.info.request_id)
        return b""

    def _reply_packet(self) -> bytes:
        if self.incremental:
            content = self._reply[self._reply_sent:]
        else:
            content = self._reply
        self._reply_sent = len(self._reply)
        return self._reply_prefix + orjson.dumps(content) + b"}}\n\n"

    def _workflow_packet(self, work_flow: dict[str, Any]) -> bytes:
        """A reply event carrying the workflow's progress (work_flow.current_node), with the
        answer so far; the text it carries counts as sent."""
        content = self._reply[self._reply_sent:] if self.incremental else self._reply
        self._reply_sent = len(self._reply)
        return frame("reply", {**self._answer, "reply_method": 16, "content": content, "work_flow": work_flow})

    def _thought_packet(self, status: str) -> bytes:
        if self.incremental and self.stream:
            content = self._thought[self._thought_sent:]
        else:
            content = self._thought
        self._thought_sent = len(self._thought)
        procedure = {
            "index": 0,
            "name": "thought",
            "title": THOUGHT_TITLE,
            "status": status,
            "icon": "",
            "switch": "main",
            "workflow_name": "",
            "plugin_type": 0,
            "elapsed": self._thought_elapsed,
            "debugging": {"content": content},
        }
        payload = {
            **self._common,
            "elapsed": self._thought_elapsed,
            "is_workflow": False,
            "workflow_name": "",
            "procedures": [procedure],
        }
        return frame("thought", payload)

    def _workflow_thought(self, step: WorkflowStep) -> bytes:
        """A thought event with `is_workflow` whose procedures are the workflow's nodes so far,
        one each (the Go SDK's AgentProcedure: node_name, switch, plugin_type), each with its
        latest status and what it did in words."""
        words = STEP_WORDS.get(step.status, step.status)
        content = f"{step.node_name}: {words}"
        if step.status in ("success", "failed"):
            content += f" ({step.cost_ms} ms)"
        if step.detail:
            content += f": {step.detail}"
        self._steps[step.node_id] = {
            "index": self._steps[step.node_id]["index"] if step.node_id in self._steps else len(self._steps),
            "name": "workflow",
            "title": step.node_name,
            "status": "processing" if step.status == "waiting" else step.status,
            "icon": "",
            "switch": "workflow",
            "workflow_name": step.workflow_name,
            "node_name": step.node_name,
            "reply_index": 0,
            "plugin_type": WORKFLOW_PLUGIN_TYPE,
            "elapsed": step.cost_ms,
            "debugging": {"content": content},
        }
        payload = {
            **self._common,
            "elapsed": step.elapsed_ms,
            "is_workflow": True,
            "workflow_name": step.workflow_name,
            "procedures": list(self._steps.values()),
        }
        return frame("thought", payload)

    def _echo(self, echo: UserEcho) -> bytes:
        payload = {
            "request_id": self.info.request_id,
            "session_id": self.info.session_id,
            "record_id": str(echo.record_id),
            "related_record_id": "",
            "trace_id": str(self.info.turn_id),
            "content": echo.content,
            "file_infos": echo.file_infos,
            "is_from_self": True,
            "can_rating": False,
            "can_feedback": False,
            "timestamp": echo.timestamp,
            "is_final": True,
            "is_evil": echo.is_evil,
            "is_llm_generated": False,
            "reply_method": 0,
            "knowledge": [],
            "quote_infos": [],
            "from_name": "",
            "from_avatar": "",
        }
        return frame("reply", payload)

    def _final(self, final: Final) -> bytes:
        whole = final.content
        if self.incremental and self.stream and whole.startswith(self._reply[: self._reply_sent]):
            content = whole[self._reply_sent:]
        else:
            content = whole
        payload = {
            **self._answer,
            "timestamp": final.timestamp,
            "is_llm_generated": final.is_llm_generated,
            "is_evil": final.is_evil,
            "can_rating": final.reply_method not in UNRATABLE_METHODS,
            "reply_method": final.reply_method,
            "knowledge": list(final.knowledge),
            "quote_infos": list(final.quote_infos),
            "is_final": True,
            "content": content,
        }
        if final.work_flow is not None:
            payload["work_flow"] = final.work_flow
            payload["option_cards"] = final.work_flow.get("option_cards", [])
        return frame("reply", payload)

    def _token_stat(self, progress: Progress) -> dict[str, Any]:
        procedures = [_procedure(p) for p in progress.procedures]
        token_count = progress.token_count
        return {
            **self._common,
            "status_summary": progress.status,
            "status_summary_title": procedures[-1]["title"] if procedures else "",
            "elapsed": progress.elapsed_ms,
            "token_count": token_count,
            "used_count": token_count,
            "free_count": 0,
            "order_count": 0,
            "procedures": procedures,
        }


def _procedure(p: Procedure) -> dict[str, Any]:
    total = p.input_tokens + p.output_tokens
    return {
        "name": p.name,
        "title": p.title,
        "status": p.status,
        "input_count": p.input_tokens,
        "output_count": p.output_tokens,
        "count": total,
        "token_usage_details": [
            {"model_name": p.model, "input_tokens": p.input_tokens, "output_tokens": p.output_tokens, "total_tokens": total}
        ]
        if p.model
        else [],
        "elapsed": p.elapsed_ms,  # milliseconds, as thought procedures carry it
        **({"debugging": {"content": p.detail}} if p.detail else {}),
    }
