"""Which sessions may already exist: a Bloom filter over every session's key.

Under load most turns open a session nobody has used before, and the read that proves it
new was the costliest step of a turn's start (a database round trip through a worker
thread, about half a millisecond of CPU per turn in profiles). The filter answers "certainly
new" for those without touching the database; "maybe" (a session seen before, or a false
positive, about 1 % by design) reads the database as before.

Sound only while this process creates every session in the database, which is how Parley
runs on SQLite (one server process per database file). Past its capacity the filter only
grows less selective: more reads, never a wrong answer.
"""

from __future__ import annotations

from rbloom import Bloom
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.tables import sessions

MIN_CAPACITY = 1_000_000
FALSE_POSITIVE_RATE = 0.01


class KnownSessions:
    def __init__(self, capacity: int = MIN_CAPACITY) -> None:
        self._filter = Bloom(max(capacity, 1), FALSE_POSITIVE_RATE)

    @classmethod
    async def load(cls, engine: AsyncEngine) -> KnownSessions:
        """Every session in the database, with room for as many again (at least a million)."""
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(sessions))).scalar_one()
            known = cls(max(MIN_CAPACITY, 2 * count))
            result = await conn.stream(select(sessions.c.app_id, sessions.c.face, sessions.c.session_id))
            async for rows in result.partitions(10_000):
                for app_id, face, session_id in rows:
                    known.add((app_id, face, session_id))
        return known

    def add(self, key: tuple[int, str, str]) -> None:
        """Adds a session's (app id, face, session id)."""
        self._filter.add(key)

    def may_exist(self, key: tuple[int, str, str]) -> bool:
        return key in self._filter
