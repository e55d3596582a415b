"""A scripted OpenAI-compatible chat server, the only stand-in the tests use.

Run as its own process (`python -m tests.support.scripted_model --port N`) and spoken to
over real HTTP. Tests steer it through /_control:

- POST /_control/scripts {"match": "text", "script": {...}}: a request whose last user
  message contains `match` follows `script` (the newest matching rule wins);
- GET /_control/stats: calls, concurrent and peak concurrent streams, streams the client
  closed early, and the last requests' bodies;
- POST /_control/reset: forgets rules and statistics.

A script: `content` (a string, or a list of chunks), `chunk_size` (characters per chunk
when `content` is a string, default 3), `reasoning` (same forms; sent as
`reasoning_content`), `think_tags` (send the reasoning inside the text as <think>...),
`ttft` and `delay` (seconds before the first and between chunks), `usage`
({"prompt_tokens", "completion_tokens"}; default: counted in words), `status` (answer
this HTTP status instead), `drop_after` (close the connection after N chunks),
`hang_after` (stop sending after N chunks, keeping the connection open), `finish`
(false: end without a finish reason).
Without a matching rule the answer is "Echo: " + the last user message.

A vision model: `image_url` parts (data URLs) in the last user message are decoded, and
"Saw N images: <size> bytes sha256 <hex>; ..." is put before the answer, so a test can tell
which bytes reached the model. GET /_control/stats lists them under `images` too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rules: list[tuple[str, dict[str, Any]]] = []
        self.calls = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.closed_early = 0
        self.completed = 0
        self.requests: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []

    def script_for(self, body: dict[str, Any]) -> dict[str, Any]:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        last = users[-1]["content"] if users else ""
        if isinstance(last, list):  # content parts
            last = " ".join(p.get("text", "") for p in last if isinstance(p, dict))
        for match, script in reversed(self.rules):
            if match in last:
                return script
        return {"content": "Echo: " + last}


state = State()


def _chunks(value: Any, size: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [value[i : i + size] for i in range(0, len(value), size)] if value else []


def _words(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


def images_seen(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The images of the last user message: their type, size and sha256, from the bytes received."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    parts = users[-1]["content"] if users and isinstance(users[-1]["content"], list) else []
    seen = []
    for part in parts:
        url = part.get("image_url", {}).get("url", "") if part.get("type") == "image_url" else ""
        if url.startswith("data:") and ";base64," in url:
            mime, data = url[5:].split(";base64,", 1)
            raw = base64.b64decode(data)
            seen.append({"mime": mime, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
    return seen


def _without_images(body: dict[str, Any]) -> dict[str, Any]:
    """The request as kept for the stats: image data replaced by its size (they can be large)."""
    messages = []
    for m in body.get("messages", []):
        if isinstance(m.get("content"), list):
            m = {**m, "content": [
                {"type": "image_url", "image_url": {"url": f"<{len(p['image_url']['url'])} characters>"}}
                if p.get("type") == "image_url" else p for p in m["content"]
            ]}
        messages.append(m)
    return {**body, "messages": messages}


async def completions(request: Request) -> Response:
    body = await request.json()
    state.calls += 1
    images = images_seen(body)
    state.images.extend(images)
    body = _without_images(body)
    state.requests.append(body)
    del state.requests[:-50]
    script = state.script_for(body)
    if images:
        seen = "; ".join(f"{i['size']} bytes sha256 {i['sha256']}" for i in images)
        text = script.get("content", "")
        text = "".join(text) if isinstance(text, list) else text
        script = {**script, "content": f"Saw {len(images)} images: {seen}. {text}"}
    if "status" in script:
        return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, status_code=script["status"])
    size = int(script.get("chunk_size", 3))
    reasoning = _chunks(script.get("reasoning"), size)
    content = _chunks(script.get("content", ""), size)
    if script.get("think_tags") and reasoning:
        content = ["<think>", *reasoning, "</think>\n", *content]
        reasoning = []
    model = body.get("model", "scripted")
    created = int(time.time())
    usage = script.get("usage") or {
        "prompt_tokens": _words(body.get("messages", [])),
        "completion_tokens": len("".join(content).split()) + len("".join(reasoning).split()),
    }
    usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}

    if not body.get("stream"):
        text = "".join(content)
        return JSONResponse(
            {
                "id": "chatcmpl-scripted", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {
            "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra,
        }
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

    async def stream():
        state.concurrent += 1
        state.max_concurrent = max(state.max_concurrent, state.concurrent)
        finished = False
        try:
            await asyncio.sleep(float(script.get("ttft", 0)))
            sent = 0
            pieces = [("reasoning_content", r) for r in reasoning] + [("content", c) for c in content]
            yield frame({"role": "assistant", "content": ""})
            for index, (key, piece) in enumerate(pieces):
                if index and script.get("delay"):
                    await asyncio.sleep(float(script["delay"]))
                if "drop_after" in script and sent >= int(script["drop_after"]):
                    raise ConnectionAbortedError("scripted drop")
                if "hang_after" in script and sent >= int(script["hang_after"]):
                    await asyncio.sleep(3600)
                yield frame({key: piece})
                sent += 1
            if script.get("finish", True):
                yield frame({}, "stop")
                if body.get("stream_options", {}).get("include_usage"):
                    data = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": usage}
                    yield b"data: " + json.dumps(data).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
            finished = True
            state.completed += 1
        finally:
            state.concurrent -= 1
            if not finished and "drop_after" not in script:
                state.closed_early += 1

    return StreamingResponse(stream(), media_type="text/event-stream")


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})


async def add_script(request: Request) -> Response:
    body = await request.json()
    state.rules.append((body["match"], body["script"]))
    return JSONResponse({"rules": len(state.rules)})


async def stats(request: Request) -> Response:
    return JSONResponse(
        {
            "calls": state.calls, "concurrent": state.concurrent, "max_concurrent": state.max_concurrent,
            "closed_early": state.closed_early, "completed": state.completed, "requests": state.requests,
            "images": state.images,
        }
    )


async def reset(request: Request) -> Response:
    state.reset()
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/_control/scripts", add_script, methods=["POST"]),
        Route("/_control/stats", stats, methods=["GET"]),
        Route("/_control/reset", reset, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
