"""The engine: admits turns, runs them as tasks of their own and serves their events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from parley.bus.base import Bus, UnknownTurn
from parley.caching import RefreshingCache
from parley.engine.apps import AppConfig, ApplicationService
from parley.engine.errors import ErrorKind, TurnRejected
from parley.engine.events import ReplyMethod, UserEcho
from parley.engine.faces import Face
from parley.engine.limits import ConcurrencyLimiter, LimitsUnavailable, RateLimiter
from parley.engine.moderation import Moderator
from parley.engine.prompt import render_role
from parley.engine.images import image_urls
from parley.engine.sources import DocumentSource, ImageSource, KnowledgeSource, SearchSource
from parley.engine.turn import CheckpointPolicy, DirectReply, SearchRequest, TurnInfo, TurnPlan, TurnRequest, TurnRunner
from parley.engine.workflows import RunBusy, WorkflowHost
from parley.ids import new_id
from parley.models.registry import ModelRegistry
from parley.store.apps import AppRow, ReleaseRow
from parley.store.conversations import IN_PROGRESS, ConversationRepository, RecordRow, SessionOwnedElsewhere

log = logging.getLogger(__name__)

RELEASE_CACHE_SECONDS = 1.0


def _reply_method(documents: list[tuple[str, str]]) -> int:
    return ReplyMethod.REALTIME_DOCUMENT if documents else ReplyMethod.LLM


@contextmanager
def _refused_when_limits_unavailable() -> Iterator[None]:
    """A limit that cannot be checked (the shared bus is down) refuses the turn; it never admits."""
    try:
        yield
    except LimitsUnavailable as exc:
        log.warning("refused a turn: %s", exc)
        raise TurnRejected(ErrorKind.BUS_UNAVAILABLE, "the server cannot check its limits now; try again shortly") from None


@dataclass(slots=True, frozen=True)
class TurnOwner:
    """Kept with a turn's stream (the bus header): whose turn it is, for a subscriber that resumes it."""

    info: TurnInfo
    visitor_id: str
    face: Face


def _owned_by(owner: TurnOwner, app_id: int, session_id: str, visitor_id: str, face: Face) -> bool:
    info = owner.info
    return (info.app_id, info.session_id, owner.visitor_id, owner.face) == (app_id, session_id, visitor_id, face)


class Engine:
    def __init__(
        self,
        apps: ApplicationService,
        conversations: ConversationRepository,
        models: ModelRegistry,
        bus: Bus,
        limiter: ConcurrencyLimiter,
        rates: RateLimiter,
        moderator: Moderator,
        documents: DocumentSource | None = None,
        knowledge: KnowledgeSource | None = None,
        checkpoints: CheckpointPolicy | None = None,
        workflows: WorkflowHost | None = None,
        *,
        search: SearchSource | None = None,
        images: ImageSource | None = None,
    ) -> None:
        """`checkpoints`: how often an answer in progress is saved (None: only when it ends);
        `workflows`: runs applications' workflows (None: questions never go through one)."""
        self.apps = apps
        self.conversations = conversations
        self.models = models
        self.bus = bus
        self.limiter = limiter
        self.rates = rates
        self.moderator = moderator
        self.documents = documents
        self.knowledge = knowledge
        self.checkpoints = checkpoints
        self.workflows = workflows
        self.search = search
        self.images = images
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._configs: dict[int, AppConfig] = {}  # parsed releases by release id; releases never change
        self._releases: RefreshingCache[str, tuple[AppRow | None, ReleaseRow | None]] = RefreshingCache(
            apps.released_by_key, RELEASE_CACHE_SECONDS
        )
        apps.on_change(self._releases.forget)
        bus.on_stop(self._stop_here)  # a stop asked of another instance, for a turn of this one

    async def _released(self, app_key: str) -> tuple[AppRow, ReleaseRow, AppConfig]:
        """The application behind `app_key` and its latest release, cached for a second.

        Publishing through this process clears the cache at once; a publish from another
        process (the CLI) is seen about RELEASE_CACHE_SECONDS later.
        """
        app_row, release = await self._releases.get(app_key)
        if app_row is None:
            raise TurnRejected(ErrorKind.APP_KEY_INVALID)
        if app_row.deleted:
            raise TurnRejected(ErrorKind.APP_NOT_FOUND)
        if release is None:
            raise TurnRejected(ErrorKind.APP_NOT_PUBLISHED, "the application has not been published")
        app = self._configs.get(release.id)
        if app is None:
            app = self._configs[release.id] = AppConfig.model_validate(release.config)
        return app_row, release, app

    async def open_stream(self, app_key: str) -> int:
        """Counts an open dialogue stream (a connection) of the application; returns its app id.

        Raises TurnRejected: the key is unknown, or the application has `max_streams` open.
        Every successful call must be matched by close_stream.
        """
        app_row, _, app = await self._released(app_key)
        with _refused_when_limits_unavailable():
            if not await self.limiter.acquire(f"streams:{app_row.id}", app.max_streams):
                raise TurnRejected(ErrorKind.TOO_MANY_CONNECTIONS)
        return app_row.id

    async def close_stream(self, app_id: int) -> None:
        await self.limiter.release(f"streams:{app_id}")

    async def start_turn(self, request: TurnRequest) -> TurnInfo:
        """Admits the turn, queues the question's record and starts the answer.

        Raises TurnRejected, having stored nothing, when the turn cannot run. Admission
        checks, in order: the application, the model's limits, the rate limits, the question's
        words (a hit is answered with the refusal, without the model), then a turn slot
        (waiting in line up to `queue_timeout`; none: 460011 or the busy reply).

        The echo is the acknowledgement that the question is recorded: the runner emits it
        once the question's write has committed (see TurnRunner), while the answer starts at
        once; a question that cannot be stored ends the turn with an error and no echo.
        """
        started = time.monotonic()
        app_row, release, app = await self._released(request.app_key)

        images = image_urls(request.content, request.file_infos)
        vision_model = app.vision_model if images else None
        model_name = request.model_name or vision_model or app.model or self.models.default_name
        model_config = self.models.config(model_name)
        if model_config is None:
            raise TurnRejected(ErrorKind.BAD_REQUEST, f"model_name {model_name!r} is not available")
        if len(request.content) > model_config.input_len_limit:
            raise TurnRejected(
                ErrorKind.CONTENT_TOO_LONG,
                f"content has {len(request.content)} characters; {model_name} accepts {model_config.input_len_limit}",
            )
        if request.system_role and len(request.system_role) > model_config.role_len_limit:
            raise TurnRejected(
                ErrorKind.ROLE_TOO_LONG,
                f"system_role has {len(request.system_role)} characters; {model_name} accepts {model_config.role_len_limit}",
            )
        system_role = render_role(request.system_role or app.system_role, request.custom_variables)
        with _refused_when_limits_unavailable():
            if app.rate_limit and not await self.rates.hit(f"app:{app_row.id}", app.rate_limit):
                raise TurnRejected(ErrorKind.RATE_LIMITED, f"the application takes {app.rate_limit} turns a minute")
            if app.visitor_rate_limit and not await self.rates.hit(
                f"visitor:{app_row.id}:{request.visitor_id}", app.visitor_rate_limit
            ):
                raise TurnRejected(ErrorKind.RATE_LIMITED, f"a visitor may ask {app.visitor_rate_limit} questions a minute")

        documents = await self._attached_documents(app_row.id, request)
        knowledge = self.knowledge if self.knowledge is not None and app.knowledge.enabled else None
        scope = None
        if knowledge is not None:
            try:
                scope = knowledge.scope(request.custom_variables, request.visitor_labels, app.knowledge)
            except ValueError as exc:
                raise TurnRejected(ErrorKind.INVALID_LABEL, str(exc)) from None
        app_words = tuple(app.sensitive_words)
        question_hit = self.moderator.check(app_words, request.content)
        direct: DirectReply | None = None
        limit_key: str | None = None
        if question_hit is not None:
            moderation = {"word": question_hit.word, "source": question_hit.source, "where": "question"}
            direct = DirectReply(app.refusal_reply, ReplyMethod.SENSITIVE, is_evil=True, extra={"moderation": moderation})
        else:
            with _refused_when_limits_unavailable():
                admitted = await self.limiter.acquire(f"turns:{app_row.id}", app.concurrency, app.queue_timeout)
            if admitted:
                limit_key = f"turns:{app_row.id}"
            elif app.busy_mode == "reply":
                direct = DirectReply(app.busy_reply, ReplyMethod.CONCURRENCY_EXCEEDED)
            else:
                raise TurnRejected(ErrorKind.CONCURRENCY_EXCEEDED)

        try:
            workflow = None
            if direct is None and app.workflow is not None and request.workflow_enabled and self.workflows is not None:
                try:
                    workflow = await self.workflows.turn(
                        release.id, release.version, app.workflow, app_id=app_row.id, session_id=request.session_id,
                        visitor_id=request.visitor_id, question=request.content, model=request.model_name or app.model,
                        inputs=request.custom_variables, knowledge_settings=app.knowledge,
                        workflows=app.workflows,
                    )
                except RunBusy as exc:
                    raise TurnRejected(ErrorKind.CONCURRENCY_EXCEEDED, str(exc)) from None
            now_ms = int(time.time() * 1000)
            question = RecordRow(
                id=new_id(),
                session_pk=0,
                app_id=app_row.id,
                is_from_self=True,
                content=request.content,
                status="success",
                created_at=now_ms,
                finished_at=now_ms,
                request_id=request.request_id,
                is_evil=question_hit is not None,
                file_infos=request.file_infos or None,
                extra=direct.extra if question_hit is not None and direct is not None else None,
            )
            answer_id = new_id()  # after the question's: records are listed in id order
            opened = RecordRow(  # the answer's record in progress, stored with the question
                id=answer_id,
                session_pk=0,
                app_id=app_row.id,
                is_from_self=False,
                content="",
                status=IN_PROGRESS,
                created_at=now_ms // 1000 * 1000,
                request_id=request.request_id,
                related_record_id=question.id,
                reply_method=direct.reply_method if direct is not None else (
                    ReplyMethod.WORKFLOW if workflow is not None else _reply_method(documents)),
                model="" if direct is not None else model_name,
                is_llm_generated=direct is None,
            )
            try:
                session, history, question_stored = await self.conversations.begin_turn(
                    app_row.id, request.session_id, request.visitor_id, question,
                    app.history_depth * 2 if direct is None else 0, opened, face=request.face,
                )
            except SessionOwnedElsewhere:
                raise TurnRejected(ErrorKind.SESSION_FORBIDDEN) from None
        except BaseException:
            if limit_key is not None:
                await self.limiter.release(limit_key)
            if workflow is not None:
                await workflow.give_back()
            raise

        info = TurnInfo(
            turn_id=answer_id,
            app_id=app_row.id,
            app_name=app.name,
            app_avatar=app.avatar,
            session_id=request.session_id,
            request_id=request.request_id,
            question_record_id=question.id,
            answer_record_id=answer_id,
            model=model_name,
            timestamp=now_ms // 1000,
            streaming_enabled=app.streaming.enabled,
            streaming_throttle=app.streaming.throttle,
        )
        self.bus.open(answer_id, TurnOwner(info, request.visitor_id, request.face))
        plan = TurnPlan(
            info=info,
            app=app,
            session_pk=session.id,
            model=self.models.get(model_name),
            model_config=model_config,
            system_role=system_role,
            question=request.content,
            history=history,
            started=started,
            direct=direct,
            answer_guard=self.moderator.guard(app_words) if direct is None else None,
            thought_guard=self.moderator.guard(app_words) if direct is None else None,
            client_history=request.history,
            documents=documents,
            knowledge=knowledge if direct is None and workflow is None else None,
            knowledge_scope=scope,
            question_stored=question_stored,
            echo=UserEcho(question.id, question.content, info.timestamp, question.is_evil, request.file_infos),
            checkpoints=self.checkpoints,
            workflow=workflow,
            search=self._search_request(app, request) if direct is None and workflow is None and self.search is not None else None,
            search_source=self.search,
            images=images if model_config.vision else [],
            unseen_images=0 if model_config.vision else len(images),
            image_source=self.images,
        )
        task = asyncio.create_task(self._run(TurnRunner(plan, self.bus, self.conversations), limit_key))
        self._tasks[answer_id] = task
        return info

    @staticmethod
    def _search_request(app: AppConfig, request: TurnRequest) -> SearchRequest | None:
        """Search for this turn: the request's switch where it gives one, else the application's."""
        wanted = app.search.enabled if request.search is None else request.search
        return SearchRequest(app.search.provider, app.search.count) if wanted else None

    async def _attached_documents(self, app_id: int, request: TurnRequest) -> list[tuple[str, str]]:
        """The parsed real-time documents a question names (file infos with a `doc_id` from
        ADP's docParse); a bad reference refuses the turn. Other faces' file infos are kept
        with the question only."""
        named = [info for info in request.file_infos if info.get("doc_id")]
        if not named:
            return []
        if self.documents is None:
            raise TurnRejected(ErrorKind.BAD_REQUEST, "this server does not parse real-time documents")
        try:
            found = await self.documents.for_turn(app_id, request.session_id, named)
        except ValueError as exc:
            raise TurnRejected(ErrorKind.BAD_REQUEST, str(exc)) from None
        return [(document.file_name, document.text) for document in found]

    async def _run(self, runner: TurnRunner, limit_key: str | None) -> None:
        try:
            await runner.run()
        finally:
            self._tasks.pop(runner.plan.info.turn_id, None)
            if limit_key is not None:
                await self.limiter.release(limit_key)

    def events(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        """The turn's events from `offset`; None after `idle` seconds of silence."""
        return self.bus.subscribe(turn_id, offset, idle)

    def event_batches(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        """The turn's events in lists of those already waiting; None after `idle` seconds of silence."""
        return self.bus.subscribe_batches(turn_id, offset, idle)

    async def resume_turn(self, request: TurnRequest, turn_id: int) -> TurnInfo:
        """The turn `turn_id`, for a subscriber that lost its stream and asks again with the same
        request: no new turn starts; the face replays the turn's events and skips what it sent.

        Raises TurnRejected: the application's key is refused as for a new turn; the turn is
        no longer kept (BAD_REQUEST); it belongs to another application, visitor, session or
        face (SESSION_FORBIDDEN).
        """
        app_row, _, _ = await self._released(request.app_key)
        owner = await self._owner(turn_id)
        if owner is None:
            raise TurnRejected(
                ErrorKind.BAD_REQUEST, f"turn {turn_id} can no longer be resumed (unknown, or expired after it ended)"
            )
        if not _owned_by(owner, app_row.id, request.session_id, request.visitor_id, request.face):
            raise TurnRejected(ErrorKind.SESSION_FORBIDDEN, f"turn {turn_id} belongs to another visitor or session")
        return owner.info

    async def _owner(self, turn_id: int) -> TurnOwner | None:
        """Whose turn `turn_id` is, while its stream is kept (on any instance)."""
        try:
            return await self.bus.replay_header(turn_id)
        except UnknownTurn:
            return None

    def keep_events(self, turn_id: int) -> None:
        """Keeps the turn's events replayable: its subscriber left before the end and may resume."""
        self.bus.keep(turn_id)

    async def stop_turn(self, turn_id: int) -> bool:
        """Stops a turn in progress; its partial answer is recorded as stopped. False when no
        instance runs it (it ended, or never was).

        A turn of this instance is cancelled at once; another's gets the stop through the bus,
        and that instance cancels it on arrival. Cancelling closes the upstream model call."""
        if self._stop_here(turn_id):
            return True
        return await self.bus.stop(turn_id)

    async def stop_visitor_turn(self, app_key: str, visitor_id: str, session_id: str, face: Face, turn_id: int) -> bool:
        """Stops the turn `turn_id` for a visitor who names it (ADP's SSE stop call): False when
        no such turn is in progress in that visitor's session.

        Raises TurnRejected when the application's key is refused, as for a new turn."""
        app_row, _, _ = await self._released(app_key)
        owner = await self._owner(turn_id)
        if owner is None or not _owned_by(owner, app_row.id, session_id, visitor_id, face):
            return False
        return await self.stop_turn(turn_id)

    def _stop_here(self, turn_id: int) -> bool:
        task = self._tasks.get(turn_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    @property
    def turns_in_progress(self) -> int:
        return len(self._tasks)

    async def shutdown(self, grace: float) -> None:
        """Lets turns in progress finish for `grace` seconds, then stops the rest."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        log.info("waiting up to %.0f s for %d turns in progress", grace, len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)

    async def session_records(
        self, app_id: int, session_id: str, count: int, before_id: int | None = None, *, face: Face
    ) -> list[RecordRow]:
        """Records of the session `session_id` of `face` (another face's session of that name is not seen)."""
        session = await self.conversations.get_session(app_id, session_id, face=face)
        if session is None:
            return []
        return await self.conversations.list_records(session.id, count, before_id)

    async def workflow_runs(self, app_id: int, session_id: str | None = None, limit: int = 50, *,
                            status: str | None = None, before: int | None = None) -> list[Any]:
        """The application's workflow runs (of one session, in one status, older than `before`),
        newest first: state and trace."""
        if self.workflows is None:
            return []
        return await self.workflows.runs.list(app_id, session_id, limit, status=status, before=before)

    async def workflow_run(self, app_id: int, run_id: int) -> Any | None:
        """One workflow run of the application, with its trace; None if there is none such."""
        if self.workflows is None:
            return None
        run = await self.workflows.runs.get(run_id)
        return run if run is not None and run.app_id == app_id else None

    async def rate_record(
        self, app_id: int, record_id: int, score: int, reasons: list[str] | None = None, feedback: str = "",
        *, face: str,
    ) -> RecordRow:
        """Records a visitor's rating of one of the application's answers in `face`'s sessions
        (ADP RateMsgRecord).

        Raises ratings.RecordNotFound, or ratings.RatingRefused when the rules forbid it.
        """
        from parley.engine import ratings

        record = await self.conversations.get_record(record_id, face=face)
        if record is None or record.app_id != app_id:
            raise ratings.RecordNotFound(record_id)
        reasons = list(reasons or [])
        ratings.check_rating(record, score, reasons, feedback)
        extra = ratings.rated_extra(record, score, reasons, feedback)
        await self.conversations.set_score(record_id, score, extra)
        record.score, record.extra = score, extra
        return record
