"""Cache invalidation across instances: a change made on one instance is announced on a Redis
channel, and every other instance has its caches forget what they kept about it at once.

Without a shared bus there is nothing to announce: a process's own changes reach its own
caches directly (ApplicationService.on_change), and that is the whole server.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import orjson
import redis.asyncio
from redis.exceptions import RedisError

from parley.bus.channel import ChannelListener

log = logging.getLogger(__name__)

CHANNEL = "parley:invalidate"
RETRY_SECONDS = 1.0


class RedisInvalidations:
    """Announces changes on CHANNEL and hands those of other instances to this one's listeners.

    After the channel was lost (Redis restarted), announcements made meanwhile are unknown, so
    every listener forgets everything (key None) once the channel is back."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._redis = client
        self._instance = secrets.token_hex(8)
        self._listeners: dict[str, list[Callable[[str | None], None]]] = {}
        self._channel = ChannelListener(client, CHANNEL, self._received, retry=RETRY_SECONDS, resubscribed=self._forget_all)

    def on(self, topic: str, forget: Callable[[str | None], None]) -> None:
        """`forget(key)` runs when another instance announces a change of `key` in `topic`."""
        self._listeners.setdefault(topic, []).append(forget)

    async def announce(self, topic: str, key: str = "") -> None:
        """Tells the other instances; a failure is logged (their caches expire on their own)."""
        try:
            await self._redis.publish(CHANNEL, orjson.dumps([self._instance, topic, key]))
        except (RedisError, OSError) as exc:
            log.warning("could not announce a change of %s %s to the other instances: %s", topic, key, exc)

    async def start(self) -> None:
        """Listens from now on; returns once subscribed, so that no later announcement is missed."""
        await self._channel.start()

    async def aclose(self) -> None:
        await self._channel.aclose()

    def _received(self, data: bytes) -> None:
        try:
            instance, topic, key = orjson.loads(data)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            log.warning("ignored a malformed invalidation %r", data[:200])
            return
        if instance == self._instance:
            return  # this instance's caches forgot when it made the change
        for forget in self._listeners.get(topic, ()):
            forget(key or None)

    def _forget_all(self) -> None:
        for listeners in self._listeners.values():
            for forget in listeners:
                forget(None)
