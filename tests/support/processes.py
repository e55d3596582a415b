"""Starting the scripted model server and Parley itself as real processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ScriptedModel:
    """The scripted OpenAI-compatible server, in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.scripted_model", "--port", str(self.port)], cwd=ROOT
        )
        wait_until_up(f"{self.url}/v1/models", self.process)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, match: str, **script: Any) -> None:
        httpx.post(f"{self.url}/_control/scripts", json={"match": match, "script": script}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_control/stats").json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_control/reset").raise_for_status()

    def close(self) -> None:
        stop(self.process)


@dataclass
class ParleyServer:
    """A running `parley serve` process and what the tests need to drive it."""

    process: subprocess.Popen
    url: str
    data_dir: Path
    config_file: Path
    admin_token: str
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    """Given with `--database-url`; None: SQLite in the data directory."""

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=self.admin_headers, timeout=30, **kwargs)

    def create_app(self, name: str, publish: bool = True, **config: Any) -> dict[str, Any]:
        """Creates (or replaces) an application through the admin API; returns its JSON."""
        response = self.admin("POST", "/admin/apps" + ("?publish=1" if publish else ""), json={"name": name, **config})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def records(self, app: str, session_id: str, face: str = "adp") -> list[dict[str, Any]]:
        response = self.admin("GET", f"/admin/apps/{app}/sessions/{session_id}/records", params={"face": face})
        response.raise_for_status()
        return response.json()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def close(self) -> None:
        stop(self.process)


def default_config(model: ScriptedModel) -> str:
    """Settings pointing Parley at the scripted model under several names."""
    base = model.base_url
    return f"""
default_model = "scripted"
local_model = false
keepalive_interval = 0.3
turn_retention = 30

[[models]]
name = "scripted"
base_url = "{base}"
model = "scripted"
input_len_limit = 200
role_len_limit = 100
context_window = 4096

[[models]]
name = "Deepseek/deepseek-r1-0528"
base_url = "{base}"
model = "deepseek-r1"
reasoning = true
input_len_limit = 8000
role_len_limit = 4000

[[models]]
name = "scripted-fast-timeout"
base_url = "{base}"
model = "scripted"
first_token_timeout = 1.0
idle_timeout = 1.0
"""


def start_parley(tmp: Path, config_text: str, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> ParleyServer:
    tmp.mkdir(parents=True, exist_ok=True)
    config_file = tmp / "parley.toml"
    config_file.write_text(config_text)
    data_dir = tmp / "data"
    port = free_port()
    token = "test-admin-token"
    log_file = tmp / "parley.log"
    args = extra_args or []
    database_url = args[args.index("--database-url") + 1] if "--database-url" in args else None
    full_env = {**os.environ, "PARLEY_ADMIN_TOKEN": token, **(env or {})}
    if database_url is not None:  # CLI commands run with `env` work on the server's database
        full_env["PARLEY_DATABASE_URL"] = database_url
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--config", str(config_file), "--data-dir", str(data_dir),
             "--port", str(port), *(extra_args or ["--no-demo"])],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=full_env,
        )
    server = ParleyServer(process, f"http://127.0.0.1:{port}", data_dir, config_file, token, log_file, full_env, database_url)
    try:
        wait_until_up(f"{server.url}/healthz", process, timeout=120)
    except Exception:
        print(server.log())
        server.close()
        raise
    return server
