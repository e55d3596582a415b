"""CloudBase server-sent event streams: heartbeats on a fixed beat, whatever the answer does.

CloudBase's function framework writes `: heartbeat` every 3 s from the start of a stream;
Parley does the same (`[cloudbase] heartbeat_interval`), starting with one at once, so
bytes flow from the moment a stream is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from parley.faces.cloudbase.render import HEARTBEAT

_END = object()
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


async def with_heartbeats(source: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """`source`'s frames, with a heartbeat first and then every `interval` seconds.

    One task of its own drives `source` from start to end (so timeouts and cancel scopes
    inside it stay in one task); the response reads its frames from a queue.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for frame in source:
                queue.put_nowait(frame)
        finally:
            queue.put_nowait(_END)

    producer = asyncio.create_task(produce())
    loop = asyncio.get_running_loop()
    try:
        yield HEARTBEAT
        next_beat = loop.time() + interval
        while True:
            remaining = next_beat - loop.time()
            if remaining <= 0:
                yield HEARTBEAT
                next_beat += interval
                if next_beat <= loop.time():
                    next_beat = loop.time() + interval
                continue
            try:
                frame = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                continue
            if frame is _END:
                break
            yield frame
        await producer  # surfaces an error of the source, if any
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer


def event_stream(frames: AsyncIterator[bytes], interval: float) -> StreamingResponse:
    return StreamingResponse(
        with_heartbeats(frames, interval), media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS
    )
