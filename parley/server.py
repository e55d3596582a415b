"""Builds the ASGI application: opens the shared services, mounts every face, closes them again."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.bus.local import LocalBus
from parley.config import Settings
from parley.engine.apps import App, ApplicationService
from parley.engine.engine import Engine
from parley.engine.limits import LocalConcurrencyLimiter, LocalRateLimiter
from parley.engine.moderation import WordListModerator
from parley.faces.adp import sse as adp_sse
from parley.faces.console import admin
from parley.models.registry import ModelRegistry
from parley.services import Services
from parley.store.apps import AppRepository
from parley.store.conversations import ConversationRepository
from parley.store.database import Database

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """The database (migrated), models, bus and engine; closed in reverse on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.sqlalchemy_url)
    await database.migrate()
    models = ModelRegistry(settings)
    bus = LocalBus(retention=settings.turn_retention)
    apps = ApplicationService(AppRepository(database.engine), models.names)
    engine = Engine(
        apps, ConversationRepository(database.engine), models, bus,
        LocalConcurrencyLimiter(), LocalRateLimiter(), WordListModerator(settings.word_files),
    )
    try:
        yield Services(settings=settings, engine=engine, apps=apps, models=models)
    finally:
        await engine.shutdown(settings.shutdown_grace)
        await bus.aclose()
        await models.aclose()
        await database.close()


async def healthz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    return JSONResponse({"status": "ok", "turns_in_progress": services.engine.turns_in_progress})


def build_app(settings: Settings, on_ready: Callable[[Services, App | None], None] | None = None) -> Starlette:
    """The whole server. `on_ready` is called once the services are open (the CLI prints the demo's key)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            demo = None
            if settings.demo:
                from parley.demo import ensure_demo

                demo = await ensure_demo(services.apps)
            settings.ensure_admin_token()
            if on_ready is not None:
                on_ready(services, demo)
            yield

    routes = [Route("/healthz", healthz, methods=["GET"]), *adp_sse.routes, *admin.routes]
    return Starlette(routes=routes, lifespan=lifespan)
