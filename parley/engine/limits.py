"""Admission limits: turns in progress per application.

In-process here; a bus-backed implementation fills the same interface for several
instances.
"""

from __future__ import annotations

from typing import Protocol


class ConcurrencyLimiter(Protocol):
    async def try_acquire(self, key: str, limit: int) -> bool: ...

    async def release(self, key: str) -> None: ...


class LocalConcurrencyLimiter:
    """Counts turns in progress per key within this process."""

    def __init__(self) -> None:
        self._in_progress: dict[str, int] = {}

    async def try_acquire(self, key: str, limit: int) -> bool:
        current = self._in_progress.get(key, 0)
        if current >= limit:
            return False
        self._in_progress[key] = current + 1
        return True

    async def release(self, key: str) -> None:
        current = self._in_progress.get(key, 0) - 1
        if current > 0:
            self._in_progress[key] = current
        else:
            self._in_progress.pop(key, None)

    def in_progress(self, key: str) -> int:
        return self._in_progress.get(key, 0)
