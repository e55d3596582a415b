"""Stored records as GetMsgRecord's `MsgRecord` objects (PascalCase, Tencent's field types).

adp-chat-client validates these with pydantic, so types matter: ids and `Timestamp` are
numeric strings, counts are ints, `StartTime` is a string, `CustomVariables` a list.
References and quote positions come from the record's `extra` (`references`,
`quote_infos`), where the knowledge stage keeps them.
"""

from __future__ import annotations

from typing import Any

from parley.engine.engine import RecordRow
from parley.engine.events import PROCEDURE_TITLES
from parley.engine.ratings import can_rate

ACCESS_TYPE_API = 5
"""`Type` of a record: the access type it came through (5: API visitor)."""

_WIRE_STATUS = {
    "success": "success", "stopped": "stop", "failed": "failed", "streaming": "processing", "interrupted": "failed",
}
"""Stored statuses as ADP's: an answer still being written is `processing`; one its server
died writing (stored `interrupted`, with the text checkpointed) is `failed`."""
THOUGHT_TITLE = PROCEDURE_TITLES.get("thought", "思考")


def msg_record(record: RecordRow, session_id: str, app_name: str, app_avatar: str) -> dict[str, Any]:
    extra = record.extra or {}
    rating = extra.get("rating") or {}
    ratable = can_rate(record)
    return {
        "Content": record.content,
        "SessionId": session_id,
        "RecordId": str(record.id),
        "RelatedRecordId": str(record.related_record_id) if record.related_record_id else "",
        "IsFromSelf": record.is_from_self,
        "FromName": "" if record.is_from_self else app_name,
        "FromAvatar": "" if record.is_from_self else app_avatar,
        "Timestamp": str(record.created_at // 1000),
        "HasRead": True,
        "Score": record.score,
        "CanRating": ratable,
        "CanFeedback": ratable,
        "Type": ACCESS_TYPE_API,
        "References": [_reference(r) for r in extra.get("references") or []],
        "Reasons": list(rating.get("reasons") or []),
        "IsLlmGenerated": record.is_llm_generated,
        "ImageUrls": [],
        "TokenStat": _token_stat(record, session_id) if record.token_stat else None,
        "ReplyMethod": record.reply_method,
        "OptionCards": [],
        "FileInfos": [_file_info(f, record.created_at) for f in record.file_infos or []],
        "QuoteInfos": [
            {"Position": int(q.get("position", 0)), "Index": int(q.get("index", 0))}
            for q in extra.get("quote_infos") or []
        ],
        "AgentThought": _agent_thought(record, session_id) if record.reasoning else None,
    }


def _reference(ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": str(ref.get("id", "")),
        "Url": ref.get("url", ""),
        "Type": int(ref.get("type", 0)),
        "Name": ref.get("name", ""),
        "DocId": str(ref.get("doc_id", "")),
        "KnowledgeName": ref.get("knowledge_name", ""),
        "KnowledgeBizId": str(ref.get("knowledge_biz_id", "")),
        "DocBizId": str(ref.get("doc_biz_id", "")),
        "QaBizId": str(ref.get("qa_biz_id", "")),
        "Index": int(ref.get("index", 0)),
    }


def _file_info(info: dict[str, Any], created_at_ms: int) -> dict[str, Any]:
    return {
        "FileName": info.get("file_name", ""),
        "FileSize": str(info.get("file_size", "")),
        "FileUrl": info.get("file_url", ""),
        "FileType": info.get("file_type", ""),
        "DocId": str(info.get("doc_id", "")),
        "CreatedAt": str(created_at_ms // 1000),
    }


def _token_stat(record: RecordRow, session_id: str) -> dict[str, Any]:
    stat = record.token_stat or {}
    status = _WIRE_STATUS.get(record.status, record.status)
    procedures = [_procedure(p) for p in stat.get("procedures") or []]
    token_count = int(stat.get("token_count", 0))
    return {
        "SessionId": session_id,
        "RequestId": record.request_id,
        "RecordId": str(record.id),
        "UsedCount": token_count,
        "FreeCount": 0,
        "OrderCount": 0,
        "StatusSummary": status,
        "StatusSummaryTitle": procedures[-1]["Title"] if procedures else "",
        "Elapsed": int(stat.get("elapsed", 0)),
        "TokenCount": token_count,
        "Procedures": procedures,
        "TraceId": str(record.id),
    }


def _procedure(p: dict[str, Any]) -> dict[str, Any]:
    input_tokens = int(p.get("input_tokens", 0))
    output_tokens = int(p.get("output_tokens", 0))
    name = p.get("name", "")
    return {
        "Name": name,
        "Title": PROCEDURE_TITLES.get(name, name),
        "Status": _WIRE_STATUS.get(p.get("status", ""), p.get("status", "")),
        "Count": input_tokens + output_tokens,
        "InputCount": input_tokens,
        "OutputCount": output_tokens,
        "ResourceStatus": 1,
        "Debugging": {"Content": "", "System": "", "Histories": [], "Knowledge": [], "CustomVariables": [], "Agent": {}},
    }


def _agent_thought(record: RecordRow, session_id: str) -> dict[str, Any]:
    stat = record.token_stat or {}
    elapsed = int(stat.get("elapsed", 0))
    return {
        "SessionId": session_id,
        "RequestId": record.request_id,
        "RecordId": str(record.id),
        "Elapsed": elapsed,
        "IsWorkflow": False,
        "WorkflowName": "",
        "TraceId": str(record.id),
        "Files": [],
        "Procedures": [
            {
                "Index": 0,
                "Name": "thought",
                "Title": THOUGHT_TITLE,
                "Status": "success",
                "Icon": "",
                "Switch": "main",
                "WorkflowName": "",
                "NodeName": "",
                "ReplyIndex": 0,
                "Elapsed": elapsed,
                "StartTime": str(record.created_at // 1000),
                "Debugging": {"Content": record.reasoning, "DisplayContent": record.reasoning},
            }
        ],
    }
