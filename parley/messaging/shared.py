"""What the IM domain's instances share: locks (one writer of a streaming message, one check of
a MsgRandom at a time) and short-lived facts (which turn answers which streaming message).

`LocalState` serves one process; `RedisState` several, through the shared bus: its locks are
leases (they run out if their holder dies), its facts keys with a TTL.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import redis.asyncio

LOCK_LEASE = 30.0
"""Seconds a lock is held at most if its holder dies while holding it."""
LOCK_WAIT = 20.0
"""Seconds a caller waits for a lock before it fails (an IM internal error)."""


class SharedState(Protocol):
    shared: bool
    """True when other instances change the same messages: nothing read before a lock was taken may be trusted."""

    def lock(self, name: str) -> AbstractAsyncContextManager[None]: ...

    async def put(self, name: str, value: str, ttl: float) -> None: ...

    async def get(self, name: str) -> str | None: ...

    async def delete(self, name: str) -> None: ...


class LocalState:
    shared = False

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._values: dict[str, tuple[float, str]] = {}

    @asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:  # the lock lives while someone holds or waits for it
            yield

    async def put(self, name: str, value: str, ttl: float) -> None:
        now = time.monotonic()
        if len(self._values) > 10_000:
            self._values = {k: v for k, v in self._values.items() if v[0] > now}
        self._values[name] = (now + ttl, value)

    async def get(self, name: str) -> str | None:
        kept = self._values.get(name)
        return kept[1] if kept is not None and kept[0] > time.monotonic() else None

    async def delete(self, name: str) -> None:
        self._values.pop(name, None)


class RedisState:
    shared = True
    PREFIX = "parley:im:"

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._redis = client

    @asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        async with self._redis.lock(
            f"{self.PREFIX}lock:{name}", timeout=LOCK_LEASE, blocking_timeout=LOCK_WAIT, sleep=0.01
        ):
            yield

    async def put(self, name: str, value: str, ttl: float) -> None:
        await self._redis.set(self.PREFIX + name, value, px=max(int(ttl * 1000), 1))

    async def get(self, name: str) -> str | None:
        value = await self._redis.get(self.PREFIX + name)
        return None if value is None else value.decode()

    async def delete(self, name: str) -> None:
        await self._redis.delete(self.PREFIX + name)
