"""Engine events to CloudBase stream chunks: `data: {json}` frames, `: heartbeat`, `data: [DONE]`.

Every chunk carries the documented fields: `created` (seconds), `record_id` (the answer's
record id, which feedback names), `model`, `version`, `type` (`thinking` for reasoning,
`text` for the answer), `role`, `content` and `reasoning_content` as deltas,
`finish_reason` (`continue`, then `stop` on the last chunk, or `content_filter` with `type:
"finish"` when the answer was replaced by the refusal for sensitive content), `usage` and
`knowledge_base`.
`usage` follows the documented contract: `promptTokens` is the same in every chunk (the
prompt's size as the engine reported it before the first chunk: its estimate, or the
model's count if it came first) and `completionTokens` never goes down: each chunk reports
the larger of the running estimate of the text so far and the model's own count (when the
engine reports one, mid-stream or at the end). A failure is a
chunk with `finish_reason: "error"` and `error: {code, message}`; `[DONE]` always ends the
stream. When the answer draws on the knowledge base, a `type: "knowledge"` chunk comes
first (sent once the prompt's size is known, so that it too carries the stream's
`promptTokens`), and from then on `knowledge_base` names the sources (document names, or
the matched question of a Q&A pair).
"""

from __future__ import annotations

from typing import Any

import orjson

from parley.engine.events import Failure, Final, Progress, References, ReplyDelta, ThoughtDelta
from parley.faces.cloudbase.errors import turn_code, turn_message

HEARTBEAT = b": heartbeat\n\n"
DONE = b"data: [DONE]\n\n"
WEB_TYPE = 4
"""The reference type of an online search result (the engine numbers them as ADP does)."""


def data_frame(payload: dict[str, Any]) -> bytes:
    """One event: a single `data:` line (orjson never writes a newline) and a blank line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class TokenEstimate:
    """A running token estimate of streamed text: CJK characters one each, other text one per 4."""

    __slots__ = ("_wide", "_narrow")

    def __init__(self) -> None:
        self._wide = 0
        self._narrow = 0

    def add(self, text: str) -> None:
        wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
        self._wide += wide
        self._narrow += len(text) - wide

    @property
    def tokens(self) -> int:
        return self._wide + (self._narrow + 3) // 4


class ChunkRenderer:
    """Renders one answer's stream. `render` returns b"" for events with nothing to send."""

    def __init__(self, record_id: str, model: str, version: str, created: int) -> None:
        self.finished = False
        self._common = {"created": created, "record_id": record_id, "model": model, "version": version}
        self._prompt_tokens = 0
        self._prompt_fixed = False  # once a chunk carried it, promptTokens stays as it was
        self._completion = TokenEstimate()
        self._reported_completion = 0  # the engine's count of the answer's tokens, when it gives one
        self._completion_sent = 0
        self._text = ""
        self._sources: list[str] = []
        self._knowledge = "none"  # "due" once references came, "sent" once announced

    def render(self, event: Any) -> bytes:
        if isinstance(event, ReplyDelta):
            return self.text(event)
        if isinstance(event, ThoughtDelta):
            return self.thinking(event.text)
        if isinstance(event, Progress):
            return self.progress(event)
        if isinstance(event, References):
            return self.search(event.items) + self.knowledge(event.items)
        if isinstance(event, Final):
            return self.final(event.plain_text(), filtered=event.is_evil)
        if isinstance(event, Failure):
            return self.error(turn_code(event.kind), turn_message(event.kind, event.message))
        return b""  # UserEcho: CloudBase echoes nothing

    def progress(self, event: Progress) -> bytes:
        """Takes the token counts the engine reports, and sends a knowledge chunk that waited for them."""
        prompt = sum(p.input_tokens for p in event.procedures)
        completion = sum(p.output_tokens for p in event.procedures)
        if prompt and not self._prompt_fixed:
            self._prompt_tokens = prompt
        self._reported_completion = max(self._reported_completion, completion)
        return self._due_knowledge() if prompt else b""

    def text(self, delta: str) -> bytes:
        if not delta:
            return b""
        self._text += delta
        self._completion.add(delta)
        return self._chunk("text", delta, "", "continue")

    def knowledge(self, references: tuple[dict[str, Any], ...]) -> bytes:
        """Notes the knowledge the answer draws on; it is announced once per turn, by the
        next chunk that goes out (normally when the engine reports the prompt's size)."""
        if self._knowledge != "none":
            return b""
        names = [r.get("doc_name") or r.get("name") or "" for r in references if r.get("type") != WEB_TYPE]
        if not names:
            return b""
        self._sources = list(dict.fromkeys(n for n in names if n))
        self._knowledge = "due"
        return b""

    def search(self, references: tuple[dict[str, Any], ...]) -> bytes:
        """A `search` chunk with the web results among the references (type 4), numbered as
        the answer cites them."""
        results = [
            {"index": f"[{r.get('id', '')}]", "title": r.get("name") or "", "url": r.get("url") or ""}
            for r in references if r.get("type") == WEB_TYPE
        ]
        if not results:
            return b""
        return self._chunk("search", "", "", "continue", search_info={"search_results": results})

    def _due_knowledge(self) -> bytes:
        if self._knowledge != "due":
            return b""
        self._knowledge = "sent"
        return self._chunk("knowledge", "", "", "continue")

    def thinking(self, delta: str) -> bytes:
        if not delta:
            return b""
        self._completion.add(delta)
        return self._chunk("thinking", "", delta, "continue")

    def final(self, content: str = "", filtered: bool = False) -> bytes:
        """The rest of the answer (when the engine's final text holds more than was streamed) and the last chunk.

        An answer replaced by the refusal for sensitive content ends with `finish_reason:
        "content_filter"` instead of `stop`, so clients can drop what was streamed before.
        """
        out = b""
        if content and content != self._text:
            rest = content[len(self._text):] if content.startswith(self._text) else content
            out = self.text(rest)
        self.finished = True
        if filtered:
            return out + self._chunk("finish", "", "", "content_filter")
        return out + self._chunk("text", "", "", "stop")

    def error(self, code: str, message: str) -> bytes:
        self.finished = True
        return self._chunk("finish", "", "", "error", error={"code": code, "message": message})

    def _usage(self) -> dict[str, int]:
        """The usage of the stream so far: promptTokens fixed by the first chunk,
        completionTokens never lower than in an earlier chunk."""
        self._prompt_fixed = True
        completion = max(self._completion_sent, self._completion.tokens, self._reported_completion)
        self._completion_sent = completion
        prompt = self._prompt_tokens
        return {"promptTokens": prompt, "completionTokens": completion, "totalTokens": prompt + completion}

    def _chunk(self, kind: str, content: str, reasoning: str, finish: str, **extra: Any) -> bytes:
        due = self._due_knowledge() if kind != "knowledge" else b""
        return due + data_frame(
            {
                **self._common,
                "type": kind,
                "role": "assistant",
                "content": content,
                "reasoning_content": reasoning,
                "finish_reason": finish,
                "usage": self._usage(),
                "knowledge_base": self._sources,
                **extra,
            }
        )
