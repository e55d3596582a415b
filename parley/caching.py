"""A small cache for facts every turn asks for and that rarely change (an application's release,
whether it has knowledge), read from the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RefreshingCache(Generic[K, V]):
    """Answers from `load`, kept `ttl` seconds; stale ones are refreshed in the background.

    Only a key with no answer yet waits, and everyone waiting for it shares one load. Once an
    answer is stale the next caller starts one background load and everyone keeps the old
    answer until it lands. The age counts from when a load finished, not when it started: under
    overload a query can take longer than `ttl`, and counting from its start made every answer
    stale on arrival, so that each turn started a query of its own, which made the overload
    worse (1,024 concurrent turns fell to about 300 a second in the benchmark).

    `forget` makes the next caller wait for a fresh answer, and a load already in flight (it may
    have read the database before the change) is not kept.
    """

    def __init__(
        self, load: Callable[[K], Awaitable[V]], ttl: float, max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._answers: dict[K, tuple[float, V]] = {}  # key -> (fresh until, answer)
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    async def get(self, key: K) -> V:
        cached = self._answers.get(key)
        if cached is None:
            return await asyncio.shield(self._load_once(key))
        fresh_until, answer = cached
        if fresh_until <= self._clock():
            self._load_once(key)
        return answer

    def forget(self, key: K | None = None) -> None:
        """Drops one key's answer (or every answer) after a change made by this process."""
        if key is None:
            self._answers.clear()
        else:
            self._answers.pop(key, None)
        self._generation += 1

    def _load_once(self, key: K) -> asyncio.Future[V]:
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load_and_keep(key))
            loading.add_done_callback(lambda done: self._loaded(key, done))
        return loading

    async def _load_and_keep(self, key: K) -> V:
        generation = self._generation
        answer = await self._load(key)
        if generation == self._generation:
            if len(self._answers) >= self._max_entries and key not in self._answers:
                self._answers.clear()
            self._answers[key] = (self._clock() + self._ttl, answer)
        return answer

    def _loaded(self, key: K, done: asyncio.Future[V]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if not done.cancelled() and done.exception() is not None:
            # Whoever waited got the error; a failed refresh keeps the old answer another `ttl`.
            log.warning("refreshing a cached answer failed: %r", done.exception())
            cached = self._answers.get(key)
            if cached is not None:
                self._answers[key] = (self._clock() + self._ttl, cached[1])
