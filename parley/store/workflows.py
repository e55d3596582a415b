"""Workflow runs: saved whenever a run pauses or ends, read to resume it and to show its trace.

The state is plain JSON here (the workflow package's RunState, dumped): the store knows no
workflow types."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.workflow_tables import workflow_runs

ERROR_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class WorkflowRunRow:
    id: int
    app_id: int
    session_id: str
    workflow_name: str
    status: str
    state: dict[str, Any]
    error: str = ""
    record_id: int | None = None
    release_version: int | None = None
    created_at: int = 0
    updated_at: int = 0


def _row(row: Any) -> WorkflowRunRow:
    return WorkflowRunRow(
        id=row.id, app_id=row.app_id, session_id=row.session_id, workflow_name=row.workflow_name, status=row.status,
        state=row.state, error=row.error, record_id=row.record_id, release_version=row.release_version,
        created_at=row.created_at, updated_at=row.updated_at,
    )


class WorkflowRunRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, run: WorkflowRunRow) -> WorkflowRunRow:
        """Inserts the run, or updates its status, state, error and record."""
        now = int(time.time() * 1000)
        values = {
            "status": run.status, "state": run.state, "error": run.error[:ERROR_LIMIT], "record_id": run.record_id,
            "updated_at": now,
        }
        async with self._engine.begin() as conn:
            updated = await conn.execute(workflow_runs.update().where(workflow_runs.c.id == run.id).values(**values))
            if updated.rowcount == 0:
                await conn.execute(workflow_runs.insert().values(
                    id=run.id, app_id=run.app_id, session_id=run.session_id, workflow_name=run.workflow_name,
                    release_version=run.release_version, created_at=run.created_at or now, **values,
                ))
        return await self.get(run.id)  # type: ignore[return-value]

    async def get(self, run_id: int) -> WorkflowRunRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(workflow_runs.select().where(workflow_runs.c.id == run_id))).first()
        return _row(row) if row else None

    async def waiting(self, app_id: int, session_id: str) -> WorkflowRunRow | None:
        """The session's newest run that waits for the user's next question, or that a question
        has claimed to resume (status "running": being resumed, or its process died mid-run,
        leaving the state stored when it paused)."""
        query = (
            workflow_runs.select()
            .where(workflow_runs.c.app_id == app_id, workflow_runs.c.session_id == session_id,
                   workflow_runs.c.status.in_(("suspended", "running")))
            .order_by(workflow_runs.c.updated_at.desc(), workflow_runs.c.id.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row(row) if row else None

    async def claim(self, run_id: int, stale_after_ms: int | None = None) -> bool:
        """Takes a waiting run for one question: "suspended" -> "running" in a single
        conditional UPDATE, so that of two questions (in any processes) only one wins, on SQLite
        (writers take turns) and PostgreSQL (the second UPDATE waits for the first's row lock,
        then finds the status changed) alike. A claim older than `stale_after_ms` may be taken over."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                workflow_runs.update()
                .where(workflow_runs.c.id == run_id, self._claimable(stale_after_ms))
                .values(status="running", updated_at=int(time.time() * 1000))
            )
        return result.rowcount == 1

    async def unclaim(self, run_id: int) -> None:
        """Gives a claimed run back to the session (its question was refused before it ran)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                workflow_runs.update().where(workflow_runs.c.id == run_id, workflow_runs.c.status == "running")
                .values(status="suspended", updated_at=int(time.time() * 1000))
            )

    @staticmethod
    def _claimable(stale_after_ms: int | None) -> Any:
        waiting = workflow_runs.c.status == "suspended"
        if stale_after_ms is None:
            return waiting
        stale = (workflow_runs.c.status == "running") & (workflow_runs.c.updated_at < int(time.time() * 1000) - stale_after_ms)
        return sa.or_(waiting, stale)

    async def list(self, app_id: int, session_id: str | None = None, limit: int = 50, *, status: str | None = None,
                   before: int | None = None) -> list[WorkflowRunRow]:
        """An application's runs (of one session, in one status), newest first; `before` pages
        on: only runs older than that run id (ids grow with time)."""
        condition = workflow_runs.c.app_id == app_id
        if session_id is not None:
            condition = condition & (workflow_runs.c.session_id == session_id)
        if status is not None:
            condition = condition & (workflow_runs.c.status == status)
        if before is not None:
            condition = condition & (workflow_runs.c.id < before)
        query = workflow_runs.select().where(condition).order_by(workflow_runs.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    async def close_waiting(self, app_id: int, session_id: str, stale_after_ms: int | None = None) -> int:
        """Abandons the session's waiting runs (and, with `stale_after_ms`, the stale claimed
        ones: see `waiting`), because the application now runs another workflow; returns how many."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                workflow_runs.update()
                .where(workflow_runs.c.app_id == app_id, workflow_runs.c.session_id == session_id,
                       self._claimable(stale_after_ms))
                .values(status="abandoned", updated_at=int(time.time() * 1000))
            )
        return result.rowcount
