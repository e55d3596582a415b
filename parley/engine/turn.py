"""One turn: a visitor's message to an application in a session, answered by one record.

The engine admits the turn and records the question (engine.py); `TurnRunner` then runs
the rest as a task of its own, so the answer is finished and recorded whether or not
anyone is still listening:

  generate  stream the model: reasoning becomes thought events, text reply deltas, both
            checked for sensitive words as they grow (a hit stops the model and the answer
            becomes the refusal);
  finalize  record the answer with its token statistics, then emit the final event.

Admission may instead settle a direct reply (a refusal, a busy reply), which is recorded
and sent without calling the model. Knowledge and workflows slot in the same way.
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
from parley.engine.moderation import AnswerGuard, Hit
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


@dataclass(slots=True, frozen=True)
class DirectReply:
    """An answer settled without the model."""

    content: str
    reply_method: int
    is_evil: bool = False
    extra: dict[str, Any] | None = None


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
    direct: DirectReply | None = None
    answer_guard: AnswerGuard | None = None
    thought_guard: AnswerGuard | None = None


class TurnRunner:
    def __init__(self, plan: TurnPlan, bus: Bus, conversations: ConversationRepository) -> None:
        self.plan = plan
        self._bus = bus
        self._conversations = conversations
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._usage: Usage | None = None
        self._hit: Hit | None = None
        self._sent_before_hit = ""

    def _elapsed(self) -> int:
        return int((time.monotonic() - self.plan.started) * 1000)

    def _emit(self, event: Any) -> None:
        self._bus.publish(self.plan.info.turn_id, event)

    async def run(self) -> None:
        plan = self.plan
        model_name = plan.info.model
        if plan.direct is not None:
            try:
                await self._reply_directly(plan.direct)
            finally:
                self._bus.end(plan.info.turn_id)
            return
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
            if self._hit is not None:
                await self._refuse_answer(self._hit)
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
        answer_guard, thought_guard = plan.answer_guard, plan.thought_guard
        try:
            async with asyncio.timeout(config.first_token_timeout) as deadline:
                async for chunk in stream:
                    deadline.reschedule(loop.time() + config.idle_timeout)
                    if chunk.reasoning:
                        thinking = True
                        if not self._think(chunk.reasoning, thought_guard):
                            break
                    if chunk.text:
                        if thinking:
                            thinking = False
                            self._think(thought_guard.flush() if thought_guard else "", None)
                            self._emit(ThoughtEnd(self._elapsed()))
                        if not self._say(chunk.text, answer_guard):
                            break
                    if chunk.usage is not None:
                        self._usage = chunk.usage
                else:  # the answer ended without a hit: release what the guards held back
                    if thought_guard is not None and thinking:
                        self._think(thought_guard.flush(), None)
                    if answer_guard is not None:
                        self._say(answer_guard.flush(), None)
        finally:
            await stream.aclose()  # reaches the upstream call at once when the turn stops
            if thinking:
                self._emit(ThoughtEnd(self._elapsed()))
        if self._usage is None:
            self._usage = Usage(sum(estimate_tokens(m.content) for m in messages), estimate_tokens("".join(self._text)))

    def _say(self, text: str, guard: AnswerGuard | None) -> bool:
        """Sends answer text that passed the guard; False when it hit a sensitive word."""
        if guard is not None:
            text, hit = guard.feed(text)
            if hit is not None:
                self._hit, self._sent_before_hit = hit, "".join(self._text)
                return False
        if text:
            self._text.append(text)
            self._emit(ReplyDelta(text))
        return True

    def _think(self, text: str, guard: AnswerGuard | None) -> bool:
        if guard is not None:
            text, hit = guard.feed(text)
            if hit is not None:
                self._hit, self._sent_before_hit = hit, "".join(self._reasoning)
                return False
        if text:
            self._reasoning.append(text)
            self._emit(ThoughtDelta(text, self._elapsed()))
        return True

    def _procedures(self, status: str) -> tuple[Procedure, ...]:
        usage = self._usage or Usage(0, 0)
        return (
            Procedure(
                "large_language_model", status, usage.input_tokens, usage.output_tokens,
                self.plan.info.model, self._elapsed(),
            ),
        )

    def _record(self, status: str, procedures: tuple[Procedure, ...] | None = None, **fields: Any) -> RecordRow:
        plan = self.plan
        info = plan.info
        if procedures is None:
            procedures = self._procedures(status)
        values: dict[str, Any] = {
            "content": "".join(self._text),
            "reasoning": "".join(self._reasoning),
            "reply_method": ReplyMethod.LLM,
            "model": info.model,
            "is_llm_generated": True,
            **fields,
        }
        return RecordRow(
            id=info.answer_record_id,
            session_pk=plan.session_pk,
            app_id=info.app_id,
            is_from_self=False,
            status=status,
            created_at=info.timestamp * 1000,
            finished_at=int(time.time() * 1000),
            request_id=info.request_id,
            related_record_id=info.question_record_id,
            token_stat=token_stat_record(procedures, self._elapsed()),
            **values,
        )

    async def _reply_directly(self, direct: DirectReply) -> None:
        """Records and sends an answer settled at admission; the model is not called."""
        record = self._record(
            "success", (), content=direct.content, reasoning="", reply_method=direct.reply_method,
            model="", is_llm_generated=False, is_evil=direct.is_evil, extra=direct.extra,
        )
        await self._conversations.add_record(record)
        self._emit(Progress("success", (), self._elapsed()))
        self._emit(Final(direct.content, direct.reply_method, int(time.time()), False, is_evil=direct.is_evil))

    async def _refuse_answer(self, hit: Hit) -> None:
        """The answer hit a sensitive word: the model was stopped; the refusal replaces it."""
        refusal = self.plan.app.refusal_reply
        moderation = {"word": hit.word, "source": hit.source, "where": "answer", "sent_before": self._sent_before_hit}
        record = self._record(
            "success", content=refusal, reply_method=ReplyMethod.SENSITIVE, is_llm_generated=False,
            is_evil=True, extra={"moderation": moderation},
        )
        await self._conversations.add_record(record)
        self._emit(Progress("success", self._procedures("success"), self._elapsed()))
        self._emit(Final(refusal, ReplyMethod.SENSITIVE, int(time.time()), False, is_evil=True))

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
        record = self._record("failed", error_message=f"{kind.value}: {message}"[:1024])
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
