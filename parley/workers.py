"""`parley serve --workers N`: N server processes on one port, and the process that supervises them.

Each worker is a whole Parley server (its own event loop, services and database pool) listening
on a socket of its own bound with SO_REUSEPORT, so that the kernel spreads new connections
evenly over the workers by hashing each connection's addresses. uvicorn's own `--workers` shares
one listening socket instead: whichever worker wakes first accepts a whole burst of connections,
and they stay with it as long as the client keeps them alive (256 connections opened at once
split 66/190, 85/171 and 147/109 over two workers here, against 123/133, 133/123 and 117/139
with SO_REUSEPORT; docs/deployment.md).

Workers share nothing in memory, so they need a shared database and a shared bus
(`shared_state_missing` refuses N > 1 without them). What must happen once is done by the
supervisor before the workers start: migrations (which also take a database lock, for
instances on several machines), the demo application, the admin token. The supervisor then
replaces a worker that dies, stops everything when a worker fails before it is ready (a
broken configuration fails the same way every time), and on SIGTERM or SIGINT asks every
worker to stop gracefully (turns in progress get `shutdown_grace`) and waits for them.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import signal
import socket
import threading
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any

from sqlalchemy.engine import make_url

from parley.config import Settings

log = logging.getLogger("uvicorn.error")
BACKLOG = 2048


def shared_state_missing(settings: Settings) -> str | None:
    """Why `settings.workers` processes cannot run as one server, or None when they can."""
    missing = []
    if make_url(settings.sqlalchemy_url).get_backend_name() == "sqlite":
        missing.append(
            "a shared database (--database-url postgresql+asyncpg://...): on SQLite each process takes itself "
            "for the database's only writer (it closes every unfinished answer at start-up, keeps a filter of "
            "the sessions in memory and writes records through a thread of its own)"
        )
    if not settings.bus_url:
        missing.append(
            "a shared bus (--bus-url redis://...): without it each process keeps its own turn streams, stop "
            "signals, limits and WebSocket tokens, so a resume, a stop or a token that reaches another worker "
            "finds nothing"
        )
    if not missing:
        return None
    return f"--workers {settings.workers} needs " + ", and ".join(missing) + ". See docs/deployment.md."


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every Parley server process runs uvicorn, one process or N workers."""
    return {
        "log_level": settings.log_level,
        "loop": "uvloop",
        "http": "httptools",
        "ws_max_size": settings.body_limits.websocket,
        "timeout_graceful_shutdown": int(settings.shutdown_grace) + 5,
    }


async def prepare(settings: Settings) -> Any:
    """What the workers must not each do at once: migrate the database and create the demo
    application (when `settings.demo`). Returns the demo application, or None."""
    from parley.demo import ensure_demo
    from parley.engine.apps import ApplicationService
    from parley.models.registry import ModelRegistry
    from parley.store.apps import AppRepository
    from parley.store.database import Database

    database = Database(settings.sqlalchemy_url, settings.database_busy_timeout)
    try:
        await database.migrate()
        if not settings.demo:
            return None
        return await ensure_demo(ApplicationService(AppRepository(database.engine), ModelRegistry(settings).names))
    finally:
        await database.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port) alongside the other workers' (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def serve_worker(settings: Settings, ready: Event) -> None:
    """A worker process: one Parley server on its own SO_REUSEPORT socket; `ready` once it serves."""
    import uvicorn

    from parley.server import build_app

    sock = listening_socket(settings.host, settings.port)
    app = build_app(settings, lambda services, demo: ready.set())
    uvicorn.Server(uvicorn.Config(app, backlog=BACKLOG, **uvicorn_options(settings))).run(sockets=[sock])


@dataclass
class Worker:
    process: SpawnProcess
    ready: Event


class Supervisor:
    """Runs `settings.workers` worker processes until asked to stop; `run` returns the exit code."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn.config

        logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # the workers' log format
        log.setLevel(settings.log_level.upper())
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")  # a fresh interpreter: no event loop or pool inherited
        self.stopping = threading.Event()
        self.workers: list[Worker] = []

    def start_worker(self) -> Worker:
        ready = self.context.Event()
        process = self.context.Process(target=serve_worker, args=(self.settings, ready), name="parley-worker")
        process.start()
        log.info("Started worker process [%d]", process.pid)
        return Worker(process, ready)

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.workers = [self.start_worker() for _ in range(self.settings.workers)]
        failed = False
        while not self.stopping.wait(0.5):
            for index, worker in enumerate(self.workers):
                if worker.process.is_alive():
                    continue
                pid, code = worker.process.pid, worker.process.exitcode
                if not worker.ready.is_set():
                    log.error("Worker process [%s] exited with code %s before it was ready: stopping", pid, code)
                    failed = True
                    self.stopping.set()
                    break
                log.warning("Worker process [%s] exited with code %s; starting another", pid, code)
                self.workers[index] = self.start_worker()
        self.stop()
        return 1 if failed else 0

    def stop(self) -> None:
        """Asks every worker to stop (uvicorn's graceful shutdown) and waits for them."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join()
            log.info("Worker process [%s] stopped", worker.process.pid)

