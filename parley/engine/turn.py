"""One turn: a visitor's message to an application in a session, answered by one record.

The engine admits the turn and queues the question's record (engine.py); `TurnRunner`
then runs the rest as a task of its own, so the answer is finished and recorded whether or
not anyone is still listening:

  acknowledge  once the question's write commits, emit the echo, then the events the answer
            produced meanwhile, in order (the model call does not wait for the write); a
            write that fails stops the answer, which ends with an error and no echo;
  generate  stream the model: reasoning becomes thought events, text reply deltas, both
            checked for sensitive words as they grow (a hit stops the model and the answer
            becomes the refusal); the answer's record is checkpointed as it grows;
  finalize  record the answer with its token statistics, then emit the final event.

Admission may instead settle a direct reply (a refusal, a busy reply), which is recorded
and sent without calling the model. Knowledge and workflows slot in the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from parley.bus.base import Bus
from parley.config import ModelConfig
from parley.engine.apps import AppConfig
from parley.engine.errors import ErrorKind
from parley.engine.events import (
    Event,
    Failure,
    Final,
    Procedure,
    Progress,
    References,
    ReplyMethod,
    ThoughtDelta,
    ThoughtEnd,
    UserEcho,
    WorkflowStatus,
    WorkflowStep,
)
from parley.engine.citations import CitationMarks
from parley.engine.faces import Face
from parley.engine.moderation import AnswerGuard, Hit
from parley.engine.sources import ImageSource, KnowledgeSource, SearchSource
from parley.engine.prompt import build_messages, documents_material, estimate_tokens
from parley.models.base import ChatMessage, ChatModel, ImagePart, ModelError, Usage
from parley.store.conversations import IN_PROGRESS, ConversationRepository, RecordRow
from parley.store.database import is_busy
from parley.workflow.events import (
    NODE_FAILED,
    NODE_RUNNING,
    NODE_SUCCEEDED,
    NodeProgress,
    NodeRecord,
    WorkflowFailed,
    WorkflowFinished,
    WorkflowMessage,
    WorkflowSuspended,
)

if TYPE_CHECKING:
    from parley.engine.workflows import WorkflowTurn

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnRequest:
    """What a face asks of the engine, already validated for its protocol."""

    app_key: str
    visitor_id: str
    session_id: str
    face: Face
    """The face the session belongs to: session ids are unique only within a face."""
    content: str
    request_id: str = ""
    model_name: str | None = None
    system_role: str | None = None
    custom_variables: dict[str, str] = field(default_factory=dict)
    file_infos: list[dict[str, Any]] = field(default_factory=list)
    visitor_labels: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    """(question, answer) pairs the client sent along; when given, the model sees them instead of the stored history."""
    workflow_enabled: bool = True
    """False (ADP `workflow_status: disable`): the application's workflow is skipped for this question."""
    search: bool | None = None
    """Online search for this turn: on, off, or None to follow the application's setting."""


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
    references: tuple[dict[str, Any], ...] = ()
    knowledge: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True, frozen=True)
class SearchRequest:
    """Online search for one turn: which engine (None: the server's default), how many results."""

    provider: str | None
    count: int


@dataclass(slots=True, frozen=True)
class CheckpointPolicy:
    """When an answer in progress is saved: once `chars` characters (text and reasoning) have
    grown since the last save, or `interval` seconds have passed with some growth. At most
    one save per turn is in flight; saves go through the group commit with other writes."""

    interval: float = 1.0
    chars: int = 2048


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
    client_history: list[tuple[str, str]] = field(default_factory=list)
    documents: list[tuple[str, str]] = field(default_factory=list)
    """Real-time documents attached to the question: (file name, parsed text)."""
    knowledge: KnowledgeSource | None = None
    knowledge_scope: Any = None
    question_stored: asyncio.Future[None] | None = None
    """Done once the question's record is committed; the echo goes out and the answer is
    recorded only after it."""
    echo: UserEcho | None = None
    """The question's echo, emitted once it is stored."""
    checkpoints: CheckpointPolicy | None = None
    """How often the answer in progress is saved; None: only when it ends."""
    workflow: WorkflowTurn | None = None
    """The application's workflow answers this question (a new run, or the session's paused one)."""
    search: SearchRequest | None = None
    """Online search for this turn; None: no search."""
    search_source: SearchSource | None = None
    images: list[str] = field(default_factory=list)
    """URLs of the question's images the model reads (it has `vision`)."""
    unseen_images: int = 0
    """Images of the question the model cannot read: it answers from the text and says so."""
    image_source: ImageSource | None = None


class TurnRunner:
    def __init__(self, plan: TurnPlan, bus: Bus, conversations: ConversationRepository) -> None:
        self.plan = plan
        self._bus = bus
        self._conversations = conversations
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._usage: Usage | None = None
        self._hit: Hit | None = None
        self._input_estimate = 0
        self._sent_before_hit = ""
        self._resolution: Any = None  # what the knowledge base said, once asked
        self._references: tuple[dict[str, Any], ...] = ()
        self._knowledge_hits: tuple[dict[str, Any], ...] = ()
        self._marks: CitationMarks | None = None
        self._search: Any = None  # the search outcome, once searched
        self._searching = False
        self._image_parts: tuple[ImagePart, ...] = ()
        self._image_status: tuple[str, int, str] | None = None  # (status, elapsed ms, detail) once looked at
        # Until the question is stored, events wait here; None once it is (and the echo went out).
        self._held: list[Event] | None = []
        self._question_error: BaseException | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancellable = False  # a lost question may cancel the task: it is still answering
        self._ended = False
        # Checkpoints: characters of text and reasoning so far, and as of the last save.
        self._size = 0
        self._saved_size = 0
        self._saved_at = plan.started
        self._saving: asyncio.Future[None] | None = None
        # A workflow's answer: its final work_flow object, model usage and reply method.
        self._work_flow: dict[str, Any] | None = None
        self._workflow_usage: tuple[Procedure, ...] = ()
        self._workflow_method = ReplyMethod.WORKFLOW

    @property
    def reply_method(self) -> int:
        """How the answer came about: a workflow (16), an attached document (14), images the model
        read (13), online search results (11), else the model alone (1)."""
        if self.plan.workflow is not None:
            return self._workflow_method
        if self.plan.documents:
            return ReplyMethod.REALTIME_DOCUMENT
        if self._image_parts:
            return ReplyMethod.IMAGE_UNDERSTANDING
        if self._search is not None and self._search.results:
            return ReplyMethod.SEARCH_ENGINE
        return ReplyMethod.LLM

    def _elapsed(self) -> int:
        return int((time.monotonic() - self.plan.started) * 1000)

    def _emit(self, event: Any) -> None:
        held = self._held
        if held is None:
            self._bus.publish(self.plan.info.turn_id, event)
        elif self._question_error is None:
            held.append(event)
        # else the question was lost: the turn ends with one error event (see run)

    def _question_settled(self, stored: asyncio.Future[None]) -> None:
        """The question's write is over: acknowledge it, or stop the answer."""
        if self._ended:
            return
        error = QuestionNotStored("cancelled") if stored.cancelled() else stored.exception()
        if error is None:
            self._acknowledge()
            return
        self._question_error = error
        log.warning("turn %s: the question could not be stored: %s", self.plan.info.turn_id, error)
        if self._cancellable and self._task is not None:
            self._task.cancel()

    def _acknowledge(self) -> None:
        """Emits the echo, then what the answer produced while the question was being written."""
        held, self._held = self._held, None
        if held is None:
            return
        publish, turn_id = self._bus.publish, self.plan.info.turn_id
        if self.plan.echo is not None:
            publish(turn_id, self.plan.echo)
        for event in held:
            publish(turn_id, event)

    async def run(self) -> None:
        plan = self.plan
        self._task = asyncio.current_task()
        stored = plan.question_stored
        if stored is None:
            self._acknowledge()
        else:
            stored.add_done_callback(self._question_settled)
        try:
            await self._answer()
        finally:
            if self._held is not None and stored is not None and stored.done():
                self._question_settled(stored)  # its callback may not have run yet
            self._ended = True
            if self._held is not None:  # lost, or still being written as the turn ends: no echo
                self._bus.publish(plan.info.turn_id, store_failure(self._question_error, "the question"))
            self._bus.end(plan.info.turn_id)

    async def _answer(self) -> None:
        plan = self.plan
        try:
            self._cancellable = True
            try:
                if plan.workflow is not None and plan.direct is None:
                    direct = None
                    await self._run_workflow(plan.workflow)
                else:
                    direct = plan.direct or await self._gather_sources()
                    if direct is None:
                        if plan.images and not await self._read_images():
                            return
                        await self._generate()
            finally:
                self._cancellable = False
        except asyncio.CancelledError:
            if self._question_error is not None:
                return  # the question was lost: nothing is recorded
            try:
                await self._finish("stopped")
            except Exception as exc:
                if self._question_error is None:
                    log.exception("could not record stopped turn %s", plan.info.turn_id)
                    self._emit(store_failure(exc, "the answer"))
            return
        except ModelError as exc:
            kind = ErrorKind.MODEL_TIMEOUT if exc.kind == "timeout" else ErrorKind.MODEL_FAILED
            await self._fail(kind, exc.message)
            return
        except TimeoutError:
            await self._fail(ErrorKind.MODEL_TIMEOUT, f"model {plan.info.model} sent nothing in time")
            return
        except WorkflowFailure as exc:
            await self._fail(ErrorKind.WORKFLOW_FAILED, str(exc))
            return
        except Exception as exc:  # an engine bug must still end the turn cleanly
            log.exception("turn %s failed", plan.info.turn_id)
            await self._fail(ErrorKind.INTERNAL, f"internal error: {type(exc).__name__}")
            return
        # Outside the handlers above: a stop arriving while the answer is being recorded
        # must not record it a second time.
        try:
            if direct is not None:
                await self._reply_directly(direct)
            elif self._hit is not None:
                await self._refuse_answer(self._hit)
            elif plan.workflow is not None:
                await self._finish_workflow()
            else:
                await self._finish("success")
        except Exception as exc:  # the store failed: the visitor is told, not left waiting
            if self._question_error is None:
                log.exception("could not record turn %s", plan.info.turn_id)
                self._emit(store_failure(exc, "the answer"))

    async def _consult_knowledge(self) -> DirectReply | None:
        """Asks the knowledge base. A Q&A hit or "nothing, say so" settles the answer; passages
        go to the model with instructions to cite them, announced by a reference event."""
        plan = self.plan
        if plan.knowledge is None:
            return None
        if not await plan.knowledge.has_knowledge(plan.info.app_id):
            if plan.app.knowledge.unknown_when_nothing:
                return DirectReply(plan.app.unknown_reply, ReplyMethod.UNKNOWN_QUESTION)
            return None
        self._emit(Progress("processing", (Procedure("knowledge", "processing"),), self._elapsed()))
        resolution = self._resolution = await plan.knowledge.resolve(
            plan.info.app_id, plan.question, plan.knowledge_scope, plan.app.knowledge
        )
        self._references = tuple(resolution.references())
        self._knowledge_hits = tuple(resolution.knowledge())
        if resolution.kind == "qa":
            return DirectReply(resolution.qa.answer, ReplyMethod.QA_PAIR)
        if resolution.kind == "nothing":
            return DirectReply(plan.app.unknown_reply, ReplyMethod.UNKNOWN_QUESTION) if resolution.unknown else None
        return None

    async def _run_workflow(self, workflow: WorkflowTurn) -> None:
        """Streams the run: node progress as work_flow events and steps, message nodes' text and
        the reply as the answer's text, each node's model usage as a procedure. Whatever reaches
        the visitor passes the sensitive-word check as a model's answer does: a hit stops the run
        and the refusal replaces the answer. The run is saved (paused, ended or stopped) with
        this answer's record."""
        plan = self.plan
        state = workflow.state
        state.values["sys"]["history"] = [
            {"role": "user" if r.is_from_self else "assistant", "content": r.content} for r in plan.history
        ]
        state.values["sys"]["turn"] = sum(1 for r in plan.history if r.is_from_self)
        self._workflow_usage = (Procedure("workflow", "processing"),)
        self._emit(Progress("processing", self._workflow_usage, self._elapsed()))
        failed: WorkflowFailed | None = None
        option_cards: list[str] = []
        outputs: dict[str, Any] = {}
        last_record = None
        first = len(state.records)  # a resumed run's earlier records were another turn's
        stream = workflow.runner.stream(workflow.definition, state)
        try:
            async for event in stream:
                if isinstance(event, NodeProgress):
                    record = event.record
                    if not self._workflow_passes(record.node_id, *_shown_texts(record)):
                        break
                    last_record = record
                    self._emit(WorkflowStatus(workflow.work_flow(record)))
                    self._emit(_workflow_step(workflow.definition.name, record, self._elapsed()))
                    if record.status == NODE_SUCCEEDED and record.statistics:
                        self._workflow_usage = _workflow_procedures(state.records[first:], "processing", self._elapsed())
                        self._emit(Progress("processing", self._workflow_usage, self._elapsed()))
                elif isinstance(event, WorkflowMessage):
                    if not self._workflow_says(event.node_id, event.text):
                        break
                elif isinstance(event, WorkflowSuspended):
                    option_cards = event.option_cards
                    if not self._workflow_says(event.node_id, event.reply, *option_cards):
                        break
                elif isinstance(event, WorkflowFinished):
                    outputs = event.outputs
                    if not self._workflow_says(None, event.reply, *(str(v) for v in outputs.values())):
                        break
                    if not event.reply:
                        self._workflow_method = ReplyMethod.WORKFLOW_OPERATION
                elif isinstance(event, WorkflowFailed):
                    failed = event
        except BaseException as exc:
            await stream.aclose()
            await self._end_run(workflow, exc)
            raise
        finally:
            await stream.aclose()  # a run stopped by a hit (or the turn's stop) stops its task at once
            self._workflow_usage = _workflow_procedures(state.records[first:], "failed" if failed else "success", self._elapsed())
        if self._hit is not None:
            state.status, state.error = "failed", f"stopped: a sensitive word ({self._hit.source} list) in what it sent"
        self._work_flow = workflow.work_flow(last_record, option_cards, outputs)
        await self._store_run(workflow)
        if failed is not None and self._hit is None:
            raise WorkflowFailure(failed.message)

    async def _end_run(self, workflow: WorkflowTurn, exc: BaseException) -> None:
        """The turn stopped (the visitor's stop) or broke mid-run: the run ends here and is
        stored so, which also releases a resumed run's claim; the session's next question then
        starts afresh instead of finding the run busy until the claim times out."""
        state = workflow.state
        if isinstance(exc, asyncio.CancelledError):
            state.status, state.error = "stopped", "stopped by the visitor"
        else:
            state.status, state.error = "failed", f"internal error: {type(exc).__name__}"
        try:
            await self._store_run(workflow)
        except Exception:
            log.exception("could not store the ended workflow run %s", state.run_id)

    def _workflow_passes(self, node_id: str | None, *texts: str) -> bool:
        """False (and the hit noted) when text a node shows the visitor holds a sensitive word."""
        guard = self.plan.answer_guard
        if guard is None:
            return True
        for text in texts:
            hit = guard.check(text)
            if hit is not None:
                self._hit, self._sent_before_hit = hit, "".join(self._text)
                workflow = self.plan.workflow
                if node_id is not None and workflow is not None:
                    workflow.state.failed_node = node_id
                return False
        return True

    def _workflow_says(self, node_id: str | None, text: str, *more: str) -> bool:
        """Sends a piece of the workflow's text after the sensitive-word check (`more`: other
        text shown with it, such as option cards); False when it hit."""
        if not self._workflow_passes(node_id, text, *more):
            return False
        self._workflow_text(text)
        return True

    async def _store_run(self, workflow: WorkflowTurn) -> None:
        if self.plan.question_stored is not None:
            await self.plan.question_stored
        await workflow.save(self.plan.info.answer_record_id)

    def _workflow_text(self, text: str) -> None:
        if text:
            self._emit_text(("\n\n" if self._text else "") + text)

    async def _finish_workflow(self) -> None:
        procedures = self._procedures("success", model_called=False)
        record = self._record(
            "success", procedures, reply_method=self._workflow_method, is_llm_generated=False,
            extra={"work_flow": self._work_flow},
        )
        await self._store(record)
        self._emit(Progress("success", procedures, self._elapsed()))
        self._emit(Final(record.content, self._workflow_method, int(time.time()), False, work_flow=self._work_flow))

    async def _gather_sources(self) -> DirectReply | None:
        """Knowledge, then online search when it is on: both kinds of source in one numbered
        list, announced by one reference event. A Q&A hit settles the answer without search;
        the unknown-question reply stands only when search found nothing either."""
        direct = await self._consult_knowledge()
        if direct is not None and (self.plan.search is None or direct.reply_method != ReplyMethod.UNKNOWN_QUESTION):
            return direct
        # ADP places a marker at each quote_infos position for knowledge passages, but shows an
        # online source's [n] in the text itself (the seed's reference type 4: "the [3][4] in the
        # content field ... represent the index of the online retrieved source"): only the
        # knowledge passages' marks, numbered first, are taken out of the text.
        knowledge_sources = len(self._references)
        if self.plan.search is not None:
            await self._search_web()
            if self._search.results:
                direct = None
                self._references = (*self._references, *self._search.references())
            elif direct is not None:
                return direct
        if self._references:
            self._emit(References(self._references))
        if knowledge_sources:
            self._marks = CitationMarks(knowledge_sources)
        return None

    async def _search_web(self) -> None:
        """Asks the search engine; a failure, a timeout or no results leave the turn without
        search, and the search_engine procedure says which."""
        plan, request, source = self.plan, self.plan.search, self.plan.search_source
        assert request is not None and source is not None  # the engine plans no search without a source
        self._searching = True
        self._emit(Progress("processing", self._procedures("processing", model_called=False), self._elapsed()))
        first = len(self._references) + 1  # after the knowledge passages, if any
        outcome = await source.search(request.provider, plan.question, request.count)
        self._search = outcome.numbered(first)
        self._searching = False

    async def _read_images(self) -> bool:
        """Fetches the question's images for the model; False when one cannot be read (the turn
        then failed with 460025, recorded)."""
        plan = self.plan
        started = time.monotonic()
        self._image_status = ("processing", 0, "")
        self._emit(Progress("processing", self._procedures("processing", model_called=False), self._elapsed()))
        try:
            if plan.image_source is None:
                raise ValueError("this server does not fetch images")
            fetched = await plan.image_source.fetch_all(plan.info.app_id, plan.images)
        except ValueError as exc:
            self._image_status = ("failed", int((time.monotonic() - started) * 1000), str(exc))
            await self._fail(ErrorKind.IMAGE_FAILED, str(exc), model_called=False)
            return False
        self._image_parts = tuple(ImagePart(image.mime, image.data) for image in fetched)
        elapsed = int((time.monotonic() - started) * 1000)
        self._image_status = ("success", elapsed, f"images read: {len(fetched)}")
        return True

    async def _generate(self) -> None:
        plan = self.plan
        config = plan.model_config
        reserve = config.max_output_tokens or min(1024, config.context_window // 4)
        system_role = plan.system_role
        if self._resolution is not None and self._resolution.kind == "passages":
            system_role = f"{system_role}\n\n{self._resolution.instructions()}".strip()
        if self._search is not None and self._search.results:
            system_role = f"{system_role}\n\n{self._search.instructions()}".strip()
        if plan.unseen_images:
            system_role = f"{system_role}\n\n{UNSEEN_IMAGES}".strip()
        messages = build_messages(
            system_role,
            plan.history,
            plan.question,
            depth=plan.app.history_depth,
            context_window=config.context_window,
            reserve_for_answer=reserve,
            client_history=plan.client_history,
            material=documents_material(plan.documents),
        )
        if self._image_parts:  # the question is the last message
            messages[-1] = ChatMessage("user", messages[-1].content, self._image_parts)
        self._input_estimate = sum(estimate_tokens(m.content) for m in messages)
        self._emit(Progress("processing", self._procedures("processing"), self._elapsed()))
        loop = asyncio.get_running_loop()
        thinking = False
        stream = plan.model.stream(messages)
        answer_guard, thought_guard = plan.answer_guard, plan.thought_guard
        try:
            async with asyncio.timeout(config.first_token_timeout) as deadline:
                # Moving the deadline costs a timer, so it moves only after a quarter of the idle
                # timeout (at most a second): at least three quarters of it always lie ahead.
                move_every = min(1.0, config.idle_timeout / 4)
                moved_at = -move_every
                async for chunk in stream:
                    now = loop.time()
                    if now - moved_at >= move_every:
                        deadline.reschedule(now + config.idle_timeout)
                        moved_at = now
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
                else:  # the answer ended without a hit: release what was held back
                    if thought_guard is not None and thinking:
                        self._think(thought_guard.flush(), None)
                    self._say_rest(answer_guard)
        finally:
            await stream.aclose()  # reaches the upstream call at once when the turn stops
            if thinking:
                self._emit(ThoughtEnd(self._elapsed()))
        if self._usage is None:
            self._usage = Usage(self._input_estimate, estimate_tokens("".join(self._text)))

    def _say(self, text: str, guard: AnswerGuard | None) -> bool:
        """Sends answer text, citation marks taken out, that passed the guard; False when it
        hit a sensitive word."""
        if self._marks is not None:
            text = self._marks.feed(text)
        if guard is not None:
            text, hit = guard.feed(text)
            if hit is not None:
                self._hit, self._sent_before_hit = hit, "".join(self._text)
                return False
        self._emit_text(text)
        return True

    def _say_rest(self, guard: AnswerGuard | None) -> None:
        """Sends what the citation marks and the guard still hold when the answer ends."""
        rest = self._marks.flush() if self._marks is not None else ""
        if guard is not None:
            safe, hit = guard.feed(rest)
            if hit is not None:
                self._hit, self._sent_before_hit = hit, "".join(self._text)
                return
            rest = safe + guard.flush()
        self._emit_text(rest)

    def _emit_text(self, text: str) -> None:
        if text:
            self._text.append(text)
            self._emit(text)  # a reply delta is the text itself (events.ReplyDelta)
            self._grew(len(text))

    def _grew(self, size: int) -> None:
        """Saves the answer in progress when the checkpoint policy says it is due."""
        self._size += size
        policy = self.plan.checkpoints
        if policy is None or self._held is not None or self._saving is not None:
            return  # the question is not stored yet (nor the record in progress), or a save is in flight
        if self._size - self._saved_size < policy.chars and time.monotonic() - self._saved_at < policy.interval:
            return
        self._saved_size, self._saved_at = self._size, time.monotonic()
        self._saving = self._conversations.checkpoint(self._record(IN_PROGRESS, self._procedures("processing")))
        self._saving.add_done_callback(self._saved)

    def _saved(self, _: asyncio.Future[None]) -> None:
        self._saving = None  # a failed save is not retried: the next growth saves again

    def _think(self, text: str, guard: AnswerGuard | None) -> bool:
        if guard is not None:
            text, hit = guard.feed(text)
            if hit is not None:
                self._hit, self._sent_before_hit = hit, "".join(self._reasoning)
                return False
        if text:
            self._reasoning.append(text)
            self._emit(ThoughtDelta(text, self._elapsed()))
            self._grew(len(text))
        return True

    def _procedures(self, status: str, model_called: bool = True) -> tuple[Procedure, ...]:
        """The turn's procedures; while the model runs, its input is the prompt's estimate."""
        procedures: list[Procedure] = []
        resolution = self._resolution
        if resolution is not None:
            procedures.append(
                Procedure("knowledge", "success", resolution.input_tokens, resolution.output_tokens, "", resolution.elapsed_ms)
            )
        if self.plan.search is not None:
            search = self._search
            if search is None or self._searching:
                procedures.append(Procedure("search_engine", "processing"))
            else:
                procedures.append(
                    Procedure("search_engine", "failed" if search.error else "success", elapsed_ms=search.elapsed_ms, detail=search.note)
                )
        if self.plan.documents:
            procedures.append(Procedure("file", "success" if status == "processing" else status))
        procedures.extend(self._workflow_usage)
        if self._image_status is not None:
            image_status, elapsed, detail = self._image_status
            procedures.append(Procedure("image", image_status, elapsed_ms=elapsed, detail=detail))
        elif self.plan.unseen_images:
            procedures.append(
                Procedure("image", "failed", detail=f"{self.plan.info.model} does not read images: answered from the text alone")
            )
        if model_called:
            usage = self._usage or Usage(self._input_estimate, 0)
            procedures.append(
                Procedure(
                    "large_language_model", status, usage.input_tokens, usage.output_tokens,
                    self.plan.info.model, self._elapsed(),
                )
            )
        return tuple(procedures)

    def _knowledge_extra(self, extra: dict[str, Any] | None) -> dict[str, Any] | None:
        """The record's `extra` with the references and quote positions the history calls show."""
        if not self._references:
            return extra
        merged = dict(extra or {})
        merged["references"] = list(self._references)
        if self._marks is not None and self._marks.quotes:
            merged["quote_infos"] = list(self._marks.quotes)
        return merged

    def _record(self, status: str, procedures: tuple[Procedure, ...] | None = None, **fields: Any) -> RecordRow:
        plan = self.plan
        info = plan.info
        if procedures is None:
            procedures = self._procedures(status)
        values: dict[str, Any] = {
            "content": "".join(self._text),
            "reasoning": "".join(self._reasoning),
            "reply_method": self.reply_method,
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
            **{**values, "extra": self._knowledge_extra(values.get("extra"))},
        )

    async def _store(self, record: RecordRow) -> None:
        """Records the answer, after the question it answers is stored."""
        if self.plan.question_stored is not None:
            await self.plan.question_stored
        await self._conversations.add_record(record)

    async def _reply_directly(self, direct: DirectReply) -> None:
        """Records and sends an answer settled without the model."""
        procedures = self._procedures("success", model_called=False)
        record = self._record(
            "success", procedures, content=direct.content, reasoning="", reply_method=direct.reply_method,
            model="", is_llm_generated=False, is_evil=direct.is_evil, extra=direct.extra,
        )
        await self._store(record)
        if self._references:
            self._emit(References(self._references))
        self._emit(Progress("success", procedures, self._elapsed()))
        self._emit(
            Final(
                direct.content, direct.reply_method, int(time.time()), False,
                is_evil=direct.is_evil, knowledge=self._knowledge_hits,
            )
        )

    async def _refuse_answer(self, hit: Hit) -> None:
        """The answer hit a sensitive word: the model was stopped; the refusal replaces it."""
        refusal = self.plan.app.refusal_reply
        workflow = self.plan.workflow is not None
        where = "workflow" if workflow else "answer"
        moderation = {"word": hit.word, "source": hit.source, "where": where, "sent_before": self._sent_before_hit}
        procedures = self._procedures("success", model_called=not workflow)
        record = self._record(
            "success", procedures, content=refusal, reply_method=ReplyMethod.SENSITIVE, is_llm_generated=False,
            is_evil=True, extra={"moderation": moderation},
        )
        await self._store(record)
        self._emit(Progress("success", procedures, self._elapsed()))
        self._emit(Final(refusal, ReplyMethod.SENSITIVE, int(time.time()), False, is_evil=True))

    async def _finish(self, status: str) -> None:
        record = self._record(status)
        await self._store(record)
        wire_status = "success" if status == "success" else "stop"
        self._emit(Progress(wire_status, self._procedures(wire_status), self._elapsed()))
        self._emit(
            Final(
                content=record.content,
                reply_method=record.reply_method,
                timestamp=int(time.time()),
                is_llm_generated=True,
                status=wire_status,
                knowledge=self._knowledge_hits,
                quote_infos=tuple(self._marks.quotes) if self._marks is not None else (),
            )
        )

    async def _fail(self, kind: ErrorKind, message: str, model_called: bool = True) -> None:
        procedures = self._procedures("failed", model_called)
        record = self._record("failed", procedures, error_message=f"{kind.value}: {message}"[:1024])
        try:
            await self._store(record)
        except Exception:
            if self._question_error is None:
                log.exception("could not record failed turn %s", record.id)
        self._emit(Progress("failed", procedures, self._elapsed()))
        self._emit(Failure(kind.value, message))


class WorkflowFailure(Exception):
    """A workflow node failed: the message names it and says why."""


UNSEEN_IMAGES = (
    "The visitor's message carries images, which you cannot see. Answer from the text alone, "
    "and say that you could not look at the images."
)


class QuestionNotStored(Exception):
    """The question's write was abandoned."""


def store_failure(error: BaseException | None, what: str) -> Failure:
    """The failure event for a record that could not be stored: busy when another writer held
    the database past the busy timeout (the client may simply try again), internal otherwise."""
    if error is not None and is_busy(error):
        return Failure(ErrorKind.STORE_BUSY.value, f"the server's database is busy: {what} could not be stored; try again shortly")
    return Failure(ErrorKind.INTERNAL.value, f"internal error: {what} could not be stored")


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
                **({"node": p.node} if p.node else {}),
            }
            for p in procedures
        ],
    }


def _shown_texts(record: NodeRecord) -> tuple[str, ...]:
    """What a node's work_flow.current_node shows the visitor, as text."""
    texts = [record.reply, record.task_output, record.fail_message]
    for value in (record.input, record.output):
        if value is not None:
            texts.append(value if isinstance(value, str) else orjson.dumps(value, default=str).decode())
    return tuple(t for t in texts if t)


def _workflow_step(workflow_name: str, record: NodeRecord, elapsed_ms: int) -> WorkflowStep:
    status = STEP_STATUS.get(record.status, "processing")
    if status == "processing" and record.reply:
        status = "waiting"  # option cards or a question: the node waits for the user
    return WorkflowStep(
        workflow_name, record.node_id, record.node_name, status, int(round(record.cost_ms)), elapsed_ms,
        record.fail_message or (record.reply if status == "waiting" else ""),
    )


STEP_STATUS = {NODE_RUNNING: "processing", NODE_SUCCEEDED: "success", NODE_FAILED: "failed"}


def _workflow_procedures(records: list[NodeRecord], status: str, elapsed_ms: int) -> tuple[Procedure, ...]:
    """The `workflow` procedure (the run's status and time), then one per node record of this
    turn that called a model, with that node's usage: the token counts add up to the turn's
    without counting anything twice."""
    procedures = [Procedure("workflow", status, elapsed_ms=elapsed_ms)]
    for record in records:
        stats = record.statistics
        if stats:
            procedures.append(Procedure(
                "workflow", "failed" if record.status == NODE_FAILED else "success",
                sum(s.input_tokens for s in stats), sum(s.output_tokens for s in stats), stats[-1].model_name,
                int(round(record.cost_ms)), node=record.node_name,
            ))
    return tuple(procedures)
