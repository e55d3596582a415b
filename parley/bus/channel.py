"""Listening to one Redis pub/sub channel for as long as an instance runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio

log = logging.getLogger(__name__)


class ChannelListener:
    """Hands every message published on `channel` to `received`. When the connection fails it
    subscribes again after `retry` seconds and then calls `resubscribed` (messages published in
    between are lost: the caller decides what that means)."""

    def __init__(
        self, client: redis.asyncio.Redis, channel: str, received: Callable[[bytes], None], *,
        retry: float = 0.5, resubscribed: Callable[[], None] | None = None,
    ) -> None:
        self._redis = client
        self._channel = channel
        self._received = received
        self._retry = retry
        self._resubscribed = resubscribed
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closing = False

    def start_soon(self) -> None:
        """Starts listening, if not yet listening."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())

    async def start(self) -> None:
        """Starts listening; returns once subscribed (or once the first attempt failed), so that
        nothing published after it returns is missed while Redis is up."""
        self.start_soon()
        await self._subscribed.wait()

    async def aclose(self) -> None:
        # redis-py may swallow the cancellation of a blocking read (and read again, or turn it
        # into a connection error): cancel until the task has ended; the flag ends the loop too.
        self._closing = True
        while self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=0.1)

    async def _listen(self) -> None:
        first = True
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if not first and self._resubscribed is not None:
                    self._resubscribed()
                first = False
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._received(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                log.warning("the channel %s failed (listening again in %.1f s): %r", self._channel, self._retry, exc)
                self._subscribed.set()
                await asyncio.sleep(self._retry)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
