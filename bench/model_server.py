"""A scripted OpenAI-compatible model server built for load.

Raw asyncio (uvloop when installed) with a minimal HTTP/1.1 parser: keep-alive, chunked
transfer encoding, and every SSE chunk of an answer built once per scenario and reused,
so a stream costs a timer and a socket write per token and nothing else. The request's
`model` field picks the behaviour (see bench/scenario.py), so one server serves every
scenario of a run.

    python -m bench.model_server --port 9100

Routes: `POST /v1/chat/completions` (streaming, with `stream_options.include_usage`, and
not streaming), `GET /v1/models`, `GET /_stats` (requests, open and peak streams).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.scenario import Scenario, parse, reasoning_token, token

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)
except ImportError:  # pragma: no cover - orjson is a Parley dependency
    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.streams = 0
        self.open_streams = 0
        self.peak_streams = 0
        self.aborted_streams = 0
        self.connections = 0
        self.open_connections = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


stats = Stats()


def _chunk(data: bytes) -> bytes:
    """One piece of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


class Answer:
    """Every byte of one scenario's answer, built once and reused by every request."""

    def __init__(self, model: str, scenario: Scenario, include_usage: bool) -> None:
        self.scenario = scenario
        created = int(time.time())
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        pieces: list[bytes] = []
        for i in range(scenario.reasoning):
            delta: dict[str, Any] = {"reasoning_content": reasoning_token(i)}
            if i == 0:
                delta = {"role": "assistant", "content": "", **delta}
            pieces.append(chunk(delta))
        for i in range(scenario.sent_tokens):
            delta = {"content": token(i)}
            if i == 0 and scenario.reasoning == 0:
                delta = {"role": "assistant", **delta}
            pieces.append(chunk(delta))
        tail = chunk({}, "stop")
        completion_tokens = scenario.sent_tokens + scenario.reasoning
        usage = {
            "prompt_tokens": scenario.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": scenario.prompt_tokens + completion_tokens,
        }
        if include_usage:
            tail += _sse({**base, "choices": [], "usage": usage})
        tail += b"data: [DONE]\n\n"
        if not pieces:
            pieces.append(b"")
        pieces[-1] += tail
        # The end of the body goes out with the last piece, in the same write.
        self.frames = [_chunk(p) for p in pieces]
        self.frames[-1] += b"0\r\n\r\n"
        self.delay = scenario.delay_ms / 1000
        self.ttft = scenario.ttft_ms / 1000

        text = "".join(token(i) for i in range(scenario.sent_tokens))
        reasoning = "".join(reasoning_token(i) for i in range(scenario.reasoning))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning:
            message["reasoning_content"] = reasoning
        self.whole = _dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage,
            }
        )


_answers: dict[tuple[str, bool], Answer] = {}


def answer_for(model: str, include_usage: bool) -> Answer:
    key = (model, include_usage)
    found = _answers.get(key)
    if found is None:
        if len(_answers) > 1000:
            _answers.clear()
        found = _answers[key] = Answer(model, parse(model), include_usage)
    return found


def _head(status: str, content_type: bytes, keep_alive: bool, length: int | None) -> bytes:
    lines = [b"HTTP/1.1 " + status.encode(), b"Content-Type: " + content_type, b"Server: bench-model"]
    if length is None:
        lines += [b"Cache-Control: no-cache", b"Transfer-Encoding: chunked"]
    else:
        lines.append(b"Content-Length: %d" % length)
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


_STREAM_HEAD = {ka: _head("200 OK", b"text/event-stream", ka, None) for ka in (True, False)}


class Connection(asyncio.Protocol):
    """One client connection: parses requests one after another and answers them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False  # a streamed answer is going out; later requests wait in the buffer
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        stats.connections += 1
        stats.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        stats.open_connections -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            stats.open_streams -= 1
            stats.aborted_streams += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next_request()

    # --- requests ---------------------------------------------------------
    def _next_request(self) -> None:
        while not self.busy and not self.closed:
            buffer = self.buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._reply_and_close("431 Request Header Fields Too Large", b'{"error":"head too large"}')
                return
            lines = bytes(buffer[:end]).split(b"\r\n")
            try:
                method, target, version = lines[0].split(b" ", 2)
            except ValueError:
                self._reply_and_close("400 Bad Request", b'{"error":"bad request line"}')
                return
            length = 0
            connection = b""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or 0)
                elif name == b"connection":
                    connection = value.strip().lower()
                elif name == b"transfer-encoding":
                    self._reply_and_close("411 Length Required", b'{"error":"send Content-Length"}')
                    return
            if length > MAX_BODY:
                self._reply_and_close("413 Payload Too Large", b'{"error":"body too large"}')
                return
            start = end + 4
            if len(buffer) < start + length:
                return
            body = bytes(buffer[start : start + length])
            del buffer[: start + length]
            if version == b"HTTP/1.1":
                keep_alive = connection != b"close"
            else:
                keep_alive = connection == b"keep-alive"
            stats.requests += 1
            self._dispatch(method, target.split(b"?", 1)[0], body, keep_alive)

    def _dispatch(self, method: bytes, path: bytes, body: bytes, keep_alive: bool) -> None:
        if path == b"/v1/chat/completions" and method == b"POST":
            self._completions(body, keep_alive)
        elif path in (b"/v1/models", b"/models") and method == b"GET":
            models = {"object": "list", "data": [{"id": "bench", "object": "model", "created": 0, "owned_by": "bench"}]}
            self._reply("200 OK", _dumps(models), keep_alive)
        elif path == b"/_stats":
            self._reply("200 OK", _dumps(stats.as_dict()), keep_alive)
        elif path in (b"/health", b"/"):
            self._reply("200 OK", b'{"status":"ok"}', keep_alive)
        else:
            self._reply("404 Not Found", b'{"error":{"message":"not found"}}', keep_alive)

    def _completions(self, body: bytes, keep_alive: bool) -> None:
        try:
            request = _loads(body)
            model = str(request.get("model") or "bench")
        except (ValueError, AttributeError):
            self._reply("400 Bad Request", b'{"error":{"message":"body is not a JSON object"}}', keep_alive)
            return
        options = request.get("stream_options") or {}
        include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
        answer = answer_for(model, include_usage)
        if not request.get("stream"):
            self._delayed_reply(answer, keep_alive)
            return
        self.busy = True
        stats.streams += 1
        stats.open_streams += 1
        stats.peak_streams = max(stats.peak_streams, stats.open_streams)
        assert self.transport is not None
        self.transport.write(_STREAM_HEAD[keep_alive])  # headers at once, as real servers do
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(answer.ttft, self._send, answer, 0, keep_alive)

    def _send(self, answer: Answer, index: int, keep_alive: bool) -> None:
        if self.closed:
            return
        assert self.transport is not None
        self.transport.write(answer.frames[index])
        index += 1
        if index < len(answer.frames):
            self.timer = asyncio.get_running_loop().call_later(answer.delay, self._send, answer, index, keep_alive)
            return
        self.timer = None
        stats.open_streams -= 1
        self.busy = False
        if not keep_alive:
            self.transport.close()
        elif self.buffer:
            self._next_request()

    def _delayed_reply(self, answer: Answer, keep_alive: bool) -> None:
        self.busy = True
        wait = answer.scenario.seconds

        def send() -> None:
            self.busy = False
            if not self.closed:
                self._reply("200 OK", answer.whole, keep_alive)
                if self.buffer:
                    self._next_request()

        asyncio.get_running_loop().call_later(wait, send)

    def _reply(self, status: str, body: bytes, keep_alive: bool) -> None:
        assert self.transport is not None
        self.transport.write(_head(status, b"application/json", keep_alive, len(body)) + body)
        if not keep_alive:
            self.transport.close()
            self.closed = True

    def _reply_and_close(self, status: str, body: bytes) -> None:
        self._reply(status, body, False)


async def serve(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Connection, host, port, backlog=4096, reuse_address=True)
    print(f"bench model server on http://{host}:{port}", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def raise_fd_limit() -> None:
    """Lifts the soft open-file limit to the hard one: thousands of streams need sockets."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    raise_fd_limit()
    install_uvloop()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
