"""The load generator: drives one arm with streamed chat turns and writes what it saw as JSON.

It runs in its own process, on raw asyncio (uvloop when installed) with a small HTTP/1.1
client, so that it costs as little CPU as possible on a machine it shares with the
servers it measures. Each virtual user owns one keep-alive connection and asks one turn
after another on it.

Two request kinds:

- `openai`: `POST /v1/chat/completions` with `stream: true` (the direct and LiteLLM arms);
  content is the first non-empty `choices[0].delta.content`.
- `adp`: `POST /v1/qbot/chat/sse` with `incremental: true, streaming_throttle: 1`, so that
  every token is a packet (the Parley arm); content is the first `reply` that is not the
  echo of the question.

Per turn it records the time to the first content byte, the delays between content
packets, the total time, and errors (an HTTP status other than 200, an error event, an
answer shorter than the script's, a broken connection, a timeout).

Modes:

    python -m bench.loadgen --kind openai --url http://127.0.0.1:9100 --model SPEC \
        --concurrency 64 --duration 20 --warmup 2 --out result.json
    python -m bench.loadgen --kind adp --url http://127.0.0.1:8080 --app-key KEY --model SPEC \
        --open 2000 --rate 1000 --window 20 --out result.json

The second holds N long streams open: it prints `READY <open> <failed>` on stdout once
every stream has its first content byte (so the harness can sample the server's memory),
measures the inter-packet delay for `--window` seconds, then closes every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.scenario import answer as expected_answer
from bench.scenario import parse as parse_scenario

try:
    from orjson import dumps as _dumps
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a Parley dependency
    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    _loads = json.loads

now = time.perf_counter


class ProtocolError(Exception):
    """The server answered something that is not HTTP/1.1 as this client reads it."""


# --------------------------------------------------------------------------- HTTP/1.1 client

class Connection(asyncio.Protocol):
    """One keep-alive client connection; one request at a time.

    The body (chunked, sized or up to close) is handed to `sink(data, t)` as it arrives,
    `t` being the time the bytes were read, which is what the client experiences.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.buffer = bytearray()
        self.status = 0
        self.head_done = False
        self.chunked = False
        self.remaining = -1  # bytes of a sized body still due; -1 = until close
        self.chunk_left = 0  # bytes of the current chunk still due (+2 for its CRLF)
        self.keep_alive = True
        self.done: asyncio.Future[int] | None = None
        self.sink: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        if self.done is not None and not self.done.done():
            if self.head_done and not self.chunked and self.remaining < 0:
                self.done.set_result(self.status)  # a body delimited by the close
            else:
                self.done.set_exception(ConnectionError("connection closed mid-response"))

    def request(self, data: bytes, sink: Any) -> asyncio.Future[int]:
        """Sends one request; the future gives the status once the whole body is in."""
        self._reset()
        self.sink = sink
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.done

    def data_received(self, data: bytes) -> None:
        t = now()
        if self.done is None or self.done.done():
            return  # nothing is expected; ignore stray bytes
        try:
            self._feed(data, t)
        except Exception as exc:  # a malformed answer fails the turn, not the client
            if not self.done.done():
                self.done.set_exception(ProtocolError(str(exc)))
            self.abort()

    def _feed(self, data: bytes, t: float) -> None:
        if not self.head_done:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(self.buffer[:end]))
            data = bytes(self.buffer[end + 4 :])
            self.buffer = bytearray()
            self.head_done = True
        if self.chunked:
            self._feed_chunked(data, t)
        elif self.remaining >= 0:
            piece = data[: self.remaining]
            self.remaining -= len(piece)
            if piece:
                self.sink(piece, t)
            if self.remaining == 0:
                self._finish()
        elif data:
            self.sink(data, t)

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(parts[1])
        self.keep_alive = parts[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value:
                self.chunked = True
            elif name == b"content-length":
                self.remaining = int(value)
            elif name == b"connection":
                self.keep_alive = value != b"close" if self.keep_alive else value == b"keep-alive"
        if self.chunked:
            self.remaining = -1
        if not self.chunked and self.remaining < 0 and self.keep_alive:
            self.remaining = 0 if self.status in (204, 304) else -1

    def _feed_chunked(self, data: bytes, t: float) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        pos = 0
        size = len(buffer)
        while True:
            if self.chunk_left > 0:
                take = min(self.chunk_left, size - pos)
                if take <= 0:
                    break
                out.append(bytes(buffer[pos : pos + take]))
                pos += take
                self.chunk_left -= take
                if self.chunk_left > 0:
                    break
                self.chunk_left = -2  # the CRLF after the chunk's data
                continue
            if self.chunk_left == -2:
                if size - pos < 2:
                    break
                pos += 2
                self.chunk_left = 0
                continue
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                break
            length = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
            if length == 0:
                trailer_end = buffer.find(b"\r\n", line_end + 2)
                if trailer_end < 0:
                    break
                pos = trailer_end + 2
                del buffer[:pos]
                data_out = b"".join(out)
                if data_out:
                    self.sink(data_out, t)
                self._finish()
                return
            pos = line_end + 2
            self.chunk_left = length
        del buffer[:pos]
        if out:
            self.sink(b"".join(out), t)

    def _finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.status)
        if not self.keep_alive:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()


# --------------------------------------------------------------------------- one turn

@dataclass
class Turn:
    """What one turn looked like from the client."""

    sent: float = 0.0
    first: float = 0.0  # time of the first content byte (0: none)
    last: float = 0.0  # time of the latest content packet
    finished: float = 0.0
    packets: int = 0
    chars: int = 0
    gaps: list[float] = field(default_factory=list)
    error: str | None = None
    done: bool = False  # the protocol's terminal event arrived

    def content(self, t: float, text: str) -> None:
        if not text:
            return
        if self.first == 0.0:
            self.first = t
        else:
            self.gaps.append(t - self.last)
        self.last = t
        self.packets += 1
        self.chars += len(text)


class SseReader:
    """Splits an event stream into events and hands each to `on_event(fields, t)`."""

    def __init__(self, turn: Turn, kind: str) -> None:
        self.turn = turn
        self.kind = kind
        self.pending = b""
        self.raw_error = b""

    def __call__(self, data: bytes, t: float) -> None:
        if self.pending:
            data = self.pending + data
        events = data.split(b"\n\n")
        self.pending = events.pop()
        for event in events:
            self._event(event, t)

    def _event(self, event: bytes, t: float) -> None:
        name = b""
        payload = b""
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].strip() if not payload else payload + b"\n" + line[5:].strip()
            elif line.startswith(b"event:"):
                name = line[6:].strip()
        if not payload:
            return
        if self.kind == "openai":
            self._openai(payload, t)
        else:
            self._adp(name, payload, t)

    def _openai(self, payload: bytes, t: float) -> None:
        turn = self.turn
        if payload == b"[DONE]":
            turn.done = True
            return
        try:
            data = _loads(payload)
        except ValueError:
            turn.error = turn.error or "bad_json"
            return
        if "error" in data and data["error"]:
            turn.error = turn.error or "error_event"
            return
        choices = data.get("choices") or ()
        if choices:
            delta = choices[0].get("delta") or {}
            text = delta.get("content")
            if text:
                turn.content(t, text)

    def _adp(self, name: bytes, payload: bytes, t: float) -> None:
        turn = self.turn
        if name == b"reply":
            data = _loads(payload)["payload"]
            if data.get("is_from_self"):
                return
            turn.content(t, data.get("content") or "")
            if data.get("is_final"):
                turn.done = True
        elif name == b"error":
            turn.error = turn.error or "error_event"


class Target:
    """Builds the request bytes of one arm."""

    def __init__(self, args: argparse.Namespace) -> None:
        parts = urlsplit(args.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.kind = args.kind
        self.model = args.model
        self.app_key = args.app_key
        self.reuse = args.reuse
        self.expected_chars = len(expected_answer(parse_scenario(args.model)))
        if self.kind == "openai":
            self.path = (parts.path.rstrip("/") or "") + "/v1/chat/completions"
        else:
            self.path = (parts.path.rstrip("/") or "") + "/v1/qbot/chat/sse"
        self.head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {args.api_key}\r\n"
        ).encode()

    def request(self, user: int, number: int, session: str) -> bytes:
        question = f"Question {number} from user {user}: what is new?"
        if self.kind == "openai":
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": question}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        else:
            body = {
                "bot_app_key": self.app_key,
                "visitor_biz_id": f"visitor-{user}",
                "session_id": session,
                "request_id": f"r{user}-{number}",
                "content": question,
                "incremental": True,
                "streaming_throttle": 1,
                "model_name": self.model,
            }
        data = _dumps(body)
        return self.head + b"Content-Length: %d\r\n\r\n" % len(data) + data


async def connect(target: Target) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(Connection, target.host, target.port)
    return protocol


async def run_turn(conn: Connection, target: Target, data: bytes, timeout: float) -> Turn:
    turn = Turn()
    reader = SseReader(turn, target.kind)
    turn.sent = now()
    try:
        status = await asyncio.wait_for(conn.request(data, reader), timeout)
    except asyncio.TimeoutError:
        turn.error = "timeout"
        conn.abort()
        status = 0
    except (ConnectionError, ProtocolError, OSError) as exc:
        turn.error = "connection" if isinstance(exc, (ConnectionError, OSError)) else "protocol"
        status = 0
    turn.finished = now()
    if turn.error is None:
        if status != 200:
            turn.error = f"http_{status}"
        elif not turn.done:
            turn.error = "no_terminal_event"
        elif turn.chars < target.expected_chars:
            turn.error = "short_answer"
    return turn


# --------------------------------------------------------------------------- statistics

def summary(values: array | list[float], scale: float = 1000.0) -> dict[str, float | int]:
    """Percentiles (nearest rank) in milliseconds."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    n = len(ordered)

    def pct(p: float) -> float:
        return round(ordered[min(n - 1, max(0, int(p / 100 * n + 0.5) - 1))] * scale, 3)

    return {
        "n": n,
        "mean": round(sum(ordered) / n * scale, 3),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": round(ordered[-1] * scale, 3),
    }


def bunched(gaps: array | list[float]) -> float | None:
    """Percent of gaps under 1 ms: packets that reached the client together, in one burst,
    although the model sent them apart. Smooth streaming keeps this near zero."""
    if not gaps:
        return None
    return round(100 * sum(1 for g in gaps if g < 0.001) / len(gaps), 2)


class Recorder:
    def __init__(self) -> None:
        self.ttfb = array("d")
        self.gaps = array("d")
        self.totals = array("d")
        self.packets = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()

    def add(self, turn: Turn) -> None:
        if turn.error:
            self.errors[turn.error] += 1
            return
        self.ok += 1
        self.ttfb.append(turn.first - turn.sent)
        self.gaps.extend(turn.gaps)
        self.totals.append(turn.finished - turn.sent)
        self.packets += turn.packets


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- fixed concurrency

async def fixed_concurrency(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    recorder = Recorder()
    started = now()
    measure_from = started + args.warmup
    deadline = measure_from + args.duration if args.duration else float("inf")
    counter = {"turns": 0}
    completed_in_window = 0
    rng = random.Random(7)

    async def user(index: int) -> None:
        nonlocal completed_in_window
        conn: Connection | None = None
        own_session = f"s{index}-{uuid.uuid4().hex[:12]}"
        number = 0
        while True:
            if now() >= deadline:
                break
            if args.turns and counter["turns"] >= args.turns:
                break
            counter["turns"] += 1
            number += 1
            if conn is None or conn.closed:
                try:
                    conn = await asyncio.wait_for(connect(target), args.timeout)
                except (OSError, asyncio.TimeoutError):
                    if now() >= measure_from:
                        recorder.errors["connect"] += 1
                    await asyncio.sleep(0.05)
                    conn = None
                    continue
            session = own_session if rng.random() < args.reuse else uuid.uuid4().hex[:32]
            turn = await run_turn(conn, target, target.request(index, number, session), args.timeout)
            # A turn counts once it ends after the warm-up, whenever it began: a slow arm's
            # first turns would otherwise never count. Turns per second counts those that
            # ended inside the window; latency also takes those that ended in the drain.
            if turn.finished >= measure_from:
                recorder.add(turn)
                if turn.finished <= deadline and turn.error is None:
                    completed_in_window += 1
        if conn is not None:
            conn.abort()

    cpu_start = cpu_seconds()
    users = [asyncio.create_task(user(i)) for i in range(args.concurrency)]
    await asyncio.gather(*users)
    ended = now()
    window_end = min(ended, deadline)
    window = max(window_end - measure_from, 1e-9)
    return {
        "mode": "turns",
        "kind": target.kind,
        "model": target.model,
        "concurrency": args.concurrency,
        "warmup_s": args.warmup,
        "duration_s": round(window, 3),
        "turns_ok": recorder.ok,
        "errors": dict(recorder.errors),
        "error_count": sum(recorder.errors.values()),
        "turns_per_s": round(completed_in_window / window, 2),
        "ttfb_ms": summary(recorder.ttfb),
        "gap_ms": summary(recorder.gaps),
        "bunched_pct": bunched(recorder.gaps),
        "total_ms": summary(recorder.totals),
        "packets_per_turn": round(recorder.packets / recorder.ok, 2) if recorder.ok else 0,
        "client_cpu_s": round(cpu_seconds() - cpu_start, 3),
    }


# --------------------------------------------------------------------------- open streams

async def open_streams(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """Holds `--open` streams at once and measures the inter-packet delay while all are open."""
    count = args.open
    turns: list[Turn] = []
    conns: list[Connection] = []
    first_bytes = 0
    failed = 0
    all_open = asyncio.get_running_loop().create_future()

    def settled() -> None:
        if first_bytes + failed >= count and not all_open.done():
            all_open.set_result(None)

    async def stream(index: int) -> None:
        nonlocal first_bytes, failed
        turn = Turn()
        turns.append(turn)
        try:
            conn = await asyncio.wait_for(connect(target), args.timeout)
        except (OSError, asyncio.TimeoutError):
            turn.error = "connect"
            failed += 1
            settled()
            return
        conns.append(conn)
        reader = SseReader(turn, target.kind)
        counted = False

        def sink(data: bytes, t: float) -> None:
            nonlocal counted, first_bytes
            reader(data, t)
            if turn.first and not counted:
                counted = True
                first_bytes += 1
                settled()

        turn.sent = now()
        try:
            status = await conn.request(target.request(index, 1, uuid.uuid4().hex[:32]), sink)
            if status != 200:
                turn.error = f"http_{status}"
            elif turn.error is None and not turn.done:
                turn.error = "no_terminal_event"
        except (ConnectionError, ProtocolError, OSError):
            turn.error = turn.error or "connection"
        except asyncio.CancelledError:
            return
        turn.finished = now()
        if not counted:
            failed += 1
            settled()

    cpu_start = cpu_seconds()
    started = now()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(stream(i)))
        if args.rate and (i + 1) % max(1, int(args.rate / 100)) == 0:
            # open at about `rate` streams a second, in small bursts
            target_time = started + (i + 1) / args.rate
            delay = target_time - now()
            if delay > 0:
                await asyncio.sleep(delay)
    try:
        # the server may admit streams more slowly than they are opened: wait for it
        await asyncio.wait_for(all_open, args.timeout + count / min(max(args.rate, 1), 100))
    except asyncio.TimeoutError:
        pass
    ready = now()
    opened = first_bytes
    print(f"READY {opened} {count - opened}", flush=True)
    await asyncio.sleep(args.window)
    window_end = now()
    gaps = array("d")
    ttfb = array("d")
    ended_early = 0
    for turn in turns:
        if turn.first:
            ttfb.append(turn.first - turn.sent)
        if turn.finished and turn.finished <= window_end:
            ended_early += 1
        # the turn's gaps whose packets arrived inside the window
        if turn.gaps:
            t = turn.last
            for gap in reversed(turn.gaps):
                if t <= window_end and t - gap >= ready:
                    gaps.append(gap)
                t -= gap
    errors = Counter(turn.error for turn in turns if turn.error)
    for task in tasks:
        task.cancel()
    for conn in conns:
        conn.abort()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "mode": "open",
        "kind": target.kind,
        "model": target.model,
        "streams": count,
        "opened": opened,
        "failed": count - opened,
        "ended_early": ended_early,
        "errors": dict(errors),
        "ramp_s": round(ready - started, 3),
        "window_s": round(window_end - ready, 3),
        "ttfb_ms": summary(ttfb),
        "gap_ms": summary(gaps),
        "bunched_pct": bunched(gaps),
        "client_cpu_s": round(cpu_seconds() - cpu_start, 3),
    }


# --------------------------------------------------------------------------- entry point

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["openai", "adp"], required=True)
    parser.add_argument("--url", required=True, help="the arm's base URL, e.g. http://127.0.0.1:9100")
    parser.add_argument("--model", required=True, help="a bench scenario spec (bench/scenario.py)")
    parser.add_argument("--api-key", default="sk-bench", help="the bearer token (openai only; LiteLLM's master key)")
    parser.add_argument("--app-key", default="", help="the ADP application's AppKey (adp only)")
    parser.add_argument("--reuse", type=float, default=0.1, help="fraction of ADP turns that reuse the user's session")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--turns", type=int, default=0, help="stop after this many turns (0: no limit)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to measure (0: no limit)")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds before measuring starts")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one turn may take")
    parser.add_argument("--open", type=int, default=0, help="hold this many streams open instead")
    parser.add_argument("--rate", type=float, default=1000.0, help="streams opened per second (open mode)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured with every stream open")
    parser.add_argument("--out", default="-", help="where the JSON goes (default stdout)")
    args = parser.parse_args(argv)
    if not args.open and not args.turns and not args.duration:
        parser.error("give --turns, --duration or --open")
    return args


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    target = Target(args)
    if args.open:
        return await open_streams(args, target)
    return await fixed_concurrency(args, target)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from bench.model_server import install_uvloop, raise_fd_limit

    raise_fd_limit()
    install_uvloop()
    result = asyncio.run(_main(args))
    text = json.dumps(result, indent=2)
    if args.out == "-":
        print(text, flush=True)
    else:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
