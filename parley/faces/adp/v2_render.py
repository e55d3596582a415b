"""Engine events to ADP v2 events, for one subscriber.

v2 describes a turn as two records (the question, acknowledged by `request_ack`, and the answer,
`response.*`) and the answer as messages (`thought`, `reply`) whose text contents grow by
`text.delta` (Incremental) or `text.replace`. Each event is `event:TYPE` and one `data:` line of
JSON whose `Type` is the same name; the stream ends with `data:[DONE]`. The order for one turn:

  request_ack, response.created, response.processing*,
  [message.added, content.added, text.*+, message.processing, message.done]   the thought, if any
  message.added, content.added, reference.added*, text.*+, message.processing, quote_info.added*,
  message.done                                                                 the reply
  response.completed (the whole record, with StatInfo), [DONE]

A workflow's turn adds `Procedures` to the record (v2's Procedure of Type `workflow`, its
`Workflow` with RunNodes, the current one marked IsCurrent, and per-node model StatInfos): a
response.processing carries them as each node starts and ends, response.completed the last state.
Option cards are a second content of the reply, `{Type: option_cards, OptionCards}`.

or, when the turn fails, `error` and `[DONE]` where it stopped. Field names follow adp-chat-client
v0.6.0 (`model/chat-v2.ts`, `mergeRecord-v2.ts`) and Tencent's v2 documentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from parley.engine.events import (
    Failure,
    Final,
    Progress,
    References,
    ReplyDelta,
    ThoughtDelta,
    ThoughtEnd,
    UserEcho,
    WorkflowStatus,
)
from parley.engine.errors import ErrorKind
from parley.engine.ratings import UNRATABLE_METHODS
from parley.engine.turn import TurnInfo
from parley.faces.adp.errors import code_and_message

DONE = b"data:[DONE]\n\n"
THOUGHT_TITLE = "思考"
WORKFLOW_TITLE = "工作流"
WORKFLOW_FAILED = 460101
"""v2's documented code for a failed workflow run (工作流运行异常)."""


def frame(name: str, fields: dict[str, Any]) -> bytes:
    """One v2 event: `event:NAME` and one `data:` line whose JSON `Type` is NAME."""
    return b"event:%s\ndata:%s\n\n" % (name.encode(), orjson.dumps({"Type": name, **fields}))


def error_frame(code: int, message: str, request_id: str = "", record_id: str = "", *, terminator: bool = True) -> bytes:
    """A v2 `error` event (`Error{Code, Message}`), then the terminator unless told otherwise."""
    error: dict[str, Any] = {"Code": code, "Message": message, "RequestId": request_id}
    fields: dict[str, Any] = {"Error": error}
    if record_id:
        fields["RecordId"] = record_id
    return frame("error", fields) + (DONE if terminator else b"")


def v2_reference(index: int, reference: dict[str, Any]) -> dict[str, Any]:
    """A v1 reference item as v2's Reference: flat fields plus DocRefer or QaRefer.

    `Index` is the 1-based number that quote infos point at.
    """
    refer_id = str(reference.get("id", ""))
    kind = reference.get("type", 0)
    item: dict[str, Any] = {
        "Index": index,
        "Type": kind,
        "Name": reference.get("name", ""),
        "Id": refer_id,
        "ReferBizId": refer_id,
        "Url": reference.get("url", ""),
        "DocBizId": str(reference.get("doc_biz_id", "0")),
        "DocName": reference.get("doc_name", ""),
        "QaBizId": str(reference.get("qa_biz_id", "0")),
        "KnowledgeBizId": "",
        "KnowledgeName": "",
    }
    if kind == 1:
        item["QaRefer"] = {"ReferBizId": refer_id, "QaBizId": item["QaBizId"], "KnowledgeBizId": "", "KnowledgeName": ""}
    elif kind == 2:
        item["DocRefer"] = {
            "ReferBizId": refer_id, "DocBizId": item["DocBizId"], "DocName": item["DocName"],
            "KnowledgeBizId": "", "KnowledgeName": "", "Url": item["Url"],
        }
    return item


@dataclass(slots=True)
class _Message:
    """One message of the answer and how much of its text this subscriber has been sent."""

    kind: str  # thought | reply
    message_id: str
    name: str
    title: str
    text: str = ""
    sent: str = ""  # the text as the subscriber has it
    opened: bool = False
    announced: bool = False  # message.processing sent
    status: str = "processing"
    elapsed_ms: int = 0
    references: list[dict[str, Any]] = field(default_factory=list)
    quote_infos: list[dict[str, int]] = field(default_factory=list)
    more: list[dict[str, Any]] = field(default_factory=list)
    """Contents after the text (a workflow's option cards)."""

    def content(self) -> dict[str, Any]:
        content: dict[str, Any] = {"Type": "text", "Text": self.text}
        if self.references:
            content["References"] = self.references
        if self.quote_infos:
            content["QuoteInfos"] = self.quote_infos
        return content

    def as_json(self, contents: bool = True) -> dict[str, Any]:
        message: dict[str, Any] = {
            "Type": self.kind, "MessageId": self.message_id, "Name": self.name, "Title": self.title,
            "Status": self.status, "StatusDesc": "",
        }
        if contents:
            message["Contents"] = [self.content(), *self.more]
        if self.kind == "thought":
            message["ExtraInfo"] = {"Elapsed": self.elapsed_ms}
        return message


class V2Renderer:
    """Renders one turn's events for one subscriber. `render` returns b"" when nothing is due."""

    one_event = False  # an engine event may open a message and its content as well: several events

    def __init__(
        self,
        info: TurnInfo,
        *,
        incremental: bool,
        throttle: int,
        stream: bool,
        contents: list[dict[str, Any]] | None = None,
        terminator: bool = True,
    ) -> None:
        self.info = info
        self.incremental = incremental
        self.throttle = max(throttle, 1)
        self.stream = stream
        self.contents = contents
        self.terminator = terminator
        self.finished = False
        answer_id = str(info.answer_record_id)
        self._thought = _Message("thought", f"{answer_id}_thought", "thought", THOUGHT_TITLE)
        self._reply = _Message("reply", f"{answer_id}_reply", "reply", "")
        self._order: list[_Message] = []  # messages in the order they were added
        self._references: list[dict[str, Any]] = []
        self._progress: Progress | None = None
        self._workflow: dict[str, Any] | None = None  # v2's WorkflowProcedure, once a workflow runs
        self._run_nodes: dict[str, dict[str, Any]] = {}  # its RunNodes, by node id

    def render(self, event: Any) -> bytes:
        if isinstance(event, ReplyDelta):
            reply = self._reply
            reply.text += event
            if self.stream and len(reply.text) - len(reply.sent) >= self.throttle:
                return self._open(reply) + self._text(reply)
            return b""
        if isinstance(event, ThoughtDelta):
            thought = self._thought
            thought.text += event.text
            thought.elapsed_ms = event.elapsed_ms
            if self.stream and len(thought.text) - len(thought.sent) >= self.throttle:
                return self._open(thought) + self._text(thought)
            return b""
        if isinstance(event, ThoughtEnd):
            return self._end_thought(event.elapsed_ms)
        if isinstance(event, UserEcho):
            return self._acknowledge(event) + frame("response.created", {"Response": self._record("processing")})
        if isinstance(event, Progress):
            self._progress = event
            if event.status != "processing":
                return b""  # the last statistics go out with response.completed
            return frame("response.processing", {"Response": self._record("processing", stat=True)})
        if isinstance(event, References):
            self._references = [v2_reference(i, item) for i, item in enumerate(event.items, 1)]
            if self._reply.opened:
                return self._reference_frames()
            return b""  # announced with the reply message, which does not exist yet
        if isinstance(event, WorkflowStatus):
            self._workflow_progress(event.work_flow)
            return frame("response.processing", {"Response": self._record("processing", stat=True)})
        if isinstance(event, Final):
            self.finished = True
            return self._final(event)
        if isinstance(event, Failure):
            self.finished = True
            code, message = code_and_message(event.kind, event.message)
            if event.kind == ErrorKind.WORKFLOW_FAILED:
                code = WORKFLOW_FAILED
            return error_frame(code, message, self.info.request_id, str(self.info.answer_record_id),
                               terminator=self.terminator)
        return b""

    # the question

    def _acknowledge(self, echo: UserEcho) -> bytes:
        contents = self.contents
        if contents is None:  # not from a v2 request: the recorded question
            contents = [{"Type": "text", "Text": echo.content}]
        record = {
            "Role": "user",
            "RecordId": str(echo.record_id),
            "RelatedRecordId": "",
            "ConversationId": self.info.session_id,
            "Status": "success",
            "StatusDesc": "",
            "Messages": [{
                "Type": "question", "MessageId": f"{echo.record_id}_question", "Name": "question", "Title": "",
                "Status": "success", "StatusDesc": "", "Contents": contents,
            }],
            "ExtraInfo": {
                "RequestId": self.info.request_id, "TraceId": str(self.info.turn_id), "StartTime": echo.timestamp * 1000,
                "IsFromSelf": True, "IsEvil": echo.is_evil, "CanRating": False, "CanFeedback": False,
            },
        }
        return frame("request_ack", {"RequestAck": record})

    # messages

    def _open(self, message: _Message) -> bytes:
        """message.added and content.added the first time a message has something to show."""
        if message.opened:
            return b""
        message.opened = True
        self._order.append(message)
        data = frame("message.added", {"Message": {**message.as_json(contents=False), "Contents": []}})
        data += frame("content.added", {
            "MessageId": message.message_id, "ContentIndex": 0, "Content": {"Type": "text", "Text": ""},
        })
        if message is self._reply and self._references:
            data += self._reference_frames()
        return data

    def _text(self, message: _Message) -> bytes:
        """The text not yet sent: a text.delta with the new part (Incremental) or a text.replace with
        all of it; a text.replace too when the text no longer extends what was sent."""
        text, sent = message.text, message.sent
        if self.incremental and text.startswith(sent):
            data = frame("text.delta", {"MessageId": message.message_id, "ContentIndex": 0, "Text": text[len(sent):]}) \
                if len(text) > len(sent) else b""
        else:
            data = frame("text.replace", {"MessageId": message.message_id, "ContentIndex": 0, "Text": text}) \
                if text != sent else b""
        message.sent = text
        if data and not message.announced:
            message.announced = True
            data += frame("message.processing", {"MessageId": message.message_id, "Message": message.as_json(contents=False)})
        return data

    def _done(self, message: _Message, status: str) -> bytes:
        message.status = status
        return frame("message.done", {"MessageId": message.message_id, "Message": message.as_json()})

    def _end_thought(self, elapsed_ms: int) -> bytes:
        thought = self._thought
        thought.elapsed_ms = elapsed_ms
        if not thought.text or thought.status != "processing":
            return b""
        return self._open(thought) + self._text(thought) + self._done(thought, "success")

    def _reference_frames(self) -> bytes:
        return b"".join(
            frame("reference.added", {
                "MessageId": self._reply.message_id, "ContentIndex": 0, "Reference": reference,
                "Timestamp": self.info.timestamp,
            })
            for reference in self._references
        )

    # the end

    def _final(self, final: Final) -> bytes:
        reply = self._reply
        data = self._end_thought(self._thought.elapsed_ms)
        data += self._open(reply)
        reply.text = final.content  # may differ from what streamed (a refusal replaces the answer)
        data += self._text(reply)
        reply.references = self._references
        reply.quote_infos = [{"Index": q["index"], "Position": q["position"]} for q in final.quote_infos]
        if final.work_flow is not None:
            self._workflow_progress(final.work_flow)
            data += self._option_cards(final.work_flow.get("option_cards") or [])
        data += b"".join(
            frame("quote_info.added", {"MessageId": reply.message_id, "ContentIndex": 0, "QuoteInfo": quote})
            for quote in reply.quote_infos
        )
        data += self._done(reply, final.status)
        record = self._record(final.status, stat=True)
        record["Messages"] = [message.as_json() for message in self._order]
        record["ExtraInfo"].update({
            "IsLlmGenerated": final.is_llm_generated,
            "CanRating": final.reply_method not in UNRATABLE_METHODS,
            "ReplyMethod": final.reply_method,
            "IsEvil": final.is_evil,
        })
        data += frame("response.completed", {"Response": record})
        return data + (DONE if self.terminator else b"")

    # workflows

    def _workflow_progress(self, work_flow: dict[str, Any]) -> None:
        """Takes a work_flow object (a node's progress, or the run's end) into the WorkflowProcedure."""
        workflow = self._workflow
        if workflow is None:
            workflow = self._workflow = {
                "WorkflowId": work_flow.get("workflow_id", ""), "WorkflowName": work_flow.get("workflow_name", ""),
                "WorkflowReleaseTime": "", "WorkflowRunId": work_flow.get("workflow_run_id", ""), "Content": "",
                "Outputs": [], "OptionCards": [], "RunNodes": [],
            }
        workflow["Outputs"] = list(work_flow.get("outputs") or [])
        workflow["OptionCards"] = list(work_flow.get("option_cards") or [])
        node = work_flow.get("current_node")
        if node:
            for run_node in self._run_nodes.values():
                run_node["IsCurrent"] = False
            self._run_nodes[node["NodeID"]] = _run_node(node)
            workflow["RunNodes"] = list(self._run_nodes.values())

    def _option_cards(self, cards: list[str]) -> bytes:
        """The reply's option cards, a content of their own after the text."""
        if not cards:
            return b""
        content = {"Type": "option_cards", "OptionCards": list(cards)}
        reply = self._reply
        reply.more = [content]
        return frame("content.added", {"MessageId": reply.message_id, "ContentIndex": 1, "Content": content})

    def _procedures(self) -> list[dict[str, Any]]:
        """v2's Procedures for a workflow's turn: the run, with each node's model usage as StatInfos."""
        procedures = self._progress.procedures if self._progress is not None else ()
        run = next((p for p in procedures if p.name == "workflow" and not p.node), None)
        return [{
            "Name": "workflow", "Title": WORKFLOW_TITLE, "Status": run.status if run is not None else "processing",
            "Type": "workflow", "Workflow": self._workflow,
            "StatInfos": [
                {"ModelName": p.model, "InputTokens": p.input_tokens, "OutputTokens": p.output_tokens,
                 "TotalTokens": p.input_tokens + p.output_tokens, "Elapsed": p.elapsed_ms, "NodeName": p.node}
                for p in procedures if p.name == "workflow" and p.node
            ],
        }]

    def _record(self, status: str, *, stat: bool = False) -> dict[str, Any]:
        info = self.info
        record: dict[str, Any] = {
            "Role": "assistant",
            "RecordId": str(info.answer_record_id),
            "RelatedRecordId": str(info.question_record_id),
            "ConversationId": info.session_id,
            "Status": status,
            "StatusDesc": "",
            "ExtraInfo": {
                "RequestId": info.request_id, "TraceId": str(info.turn_id), "StartTime": info.timestamp * 1000,
                "IsFromSelf": False, "IsLlmGenerated": True, "CanRating": True, "CanFeedback": True,
                "ReplyMethod": 1, "FromName": info.app_name, "FromAvatar": info.app_avatar,
            },
        }
        if stat:
            record["StatInfo"] = self._stat_info()
            record["ExtraInfo"]["Elapsed"] = record["StatInfo"]["Elapsed"]
        if self._workflow is not None:
            record["Procedures"] = self._procedures()
            record["ExtraInfo"]["ReplyMethod"] = 16
        return record

    def _stat_info(self) -> dict[str, Any]:
        progress = self._progress
        procedures = progress.procedures if progress is not None else ()
        input_tokens = sum(p.input_tokens for p in procedures)
        output_tokens = sum(p.output_tokens for p in procedures)
        return {
            "InputTokens": input_tokens,
            "OutputTokens": output_tokens,
            "TotalTokens": input_tokens + output_tokens,
            "Elapsed": progress.elapsed_ms if progress is not None else 0,
            "StartTime": self.info.timestamp * 1000,
            "ModelName": self.info.model,
        }



def _run_node(node: dict[str, Any]) -> dict[str, Any]:
    """ADP v1's work_flow.current_node as v2's RunNode (the one the run is at: IsCurrent)."""
    stats = node.get("StatisticInfo")
    return {
        "Elapsed": node.get("CostMilliSeconds", "0"), "NodeId": node["NodeID"], "NodeName": node.get("NodeName", ""),
        "NodeType": node.get("NodeType", 0), "Status": node.get("Status", 0), "Input": node.get("Input", ""),
        "Output": node.get("Output", ""), "TaskOutput": node.get("TaskOutput", ""), "Reply": node.get("Reply", ""),
        "FailCode": "", "FailMessage": node.get("FailMessage", ""), "BelongNodeId": node.get("BelongNodeID", ""),
        "IsCurrent": True, "StatInfos": [stats] if stats else [],
    }
