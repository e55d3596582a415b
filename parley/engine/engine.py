"""The engine: admits turns, runs them as tasks of their own and serves their events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from parley.bus.base import Bus
from parley.engine.apps import AppConfig, ApplicationService
from parley.engine.errors import ErrorKind, TurnRejected
from parley.engine.events import UserEcho
from parley.engine.limits import ConcurrencyLimiter
from parley.engine.prompt import render_role
from parley.engine.turn import TurnInfo, TurnPlan, TurnRequest, TurnRunner
from parley.ids import new_id
from parley.models.registry import ModelRegistry
from parley.store.conversations import ConversationRepository, RecordRow, SessionOwnedElsewhere

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        apps: ApplicationService,
        conversations: ConversationRepository,
        models: ModelRegistry,
        bus: Bus,
        limiter: ConcurrencyLimiter,
    ) -> None:
        self.apps = apps
        self.conversations = conversations
        self.models = models
        self.bus = bus
        self.limiter = limiter
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._configs: dict[int, AppConfig] = {}  # parsed releases by release id; releases never change

    async def start_turn(self, request: TurnRequest) -> TurnInfo:
        """Admits the turn, records the question, emits the echo and starts the answer.

        Raises TurnRejected, having stored nothing, when the turn cannot run.
        """
        started = time.monotonic()
        app_row, release = await self.apps.released_by_key(request.app_key)
        if app_row is None:
            raise TurnRejected(ErrorKind.APP_KEY_INVALID)
        if app_row.deleted:
            raise TurnRejected(ErrorKind.APP_NOT_FOUND)
        if release is None:
            raise TurnRejected(ErrorKind.APP_NOT_PUBLISHED, "the application has not been published")
        app = self._configs.get(release.id)
        if app is None:
            app = self._configs[release.id] = AppConfig.model_validate(release.config)

        model_name = request.model_name or app.model or self.models.default_name
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

        limit_key = f"app:{app_row.id}"
        if not await self.limiter.try_acquire(limit_key, app.concurrency):
            raise TurnRejected(ErrorKind.CONCURRENCY_EXCEEDED)
        try:
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
                file_infos=request.file_infos or None,
            )
            try:
                session, history = await self.conversations.begin_turn(
                    app_row.id, request.session_id, request.visitor_id, question, app.history_depth * 2
                )
            except SessionOwnedElsewhere:
                raise TurnRejected(ErrorKind.SESSION_FORBIDDEN) from None
        except BaseException:
            await self.limiter.release(limit_key)
            raise

        answer_id = new_id()
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
        self.bus.open(answer_id)
        self.bus.publish(answer_id, UserEcho(question.id, question.content, info.timestamp, False, request.file_infos))
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
        )
        task = asyncio.create_task(self._run(TurnRunner(plan, self.bus, self.conversations), limit_key))
        self._tasks[answer_id] = task
        return info

    async def _run(self, runner: TurnRunner, limit_key: str) -> None:
        try:
            await runner.run()
        finally:
            self._tasks.pop(runner.plan.info.turn_id, None)
            await self.limiter.release(limit_key)

    def events(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        """The turn's events from `offset`; None after `idle` seconds of silence."""
        return self.bus.subscribe(turn_id, offset, idle)

    def stop_turn(self, turn_id: int) -> bool:
        """Stops a turn in progress; its partial answer is recorded as stopped."""
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
        self, app_id: int, session_id: str, count: int, before_id: int | None = None
    ) -> list[RecordRow]:
        session = await self.conversations.get_session(app_id, session_id)
        if session is None:
            return []
        return await self.conversations.list_records(session.id, count, before_id)
