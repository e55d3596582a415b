"""Turn streams shared by every Parley process through Redis.

The process that runs a turn keeps its stream in memory as well (a LocalBus), so that its own
subscribers are as fast as with the in-process bus; every event is also appended to a Redis
stream by a background writer, which sends what piled up since its last write in one call
(the turn never waits for Redis), in order. Anyone else (a client resuming on another
instance, or here once the local copy is gone) reads the Redis stream from its offset.

An instance that dies may have sent its clients events it had not yet written (a few
milliseconds' worth); the turn's stream in Redis then ends after the events it has, with
the terminal events another instance appends (engine/reaper.py), and a client resuming
it gets that end even though its Last-Event-ID lies past it (faces/resume.py, short_end).

Keys, for a turn T (`prefix` is `parley:`):

- `turn:{T}:events`, a stream: event n has the id `0-(n+1)`, so an offset is an id and a
  reader resumes with XREAD after `0-n`; an entry with the field `end` closes it. The events
  stay as published (never compacted), so that a replay renders exactly what was sent;
- `turn:{T}:header`, what a resuming subscriber needs to know of the turn (its TurnOwner);
- `turn:{T}:lease`, the id of the process running the turn, expiring `lease` seconds after
  the last heartbeat: when it is gone while the answer is still in progress, the process died
  (see engine/reaper.py);
- the channel `stops`: turn ids to stop, which every process hears and acts on for its own.

Events and header expire `retention` seconds after the end (an unfinished turn's after
UNFINISHED_TTL, unless the reaper closes it first).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import redis.asyncio as redis

from parley.bus.base import Codec, UnknownTurn, flatten
from parley.bus.local import LocalBus

log = logging.getLogger(__name__)

UNFINISHED_TTL = 6 * 3600.0
"""Seconds a turn's keys are kept while it has not ended (its holder renews the lease only)."""
LOCAL_GRACE = 5.0
"""Seconds a finished turn's local copy is kept for subscribers of this process; later ones read Redis."""
READ_BLOCK = 5.0
"""Seconds a remote subscriber with no idle ticks blocks on Redis before it checks the turn still exists."""
READ_COUNT = 1024

# Appends what a batch holds for each of its turns (events, header, lease, end) in one call.
# Idempotent, so that a batch retried after a failure adds nothing twice: a turn's events up
# to its stream's last id are skipped, and nothing is added to a stream that has ended (a
# reaper may have closed it). The keys are made here from the turn ids, so one call carries
# any number of turns (one Redis server, not a cluster).
#   ARGV: prefix, retention ms, unfinished ttl ms, lease ms, holder, then for each turn:
#         turn id, header ('' = none), first event's seq ('' = after the last), ended (1/0),
#         take the lease (1/0), how many events, the events...
APPEND = """
local prefix, retention, unfinished, lease_ms, holder = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local written = 0
local i = 6
while i <= #ARGV do
  local base = prefix .. 'turn:{' .. ARGV[i] .. '}:'
  local events, header, lease = base .. 'events', base .. 'header', base .. 'lease'
  local count = tonumber(ARGV[i + 5])
  local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
  local after, closed = 0, false
  if #last > 0 then
    if last[1][2][1] == 'end' then
      closed = true
    else
      after = tonumber(string.match(last[1][1], '%-(%d+)$'))
    end
  end
  if not closed then
    if ARGV[i + 1] ~= '' then redis.call('SET', header, ARGV[i + 1], 'PX', unfinished) end
    if ARGV[i + 4] == '1' then redis.call('SET', lease, holder, 'PX', lease_ms) end
    local seq = after + 1
    if ARGV[i + 2] ~= '' then seq = tonumber(ARGV[i + 2]) end
    for j = i + 6, i + 5 + count do
      if seq > after then
        redis.call('XADD', events, '0-' .. seq, 'e', ARGV[j])
        after = seq
      end
      seq = seq + 1
    end
    if ARGV[i + 3] == '1' then
      redis.call('XADD', events, '0-' .. (after + 1), 'end', '1')
      redis.call('PEXPIRE', events, retention)
      redis.call('PEXPIRE', header, retention)
      redis.call('DEL', lease)
    elseif redis.call('PTTL', events) == -1 then
      redis.call('PEXPIRE', events, unfinished)
    end
    written = written + 1
  end
  i = i + 6 + count
end
return written
"""


class _Outgoing:
    """What is still to be written of one turn."""

    __slots__ = ("header", "first", "events", "ended", "lease")

    def __init__(self, first: int | None) -> None:
        self.header: bytes | None = None
        self.first = first  # the offset of events[0]
        self.events: list[bytes] = []
        self.ended = False
        self.lease = False

    def merge(self, newer: _Outgoing) -> None:
        if self.first is None:
            self.first = newer.first
        self.events.extend(newer.events)
        self.header = self.header or newer.header
        self.ended = self.ended or newer.ended
        self.lease = self.lease or newer.lease


class RedisBus:
    """The bus of several Parley processes sharing one Redis (see the module's docstring)."""

    shared = True

    def __init__(
        self, client: redis.Redis, codec: Codec, retention: float = 120.0, lease: float = 15.0,
        *, prefix: str = "parley:", local_grace: float = LOCAL_GRACE,
    ) -> None:
        self._client = client
        self._codec = codec
        self._retention_ms = int(retention * 1000)
        self._lease = lease
        self._lease_ms = int(lease * 1000)
        self._prefix = prefix
        self._stops = f"{prefix}stops"
        self.instance = uuid.uuid4().hex
        """This process's id, kept in the leases of the turns it runs."""
        self._local = LocalBus(retention=min(local_grace, retention))
        self._running: set[int] = set()  # opened here and not ended: their leases are renewed
        self._outgoing: dict[int, _Outgoing] = {}
        self._wake = asyncio.Event()
        self._append = client.register_script(APPEND)
        self._stop_handler: Callable[[int], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: Any = None
        self._closing = False

    async def start(self) -> None:
        """Starts the writer, the lease heartbeat and the stop listener (subscribed before this returns)."""
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._stops)
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="bus writer"),
            asyncio.create_task(self._heartbeat_forever(), name="bus leases"),
            asyncio.create_task(self._listen_forever(), name="bus stops"),
        ]

    def _key(self, turn_id: int, part: str) -> str:
        return f"{self._prefix}turn:{{{turn_id}}}:{part}"

    # Turns run here ---------------------------------------------------------------------------

    def open(self, turn_id: int, header: Any = None) -> None:
        self._local.open(turn_id, header)
        self._running.add(turn_id)
        out = self._outgoing[turn_id] = _Outgoing(0)
        out.header = self._codec.encode_header(header)
        out.lease = True
        self._wake.set()

    def publish(self, turn_id: int, event: Any) -> int:
        data = self._codec.encode_event(event)  # a bad event fails its publisher, not the writer
        offset = self._local.publish(turn_id, event)
        out = self._outgoing.get(turn_id)
        if out is None:
            out = self._outgoing[turn_id] = _Outgoing(offset)
        out.events.append(data)
        if not self._wake.is_set():
            self._wake.set()
        return offset

    def end(self, turn_id: int) -> None:
        if turn_id not in self._running:
            return
        self._running.discard(turn_id)
        self._local.end(turn_id)
        out = self._outgoing.get(turn_id)
        if out is None:
            out = self._outgoing[turn_id] = _Outgoing(None)
        out.ended = True
        self._wake.set()

    def keep(self, turn_id: int) -> None:
        """Nothing to do: the Redis copy is never compacted, the local one is not either."""

    # Subscribers -------------------------------------------------------------------------------

    def subscribe(self, turn_id: int, offset: int = 0, idle: float | None = None) -> AsyncIterator[Any]:
        return flatten(self.subscribe_batches(turn_id, offset, idle))

    async def subscribe_batches(
        self, turn_id: int, offset: int = 0, idle: float | None = None
    ) -> AsyncIterator[list[Any] | None]:
        if self._local.is_open(turn_id):
            source = self._local.subscribe_batches(turn_id, offset, idle)
        else:
            source = self._read(turn_id, offset, idle)
        async with aclosing(source) as batches:
            async for batch in batches:
                yield batch

    async def _read(self, turn_id: int, offset: int, idle: float | None) -> AsyncIterator[list[Any] | None]:
        """The turn's events from Redis, from `offset` on until its end marker."""
        events, header = self._key(turn_id, "events"), self._key(turn_id, "header")
        if not await self._client.exists(header):
            raise UnknownTurn(turn_id)
        decode = self._codec.decode_event
        last: bytes | str = f"0-{offset}"
        block = max(1, int((idle if idle is not None else READ_BLOCK) * 1000))
        while True:
            reply = await self._client.xread({events: last}, count=READ_COUNT, block=block)
            if not reply:
                if idle is not None:
                    yield None
                elif not await self._client.exists(header):
                    return  # expired unfinished: nobody will end it any more
                continue
            entries = reply[0][1]
            batch: list[Any] = []
            for _, values in entries:
                data = values.get(b"e")
                if data is None:  # the end marker
                    if batch:
                        yield batch
                    return
                batch.append(decode(data))
            last = entries[-1][0]
            yield batch

    async def replay_header(self, turn_id: int) -> Any:
        if self._local.is_open(turn_id):
            return await self._local.replay_header(turn_id)
        data = await self._client.get(self._key(turn_id, "header"))
        if data is None:
            raise UnknownTurn(turn_id)
        return self._codec.decode_header(data)

    # Stops and leases --------------------------------------------------------------------------

    def on_stop(self, handler: Callable[[int], None]) -> None:
        self._stop_handler = handler

    async def stop(self, turn_id: int) -> bool:
        if not await self._client.exists(self._key(turn_id, "lease")):
            return False
        await self._client.publish(self._stops, str(turn_id))
        return True

    async def orphans(self, turn_ids: list[int]) -> list[int]:
        if not turn_ids:
            return []
        leases = await self._client.mget([self._key(turn_id, "lease") for turn_id in turn_ids])
        return [turn_id for turn_id, lease in zip(turn_ids, leases) if lease is None and turn_id not in self._running]

    async def close_orphan(self, turn_id: int, events: list[Any]) -> bool:
        encoded = [self._codec.encode_event(event) for event in events]
        turn = [turn_id, b"", b"", 1, 0, len(encoded), *encoded]
        return bool(await self._append(args=[*self._append_head(), *turn]))

    # Background work ---------------------------------------------------------------------------

    async def _write_forever(self) -> None:
        backoff = 0.05
        while not (self._closing and not self._outgoing):
            await self._wake.wait()
            self._wake.clear()
            batch, self._outgoing = self._outgoing, {}
            if not batch:
                continue
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._requeue(batch)
                raise
            except Exception as exc:  # Redis away: keep everything, in order, and try again
                log.warning("could not write %d turns' events to the bus (retrying in %.2f s): %s", len(batch), backoff, exc)
                self._requeue(batch)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self._wake.set()
                continue
            backoff = 0.05

    async def _write(self, batch: dict[int, _Outgoing]) -> None:
        """One call for the whole batch: one round trip, and few arguments for redis-py to pack."""
        args = self._append_head()
        for turn_id, out in batch.items():
            args += [turn_id, out.header or b"", b"" if out.first is None else out.first + 1, 1 if out.ended else 0,
                     1 if out.lease else 0, len(out.events), *out.events]
        await self._append(args=args)

    def _append_head(self) -> list[Any]:
        return [self._prefix, self._retention_ms, int(UNFINISHED_TTL * 1000), self._lease_ms, self.instance]

    def _requeue(self, batch: dict[int, _Outgoing]) -> None:
        """Puts a batch that was not written back in front of what came since."""
        newer, self._outgoing = self._outgoing, batch
        for turn_id, out in newer.items():
            older = batch.get(turn_id)
            if older is None:
                batch[turn_id] = out
            else:
                older.merge(out)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            turns = list(self._running)
            if not turns:
                continue
            try:
                pipe = self._client.pipeline(transaction=False)
                for turn_id in turns:
                    pipe.set(self._key(turn_id, "lease"), self.instance, px=self._lease_ms)
                await pipe.execute()
            except Exception as exc:
                log.warning("could not renew the leases of %d turns: %s", len(turns), exc)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                    await self._pubsub.subscribe(self._stops)
                backoff = 0.1
                async for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        self._deliver_stop(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lost the bus's stop channel (listening again in %.1f s): %s", backoff, exc)
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    await _close_quietly(pubsub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _deliver_stop(self, data: bytes) -> None:
        try:
            turn_id = int(data)
        except ValueError:
            return
        if self._stop_handler is not None and turn_id in self._running:
            self._stop_handler(turn_id)

    async def aclose(self, flush_timeout: float = 5.0) -> None:
        """Writes what is still pending (for up to `flush_timeout` seconds), then stops the background work."""
        self._closing = True
        self._wake.set()
        writer, *others = self._tasks or [None]
        if writer is not None:
            try:
                await asyncio.wait_for(writer, flush_timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                log.warning("the bus was closed with %d turns' events not written", len(self._outgoing))
        for task in others:
            task.cancel()
        for task in others:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self._pubsub is not None:
            await _close_quietly(self._pubsub)
            self._pubsub = None
        await self._local.aclose()


async def _close_quietly(pubsub: Any) -> None:
    try:
        await pubsub.aclose()
    except Exception:
        pass
