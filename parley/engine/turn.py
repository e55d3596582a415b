"""One turn: a visitor's message to an application in a session, answered by one record.

The engine admits the turn and records the question (engine.py); `TurnRunner` then runs
the rest as a task of its own, so the answer is finished and recorded whether or not
anyone is still listening:

  generate  stream the model: reasoning becomes thought events, text reply deltas;
  finalize  record the answer with its token statistics, then emit the final event.

Stages for moderation, knowledge and workflows slot in between admission and generation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from parley.bus.base import Bus
from parley.config import ModelConfig
from parley.engine.apps import AppConfig
from parley.engine.errors import ErrorKind
from parley.engine.events import (
    Failure,
    Final,
    Procedure,
    Progress,
    ReplyDelta,
    ReplyMethod,
    ThoughtDelta,
    ThoughtEnd,
)
from parley.engine.prompt import build_messages, estimate_tokens
from parley.models.base import ChatModel, ModelError, Usage
from parley.store.conversations import ConversationRepository, RecordRow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnRequest:
    """What a face asks of the engine, already validated for its protocol."""

    app_key: str
    visitor_id: str
    session_id: str
    content: str
    request_id: str = ""
    model_name: str | None = None
    system_role: str | None = None
    custom_variables: dict[str, str] = field(default_factory=dict)
    file_infos: list[dict[str, Any]] = field(default_factory=list)
    visitor_labels: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class TurnInfo:
    """What stays the same for every event of a turn; faces render it into each packet."""

    turn_id: int
    """The turn's stream id, which is also the answer's record id."""
    app_id: int
    app_name: str
    app_avatar: str
    session_id: str
    request_id: str
    question_record_id: int
    answer_record_id: int
    model: str
    timestamp: int
    streaming_enabled: bool
    streaming_throttle: int


@dataclass(slots=True)
class TurnPlan:
    """Everything the runner needs, settled at admission."""

    info: TurnInfo
    app: AppConfig
    session_pk: int
    model: ChatModel
    model_config: ModelConfig
    system_role: str
    question: str
    history: list[RecordRow]
    started: float  # time.monotonic() at admission


class TurnRunner:
    def __init__(self, plan: TurnPlan, bus: Bus, conversations: ConversationRepository) -> None:
        self.plan = plan
        self._bus = bus
        self._conversations = conversations
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._usage: Usage | None = None

    def _elapsed(self) -> int:
        return int((time.monotonic() - self.plan.started) * 1000)

    def _emit(self, event: Any) -> None:
        self._bus.publish(self.plan.info.turn_id, event)

    async def run(self) -> None:
        plan = self.plan
        model_name = plan.info.model
        self._emit(Progress("processing", (Procedure("large_language_model", "processing", model=model_name),), self._elapsed()))
        try:
            await self._generate()
        except asyncio.CancelledError:
            await self._finish("stopped")
        except ModelError as exc:
            kind = ErrorKind.MODEL_TIMEOUT if exc.kind == "timeout" else ErrorKind.MODEL_FAILED
            await self._fail(kind, exc.message)
        except TimeoutError:
            await self._fail(ErrorKind.MODEL_TIMEOUT, f"model {model_name} sent nothing in time")
        except Exception as exc:  # an engine bug must still end the turn cleanly
            log.exception("turn %s failed", plan.info.turn_id)
            await self._fail(ErrorKind.INTERNAL, f"internal error: {type(exc).__name__}")
        else:
            await self._finish("success")
        finally:
            self._bus.end(plan.info.turn_id)

    async def _generate(self) -> None:
        plan = self.plan
        config = plan.model_config
        reserve = config.max_output_tokens or min(1024, config.context_window // 4)
        messages = build_messages(
            plan.system_role,
            plan.history,
            plan.question,
            depth=plan.app.history_depth,
            context_window=config.context_window,
            reserve_for_answer=reserve,
        )
        loop = asyncio.get_running_loop()
        thinking = False
        stream = plan.model.stream(messages)
        try:
            async with asyncio.timeout(config.first_token_timeout) as deadline:
                async for chunk in stream:
                    deadline.reschedule(loop.time() + config.idle_timeout)
                    if chunk.reasoning:
                        thinking = True
                        self._reasoning.append(chunk.reasoning)
                        self._emit(ThoughtDelta(chunk.reasoning, self._elapsed()))
                    if chunk.text:
                        if thinking:
                            thinking = False
                            self._emit(ThoughtEnd(self._elapsed()))
                        self._text.append(chunk.text)
                        self._emit(ReplyDelta(chunk.text))
                    if chunk.usage is not None:
                        self._usage = chunk.usage
        finally:
            await stream.aclose()  # reaches the upstream call at once when the turn stops
            if thinking:
                self._emit(ThoughtEnd(self._elapsed()))
        if self._usage is None:
            self._usage = Usage(sum(estimate_tokens(m.content) for m in messages), estimate_tokens("".join(self._text)))

    def _procedures(self, status: str) -> tuple[Procedure, ...]:
        usage = self._usage or Usage(0, 0)
        return (
            Procedure(
                "large_language_model", status, usage.input_tokens, usage.output_tokens,
                self.plan.info.model, self._elapsed(),
            ),
        )

    def _record(self, status: str, **fields: Any) -> RecordRow:
        plan = self.plan
        info = plan.info
        procedures = self._procedures(status)
        return RecordRow(
            id=info.answer_record_id,
            session_pk=plan.session_pk,
            app_id=info.app_id,
            is_from_self=False,
            content="".join(self._text),
            reasoning="".join(self._reasoning),
            status=status,
            created_at=info.timestamp * 1000,
            finished_at=int(time.time() * 1000),
            request_id=info.request_id,
            related_record_id=info.question_record_id,
            reply_method=ReplyMethod.LLM,
            model=info.model,
            is_llm_generated=True,
            token_stat=token_stat_record(procedures, self._elapsed()),
            **fields,
        )

    async def _finish(self, status: str) -> None:
        record = self._record(status)
        await self._conversations.add_record(record)
        wire_status = "success" if status == "success" else "stop"
        self._emit(Progress(wire_status, self._procedures(wire_status), self._elapsed()))
        self._emit(
            Final(
                content=record.content,
                reply_method=record.reply_method,
                timestamp=int(time.time()),
                is_llm_generated=True,
                status=wire_status,
            )
        )

    async def _fail(self, kind: ErrorKind, message: str) -> None:
        record = self._record("failed", error_code=None, error_message=f"{kind.value}: {message}"[:1024])
        try:
            await self._conversations.add_record(record)
        except Exception:
            log.exception("could not record failed turn %s", record.id)
        self._emit(Progress("failed", self._procedures("failed"), self._elapsed()))
        self._emit(Failure(kind.value, message))


def token_stat_record(procedures: tuple[Procedure, ...], elapsed_ms: int) -> dict[str, Any]:
    """Token statistics as stored with a record (and shown by history calls)."""
    return {
        "elapsed": elapsed_ms,
        "token_count": sum(p.input_tokens + p.output_tokens for p in procedures),
        "procedures": [
            {
                "name": p.name,
                "status": p.status,
                "model": p.model,
                "input_tokens": p.input_tokens,
                "output_tokens": p.output_tokens,
                "elapsed": p.elapsed_ms,
            }
            for p in procedures
        ],
    }
