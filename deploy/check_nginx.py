"""Runs deploy/nginx/parley.conf in front of two Parley instances on PostgreSQL and Redis, and checks
what the configuration is for. A manual check (it needs nginx installed: `apt-get install nginx`),
not part of the test suite. From the repository root:

    .venv/bin/python deploy/check_nginx.py

It starts the tests' own PostgreSQL and Redis (tests/support), the scripted model, two Parley
processes sharing them, and nginx with the shipped configuration (the upstream `parley:8080`
replaced by the two local instances, `listen 80` by a free port). Then, through nginx:

1. SSE answers stream: the first event of a slow answer arrives long before its last (no buffering);
2. turns are spread over both instances (each instance's /healthz shows its pid and turns in progress);
3. Socket.IO over WebSocket (python-socketio) and over long-polling only (ip_hash keeps a
   client's polling requests on one instance) each answer a turn;
4. the IM subscription WebSocket (`/im/v1/ws`) upgrades.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.test_ws import CONFIG as CLOUD_API, ws_token  # noqa: E402
from tests.support.postgres import Postgres  # noqa: E402
from tests.support.processes import ParleyServer, ScriptedModel, default_config, free_port, start_parley  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

STORY = "Through nginx every event arrives as soon as Parley writes it, not when the answer ends."


def nginx_config(prefix: Path, port: int, instances: list[ParleyServer]) -> Path:
    shipped = (ROOT / "deploy" / "nginx" / "parley.conf").read_text()
    servers = "\n".join(f"    server {s.url.removeprefix('http://')};" for s in instances)
    site = shipped.replace("    server parley:8080;  # with Compose replicas, the name resolves to every replica", servers)
    site = site.replace("    server parley:8080;", servers).replace("listen 80;", f"listen 127.0.0.1:{port};")
    assert "parley:8080" not in site
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"user root;\nworker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n  access_log {prefix}/access.log;\n  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n{site}\n}}\n"
    )
    return conf


def sse_turn(url: str, app_key: str, session: str) -> list[tuple[float, dict]]:
    """(seconds since the request, data) of each event of one ADP SSE turn."""
    body = {"bot_app_key": app_key, "visitor_biz_id": "v-nginx", "session_id": session, "content": "nginx story",
            "incremental": True}
    started, events = time.monotonic(), []
    with httpx.stream("POST", f"{url}/v1/qbot/chat/sse", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append((time.monotonic() - started, json.loads(line[5:])))
    return events


async def socket_turn(url: str, server: ParleyServer, app_key: str, transports: list[str]) -> str:
    """The answer to one turn over ADP's Socket.IO through nginx. Tokens are kept by the instance that
    issued them until the shared bus keeps them: a token refused by the other instance is retried."""
    for _ in range(20):
        client = socketio.AsyncClient(reconnection=False)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def reply(data: dict) -> None:
            payload = data["payload"]
            if payload["is_final"] and not payload["is_from_self"] and not answer.done():
                answer.set_result(payload["content"])

        client.on("reply", reply)
        token = ws_token(ParleyServer(server.process, url, server.data_dir, server.config_file, "", server.log_file),
                         app_key, "v-nginx-socket")
        try:
            await client.connect(url, socketio_path="v1/qbot/chat/conn", transports=transports, auth={"token": token})
        except socketio.exceptions.ConnectionError:
            continue  # issued by the other instance
        try:
            await client.emit("send", {"payload": {"session_id": f"s-sock-{transports[0]}", "content": "nginx story"}})
            return await asyncio.wait_for(answer, 30)
        finally:
            await client.disconnect()
    raise AssertionError("no token was accepted")


def main() -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="parley-nginx-"))
    postgres, redis, model = Postgres(), RedisServer(), ScriptedModel()
    instances: list[ParleyServer] = []
    proxy = None
    try:
        database, bus = postgres.new_database(), redis.new_url()
        for name in ("a", "b"):
            instances.append(start_parley(work / name, default_config(model) + CLOUD_API,
                                          ["--no-demo", "--database-url", database, "--bus-url", bus]))
        app = instances[0].create_app("nginx")
        port = free_port()
        proxy = subprocess.Popen([nginx, "-c", str(nginx_config(work, port, instances)), "-p", str(work)])
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

        model.script("nginx story", content=STORY, chunk_size=2, delay=0.05)  # about 2.3 s
        events = sse_turn(url, app["app_key"], "s-nginx-1")
        first, last = events[0][0], events[-1][0]
        text = "".join(d["payload"]["content"] for _, d in events if d["type"] == "reply" and not d["payload"]["is_from_self"])
        assert text == STORY, text
        print(f"1. SSE through nginx: {len(events)} events, the first after {first:.2f} s, the last after {last:.2f} s")
        assert last - first > 1.5

        busy: dict[int, int] = {}
        threads = [threading.Thread(target=sse_turn, args=(url, app["app_key"], f"s-nginx-{n}")) for n in range(2, 10)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for instance in instances:
                health = httpx.get(f"{instance.url}/healthz").json()
                busy[health["pid"]] = max(busy.get(health["pid"], 0), health["turns_in_progress"])
            time.sleep(0.05)
        print(f"2. 8 SSE turns through nginx; most turns in progress at once, by instance pid: {busy}")
        assert len(busy) == 2 and all(busy.values())

        for transports in (["websocket"], ["polling"]):
            answer = asyncio.run(socket_turn(url, instances[0], app["app_key"], transports))
            assert answer == STORY, answer
            print(f"3. Socket.IO through nginx over {transports[0]}: answered")

        with httpx.Client() as client:
            response = client.get(f"{url}/im/v1/ws", headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        print(f"4. /im/v1/ws through nginx: HTTP {response.status_code} to the upgrade")
        assert response.status_code in (101, 403), response.status_code
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        for instance in instances:
            instance.close()
        model.close()
        redis.close()
        postgres.close()
    print("all checks passed")


if __name__ == "__main__":
    main()
