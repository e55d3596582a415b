"""Builds the ASGI application: opens the shared services, mounts every face, closes them again."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version
from typing import Any

from redis.asyncio import Redis

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.bus.base import Bus
from parley.bus.connect import connected
from parley.bus.local import LocalBus
from parley.bus.redis_bus import RedisBus
from parley.config import Settings
from parley.engine.apps import App, ApplicationService
from parley.engine.codec import EngineCodec
from parley.engine.engine import Engine
from parley.engine.events import compact_events
from parley.engine.moderation import WordListModerator
from parley.engine.reaper import TurnReaper
from parley.engine.turn import CheckpointPolicy
from parley.engine.workflows import WorkflowHost
from parley.channels.cloudbase import CloudBaseChannel
from parley.faces import openapi
from parley.faces.adp import cloudapi as adp_cloudapi
from parley.faces.adp import docparse as adp_docparse
from parley.faces.adp import openapi as adp_openapi
from parley.faces.adp import sse as adp_sse
from parley.faces.adp import stop as adp_stop
from parley.faces.adp import storage as adp_storage
from parley.faces.adp import v2_sse as adp_v2_sse
from parley.faces.adp import ws as adp_ws
from parley.faces.adp import ws_v2 as adp_ws_v2
from parley.faces.bodies import BodyLimit, BodyLimits
from parley.faces.cloudbase import openapi as cloudbase_openapi
from parley.faces.cloudbase import routes as cloudbase
from parley.faces.console import admin
from parley.faces.console import cloudbase_admin
from parley.faces.console import knowledge as knowledge_admin
from parley.faces.im import rest as im_rest
from parley.faces.console import openapi as console_openapi
from parley.faces.im import openapi as im_openapi
from parley.faces.im.routes import routes as im_routes
from parley.knowledge.service import KnowledgeService
from parley.knowledge.images import ImageFetcher
from parley.knowledge.realtime_docs import RealtimeDocuments
from parley.search.registry import SearchRegistry
from parley.search.service import WebSearch
from parley.messaging.runtime import open_messaging
from parley.models.registry import ModelRegistry
from parley.services import Services
from parley.sharing import Shared, open_shared
from parley.store.apps import AppRepository
from parley.store.cloudbase import CloudBaseRepository
from parley.store.conversations import ConversationRepository
from parley.store.database import Database
from parley.store.id_nodes import DeadNodeTurns, claim_id_node
from parley.store.known_sessions import KnownSessions
from parley.store.objects import LocalObjectStore
from parley.store.realtime_docs import RealtimeDocRepository
from parley.store.workflows import WorkflowRunRepository

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_services(settings: Settings, serving: bool = True) -> AsyncIterator[Services]:
    """The database (migrated), models, bus and engine; closed in reverse on exit. `serving`:
    False for a command (`parley app apply`) that may run beside a live server on the same
    database, which must leave that server's answers in progress alone."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.sqlalchemy_url, settings.database_busy_timeout, settings.database_pool_size)
    await database.migrate()
    models = ModelRegistry(settings)
    try:
        async with AsyncExitStack() as resources:
            # One Redis client (and pool) for everything shared with other instances.
            redis = await resources.enter_async_context(connected(settings.bus_url)) if settings.bus_url else None
            bus = await resources.enter_async_context(open_bus(settings, redis))
            # Limits, tokens, IM delivery and cache announcements: on the bus when there is one.
            shared = await resources.enter_async_context(open_shared(settings, redis))
            async with _open_services(settings, database, models, bus, shared, serving) as services:
                yield services
    finally:
        await models.aclose()
        await database.close()


@asynccontextmanager
async def open_bus(settings: Settings, redis: Redis | None) -> AsyncIterator[Bus]:
    """The in-process bus, or on `redis` the bus shared with other instances; closed (its
    pending events written) on exit."""
    bus: LocalBus | RedisBus
    if redis is None:
        bus = LocalBus(retention=settings.turn_retention, compact=compact_events)
    else:
        bus = RedisBus(redis, EngineCodec(), settings.turn_retention, settings.bus_lease)
        await bus.start()
    try:
        yield bus
    finally:
        await bus.aclose()


@asynccontextmanager
async def _open_services(
    settings: Settings, database: Database, models: ModelRegistry, bus: Bus, shared: Shared, serving: bool,
) -> AsyncIterator[Services]:
    search = WebSearch(SearchRegistry(settings.search))
    apps = ApplicationService(AppRepository(database.engine), models.names, search.registry.names)
    documents = RealtimeDocuments(
        RealtimeDocRepository(database.engine),
        LocalObjectStore(settings.data_dir / "objects", max_object_bytes=settings.cloud_api.upload_max_bytes),
        settings.ensure_admin_token, upload_ttl=settings.cloud_api.upload_ttl,
        max_chars=settings.cloud_api.realtime_doc_max_chars,
    )
    # On SQLite this process is the database's only writer, so it can know every session, and every
    # answer still in progress at start-up was left by a dead process. On a shared database another
    # live instance may be writing it: the reaper closes only those no live instance holds (told by
    # the shared bus's leases, or without one by the id nodes held on the database).
    only_writer = database.engine.dialect.name == "sqlite"
    known_sessions = await KnownSessions.load(database.engine) if only_writer else None
    id_node = await claim_id_node(database.engine)  # processes sharing a database mint ids apart
    knowledge = KnowledgeService(database.engine, settings.knowledge, settings.data_dir)
    await knowledge.start()  # background learning; resumes documents a previous run left unfinished
    conversations = ConversationRepository(
        database.engine, known_sessions, settings.database_busy_timeout, only_writer=only_writer,
    )
    interrupted = await conversations.close_unfinished() if only_writer and serving and not bus.shared else 0
    if interrupted:
        log.warning("closed %d answers left unfinished by a previous run as interrupted", interrupted)
    shared.share_changes(apps)
    engine = Engine(
        apps, conversations, models, bus,
        shared.limiter, shared.rates, WordListModerator(settings.word_files), documents, knowledge,
        CheckpointPolicy(settings.answer_checkpoint_interval, settings.answer_checkpoint_chars),
        WorkflowHost(settings.workflows, WorkflowRunRepository(database.engine), models, knowledge),
        search=search, images=ImageFetcher(settings.images, documents, settings.cloud_api.storage_bucket),
    )
    cloudbase_channel = CloudBaseChannel(CloudBaseRepository(database.engine), apps, engine.conversations, models)
    messaging = open_messaging(
        settings, database.engine, engine, apps, delivery=shared.delivery, limiter=shared.call_rates, state=shared.im_state
    )
    reaper: TurnReaper | None = None
    if serving and bus.shared:
        reaper = TurnReaper(conversations, bus, settings.bus_lease)
    elif serving and id_node is not None:  # a shared database without a shared bus: the id nodes tell
        reaper = TurnReaper(conversations, DeadNodeTurns(database.engine, id_node), lease=0)
    if reaper is not None:
        reaper.start(interval=settings.bus_lease / 2)
    try:
        yield Services(settings=settings, engine=engine, apps=apps, models=models, cloudbase=cloudbase_channel, knowledge=knowledge, documents=documents, messaging=messaging,
                       tokens=shared.tokens, signatures=shared.signatures)
    finally:
        if reaper is not None:
            await reaper.aclose()
        await engine.shutdown(settings.shutdown_grace)
        await conversations.aclose()  # the last answers' records are written before the database closes
        await search.aclose()
        await messaging.aclose()
        await knowledge.aclose()
        if id_node is not None:
            await id_node.aclose()


async def healthz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    # The pid tells which worker answered (`parley serve --workers N`).
    return JSONResponse({"status": "ok", "turns_in_progress": services.engine.turns_in_progress, "pid": os.getpid()})


def build_app(settings: Settings, on_ready: Callable[[Services, App | None], None] | None = None) -> ASGIApp:
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
            settle_garbage_collector()
            yield

    http_app = Starlette(routes=http_routes(settings), lifespan=lifespan)
    # ADP's Socket.IO endpoints (v1, v2) sit in front; every other request (and the lifespan) goes to http_app.
    services = lambda: http_app.state.services  # noqa: E731
    origins = settings.cloud_api.ws_allowed_origins
    # A long-polling client's requests must all reach the worker that holds its session, which
    # nothing can promise when several workers share the port: WebSocket only (docs/deployment.md).
    transports = ["websocket"] if settings.workers > 1 else None
    sockets = adp_ws.AdpSocketServer(services, origins, settings.body_limits.socketio, transports)
    sockets_v2 = adp_ws_v2.AdpV2SocketServer(services, origins, settings.body_limits.socketio, transports)
    server = HotPaths(sockets_v2.asgi(sockets.asgi(http_app)), services)
    return BodyLimits(server, body_limits(settings), default=settings.body_limits.other)


def body_limits(settings: Settings) -> list[BodyLimit]:
    """Each face's request body limit and refusal, the first whose paths match a request applies."""
    limits = settings.body_limits
    return [
        adp_sse.body_limit(limits.adp_chat),
        adp_v2_sse.body_limit(limits.adp_chat),
        adp_docparse.body_limit(limits.adp_chat),
        adp_ws.body_limit(limits.socketio),
        adp_ws_v2.body_limit(limits.socketio),
        adp_cloudapi.body_limit(limits.cloud_api),
        adp_storage.body_limit(settings.cloud_api.storage_bucket, settings.cloud_api.upload_max_bytes),
        im_rest.body_limit(limits.im),
        cloudbase.body_limit(limits.cloudbase),
        knowledge_admin.body_limit(int(settings.knowledge.max_file_mb * 1024 * 1024)),
        admin.body_limit(limits.admin),
    ]


def http_routes(settings: Settings) -> list[BaseRoute]:
    """Every HTTP route of every face, and the OpenAPI document describing them."""
    routes = [Route("/healthz", healthz, methods=["GET"]), *adp_sse.routes, *adp_stop.routes, *adp_v2_sse.routes, *admin.routes, *adp_cloudapi.routes, *cloudbase.routes, *cloudbase_admin.routes, *im_routes, *knowledge_admin.routes,
              *adp_docparse.routes, *adp_storage.routes(settings.cloud_api.storage_bucket)]
    return [*routes, openapi.route(api_document(settings))]


def api_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of every HTTP route above, from each face's own description."""
    parts = [openapi.paths, console_openapi.paths, adp_openapi.paths(settings.cloud_api.storage_bucket),
             im_openapi.paths, cloudbase_openapi.paths]
    return openapi.document(parts, version=version("parley"))


def settle_garbage_collector() -> None:
    """Moves everything alive after start-up (modules, services, caches: most of the heap) out of
    the collector's sight, and lets the youngest generation grow before it is collected. Under
    load the collector otherwise walked that whole heap again and again: about a tenth of the
    event loop's time in profiles of streaming turns."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


GC_YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) between two collections of the youngest generation (CPython's
default is 700); a turn allocates a few hundred tracked objects."""


class HotPaths:
    """Sends the ADP SSE chat straight to its plain ASGI handler, past Socket.IO's dispatch and
    Starlette's routing and middleware, whose wrappers every streamed event would otherwise
    pass through. Everything else (and any other method on that path) goes to `app`."""

    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != adp_sse.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        await adp_sse.chat_sse_asgi(self.services(), scope, receive, send)  # uvicorn answers 500 to a crash
