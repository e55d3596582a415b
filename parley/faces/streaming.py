"""A lean `text/event-stream` response for the faces' streams.

Starlette's StreamingResponse watches for the client leaving with an anyio task group per
response (uvicorn speaks ASGI 2.3, where `send` after a disconnect is silently ignored).
On Parley's hottest path that machinery cost more than the rendering itself, so this
response does the same with one plain asyncio task: it waits for `http.disconnect` and
cancels the body, which runs in the request's own task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send


async def read_body(receive: Receive) -> bytes | None:
    """A request's whole body, or None when the client left before sending it."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


class EventStreamResponse:
    media_type = b"text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str] | None = None, status: int = 200) -> None:
        self.body = body
        self.status = status
        self.raw_headers = [(b"content-type", self.media_type)] + [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.raw_headers})
        streaming = asyncio.current_task()
        assert streaming is not None
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            async for chunk in self.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left:
                raise
            streaming.uncancel()  # the client left: the stream ends here, quietly
        finally:
            watcher.cancel()
            await self.body.aclose()  # type: ignore[attr-defined]
