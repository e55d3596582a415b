"""Closing the turns of instances that died, when several share the database and the bus.

The instance that runs a turn holds a lease on it on the bus, renewed by a heartbeat. An
instance killed mid-answer leaves the answer's record in progress (with its last checkpoint)
and the turn's stream without an end. Every instance sweeps from time to time: an answer
still in progress whose lease has expired is closed as interrupted in the database (a
conditional update: of two sweepers, one closes it), and its stream gets a terminal
event, so that a client resuming it sees an end rather than silence.

Without a shared bus, on a shared database (PostgreSQL), the id node each process holds on the
database tells the same (store/id_nodes.py, `DeadNodeTurns`): an answer whose id's node no live
process holds is closed as interrupted; there is no stream to end, it died with its process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from parley.engine.errors import ErrorKind
from parley.engine.events import Failure, Procedure, Progress
from parley.store.conversations import INTERRUPTED_MESSAGE, ConversationRepository, RecordRow

log = logging.getLogger(__name__)


def terminal_events(record: RecordRow) -> list[Any]:
    """How an interrupted answer's stream ends: its token statistics as failed, then the failure."""
    stat = record.token_stat or {}
    procedures = tuple(
        Procedure(p.get("name", ""), p.get("status", "failed"), p.get("input_tokens", 0), p.get("output_tokens", 0),
                  p.get("model", ""), p.get("elapsed", 0))
        for p in stat.get("procedures") or []
    )
    return [Progress("failed", procedures, stat.get("elapsed", 0)), Failure(ErrorKind.INTERNAL.value, INTERRUPTED_MESSAGE)]


class TurnHolders(Protocol):
    """Who tells which turns no live instance runs: the shared bus (its leases), or the id nodes
    held on a shared database."""

    async def orphans(self, turn_ids: list[int]) -> list[int]: ...

    async def close_orphan(self, turn_id: int, events: list[Any]) -> bool: ...


class TurnReaper:
    """Closes answers in progress that no live instance holds (see the module's docstring)."""

    def __init__(self, conversations: ConversationRepository, holders: TurnHolders, lease: float) -> None:
        """`lease`: how long after its record is opened a turn's holder is surely known (0 when
        the record's id itself tells)."""
        self._conversations = conversations
        self._holders = holders
        self._lease = lease
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Closes what is due now; returns how many answers this instance closed.

        Only answers opened more than a lease ago are looked at: a turn's lease is written
        just after its record is queued, and a record younger than that may not have one yet."""
        opened_before = int((time.time() - self._lease) * 1000)
        candidates = await self._conversations.in_progress(opened_before)
        closed = 0
        for turn_id in await self._holders.orphans(candidates):
            record = await self._conversations.close_interrupted(turn_id)
            if record is None:
                continue  # finished meanwhile, or another instance closed it
            await self._holders.close_orphan(turn_id, terminal_events(record))
            closed += 1
        if closed:
            log.warning("closed %d answers whose instance stopped holding them as interrupted", closed)
        return closed

    def start(self, interval: float) -> None:
        self._task = asyncio.create_task(self._sweep_forever(interval), name="turn reaper")

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweeping for interrupted turns failed")
            await asyncio.sleep(interval)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
