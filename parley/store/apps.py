"""Applications and their immutable releases."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.ids import new_id, new_key
from parley.store.tables import apps, releases


@dataclass(frozen=True, slots=True)
class AppRow:
    id: int
    name: str
    app_key: str
    config: dict[str, Any]
    deleted: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    id: int
    app_id: int
    version: int
    config: dict[str, Any]
    description: str
    created_at: int


PUBLISH_ATTEMPTS = 20
"""Versions a publish tries before it gives up to concurrent publishes of the same application."""


class PublishConflict(Exception):
    """Concurrent publishes of one application kept taking the version this one tried."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _app(row: Any) -> AppRow:
    return AppRow(row.id, row.name, row.app_key, row.config, row.deleted, row.created_at, row.updated_at)


def _release(row: Any) -> ReleaseRow:
    return ReleaseRow(row.id, row.app_id, row.version, row.config, row.description, row.created_at)


class AppRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, name: str, config: dict[str, Any]) -> AppRow:
        now = _now_ms()
        row = AppRow(new_id(), name, new_key(), config, False, now, now)
        async with self._engine.begin() as conn:
            await conn.execute(
                apps.insert().values(
                    id=row.id, name=name, app_key=row.app_key, config=config,
                    deleted=False, created_at=now, updated_at=now,
                )
            )
        return row

    async def update_config(self, app_id: int, config: dict[str, Any]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                apps.update().where(apps.c.id == app_id).values(config=config, updated_at=_now_ms())
            )

    async def rename(self, app_id: int, name: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(apps.update().where(apps.c.id == app_id).values(name=name, updated_at=_now_ms()))

    async def mark_deleted(self, app_id: int) -> None:
        """Soft delete: the name is freed, the key stops working, records stay."""
        async with self._engine.begin() as conn:
            await conn.execute(
                apps.update()
                .where(apps.c.id == app_id)
                .values(deleted=True, name=f"deleted-{app_id}", updated_at=_now_ms())
            )

    async def get(self, app_id: int) -> AppRow | None:
        return await self._one(apps.c.id == app_id)

    async def get_by_name(self, name: str) -> AppRow | None:
        return await self._one((apps.c.name == name) & (apps.c.deleted == sa.false()))

    async def get_by_key(self, app_key: str) -> AppRow | None:
        return await self._one(apps.c.app_key == app_key)

    async def list(self) -> list[AppRow]:
        async with self._engine.connect() as conn:
            result = await conn.execute(
                apps.select().where(apps.c.deleted == sa.false()).order_by(apps.c.created_at)
            )
            return [_app(r) for r in result]

    async def _one(self, condition: Any) -> AppRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(apps.select().where(condition))).first()
        return _app(row) if row else None

    async def publish(self, app_id: int, config: dict[str, Any], description: str = "") -> ReleaseRow:
        """Freezes `config` as the next release of the application.

        The version is taken in the insert itself, so that concurrent publishes of one
        application each get their own: on SQLite the statement holds the write lock from its
        first read; on a server database two of them may still pick the same number, and the
        unique (app_id, version) constraint refuses the second, which takes the next one.
        """
        for _ in range(PUBLISH_ATTEMPTS):
            row_id, created_at = new_id(), _now_ms()
            next_version = (
                sa.select(
                    sa.literal(row_id), sa.literal(app_id),
                    sa.func.coalesce(sa.func.max(releases.c.version), 0) + 1,
                    sa.literal(config, releases.c.config.type), sa.literal(description), sa.literal(created_at),
                )
                .where(releases.c.app_id == app_id)
            )
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        releases.insert().from_select(
                            ["id", "app_id", "version", "config", "description", "created_at"], next_version
                        )
                    )
                    version = await conn.scalar(sa.select(releases.c.version).where(releases.c.id == row_id))
            except sa.exc.IntegrityError:
                continue  # another publish took this version first
            return ReleaseRow(row_id, app_id, version, config, description, created_at)
        raise PublishConflict(f"{PUBLISH_ATTEMPTS} concurrent publishes took every version tried; try again")

    async def latest_release(self, app_id: int) -> ReleaseRow | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    releases.select()
                    .where(releases.c.app_id == app_id)
                    .order_by(releases.c.version.desc())
                    .limit(1)
                )
            ).first()
        return _release(row) if row else None

    async def released_by_key(self, app_key: str) -> tuple[AppRow | None, ReleaseRow | None]:
        """The application holding `app_key` and its latest release, in one query."""
        newest = (
            sa.select(sa.func.max(releases.c.version))
            .where(releases.c.app_id == apps.c.id)
            .correlate(apps)
            .scalar_subquery()
        )
        query = (
            sa.select(apps, releases.c.id.label("r_id"), releases.c.version,
                      releases.c.config.label("r_config"), releases.c.description,
                      releases.c.created_at.label("r_created_at"))
            .select_from(
                apps.outerjoin(releases, (releases.c.app_id == apps.c.id) & (releases.c.version == newest))
            )
            .where(apps.c.app_key == app_key)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None, None
        app = _app(row)
        if row.r_id is None:
            return app, None
        return app, ReleaseRow(row.r_id, app.id, row.version, row.r_config, row.description, row.r_created_at)
