"""Each process sharing a PostgreSQL database mints ids with a node number no other live one uses.

An id is (milliseconds, node, sequence) (parley.ids): two processes with the same node mint the
same ids whenever they are busy in the same millisecond, and a record written with another's id
replaces it (records are upserted by id). A random node per process, enough alone on a SQLite
file, gives two processes the same node one time in 1,024.

So a process on a shared database claims its node: a PostgreSQL session advisory lock on
(ID_NODE_LOCKS, node), taken with `pg_try_advisory_lock` on a connection held for the process's
life. PostgreSQL releases the lock when that connection ends, so a dead process's node is free
at once, with no table to clean up. A check every `check_every` seconds notices a lost
connection; the claim then takes the node back, or another free one, before minting goes on.
(Between the loss and the check, another process that claimed the same node could mint the same
ids: that needs a lost connection, a new process claiming that very node, and both minting in
the same millisecond.)

The claims also tell which answers in progress have no live writer any more, without a shared
bus (`DeadNodeTurns`, swept by engine/reaper.py): an answer's record id carries the node of the
process that runs it, and a node whose lock nobody holds belongs to no live process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from parley.ids import NODE_MASK, PREFERRED_NODE, IdGenerator, id_generator, minted_at_ms, node_of

log = logging.getLogger(__name__)

ID_NODE_LOCKS = 0x50_61_72_6C  # "Parl": the first key of every node's advisory lock
CHECK_SECONDS = 10.0

_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:space, :node)")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:space, :node)")
# The nodes held on this database now: a two-key advisory lock shows its keys as classid and objid.
_HELD_NODES = sa.text(
    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid = :space"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def claim_id_node(engine: AsyncEngine) -> IdNodeClaim | None:
    """Claims this process's id node when the database is shared (not SQLite, where one process
    writes the file and its random node is enough); the caller closes the claim last."""
    if engine.dialect.name == "sqlite":
        return None
    claim = IdNodeClaim(engine, id_generator())
    await claim.claim(PREFERRED_NODE)
    return claim


class AllNodesTaken(Exception):
    """Every node number is held by a live process on this database."""


class IdNodeClaim:
    """This process's node on a shared database, held until `aclose`."""

    def __init__(self, engine: AsyncEngine, generator: IdGenerator, check_every: float = CHECK_SECONDS) -> None:
        self._engine = engine
        self._generator = generator
        self._check_every = check_every
        self._connection: AsyncConnection | None = None
        self._checker: asyncio.Task[None] | None = None
        self.node: int | None = None
        self.held_since: dict[int, int] = {}
        """Node -> when (ms) this process first took it: ids with that node minted earlier are another's."""

    async def claim(self, preferred: int | None = None) -> int:
        """Takes `preferred` if free, else the first free node from a random start; the generator
        mints with it from now on. Raises AllNodesTaken."""
        connection = await self._engine.connect()
        try:
            start = secrets.randbelow(NODE_MASK + 1)
            candidates = [(start + step) & NODE_MASK for step in range(NODE_MASK + 1)]
            if preferred is not None:
                candidates.insert(0, preferred & NODE_MASK)
            for node in candidates:
                taken = await connection.scalar(_TRY_LOCK, {"space": ID_NODE_LOCKS, "node": node})
                await connection.commit()  # a session lock outlives the transaction; no idle transaction is left open
                if taken:
                    break
            else:
                raise AllNodesTaken(f"all {NODE_MASK + 1} id nodes are held by live processes on this database")
        except BaseException:
            await connection.close()
            raise
        if preferred is not None and node != preferred:
            log.warning("id node %d (PARLEY_NODE_ID) is held by another process; this one uses %d", preferred, node)
        self._connection, self.node = connection, node
        self.held_since.setdefault(node, int(time.time() * 1000))
        self._generator.use_node(node)
        if self._checker is None:
            self._checker = asyncio.create_task(self._keep())
        return node

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            try:
                await self.check()
            except Exception as exc:  # the database is away: try again at the next check
                log.warning("could not check this process's id node: %r", exc)

    async def check(self) -> None:
        """Takes a node again (the same one if it is still free) when the lock's connection was lost."""
        connection = self._connection
        if connection is not None:
            try:
                await connection.scalar(sa.text("SELECT 1"))
                await connection.commit()
                return
            except Exception as exc:
                log.warning("lost the connection holding id node %s: %r", self.node, exc)
                self._connection = None
                await _discard(connection)
        lost = self.node
        node = await self.claim(lost)
        if node != lost:
            log.warning("id node %s was taken by another process while its connection was lost; now %d", lost, node)

    async def aclose(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
            self._checker = None
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            # The connection goes back to the pool: the session's lock must not go with it.
            await connection.scalar(_UNLOCK, {"space": ID_NODE_LOCKS, "node": self.node})
            await connection.commit()
        except Exception:
            await _discard(connection)
            return
        await connection.close()


class DeadNodeTurns:
    """Which turns no live process runs, told by the id nodes held on the database: the seam
    engine/reaper.py sweeps with on a shared database without a shared bus (the bus's leases
    tell it otherwise). A turn's id is minted by the process that runs it, so the turn is an
    orphan when nobody holds its node any more (its process died: PostgreSQL let the lock go with
    its connection), or when this process holds that node now but took it after the turn began
    (a dead process had it before)."""

    def __init__(self, engine: AsyncEngine, claim: IdNodeClaim) -> None:
        self._engine = engine
        self._claim = claim

    async def orphans(self, turn_ids: list[int]) -> list[int]:
        if not turn_ids:
            return []
        async with self._engine.connect() as conn:
            held = {int(node) for node in await conn.scalars(_HELD_NODES, {"space": ID_NODE_LOCKS})}
        mine = self._claim.held_since
        return [
            turn_id for turn_id in turn_ids
            if node_of(turn_id) not in held or minted_at_ms(turn_id) < mine.get(node_of(turn_id), 0)
        ]

    async def close_orphan(self, turn_id: int, events: list[Any]) -> bool:
        return False  # without a shared bus a turn's stream lived and died with its process


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
        await connection.close()
    except Exception:
        pass
