"""Delivery across instances: each user's deliveries in a Redis stream, fanned out live on a channel.

A delivery is appended to its user's stream (`XADD`, trimmed to the resume window by id) and
published, in the same Lua script, on one channel that every instance listens to; an instance
hands it to the subscribers it holds for that user. The stream's ids are the deliveries' ids:
increasing per user, the same on every instance, so a subscriber that reconnects to any
instance with its last id reads what it missed from the stream (`XRANGE` after that id) and
then the live ones, skipping those it already read.

An id can be continued while it is within the window: the stream drops only entries older
than the window (and expires whole after a window without deliveries), so everything after an
id younger than the window is still there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import orjson
import redis.asyncio

from parley.bus.channel import ChannelListener
from parley.messaging.delivery import RESUME_WINDOW, Delivered, DeliveryQueue
from parley.store.messaging import MessageRow

PREFIX = "parley:im:deliveries:"
CHANNEL = "parley:im:live"
RETRY_SECONDS = 0.5

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

# KEYS: the user's stream. ARGV: the delivery, window ms, channel, the user's key.
_PUBLISH = _NOW + """
local window = tonumber(ARGV[2])
local id = redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%d', now - window), '*', 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\\n' .. id .. '\\n' .. ARGV[1])
return id
"""

# KEYS: the user's stream. ARGV: the id to continue after ('' for none), window ms.
# Returns {position, continued (0/1), id, delivery, id, delivery, ...}: the position is the last
# delivery's id (or, with none kept, a mark below any id given from now on); what follows
# `after`, when it can still be continued.
_SUBSCRIBE = _NOW + """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local position = string.format('%d-0', now - 1)
if #last > 0 then position = last[1][1] end
local result = {position, 1}
local after = ARGV[1]
if after == '' then return result end
local ms = tonumber(string.match(after, '^(%d+)%-%d+$'))
if ms == nil or ms < now - tonumber(ARGV[2]) then
  result[2] = 0
  return result
end
if #last > 0 then
  local top_ms, top_seq = string.match(last[1][1], '^(%d+)%-(%d+)$')
  local after_seq = tonumber(string.match(after, '%-(%d+)$'))
  if ms > tonumber(top_ms) or (ms == tonumber(top_ms) and after_seq > tonumber(top_seq)) then
    if ms > now then result[2] = 0 end  -- an id from the future was never given
    return result
  end
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. after, '+')) do
    table.insert(result, entry[1])
    table.insert(result, entry[2][2])
  end
end
return result
"""


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)


def _encode(delivered: Delivered) -> bytes:
    return orjson.dumps({"kind": delivered.kind, "message": asdict(delivered.message)})


def _decode(data: bytes, stream_id: str) -> Delivered:
    fields: dict[str, Any] = orjson.loads(data)
    return Delivered(fields["kind"], MessageRow(**fields["message"]), stream_id)


class _Subscriber(DeliveryQueue):
    def __init__(self) -> None:
        super().__init__()
        self.catching_up: list[Delivered] | None = []  # live deliveries while the missed ones are read
        self.last = (0, 0)

    def offer(self, delivered: Delivered) -> None:
        if self.catching_up is not None:
            self.catching_up.append(delivered)
            return
        key = _id_key(delivered.id)
        if key > self.last:
            self.last = key
            self.put(delivered)


class RedisDelivery:
    def __init__(self, client: redis.asyncio.Redis, window: float = RESUME_WINDOW) -> None:
        self._redis = client
        self._window_ms = int(window * 1000)
        self._publish = client.register_script(_PUBLISH)
        self._subscribe = client.register_script(_SUBSCRIBE)
        self._subscribers: dict[str, set[_Subscriber]] = {}  # by user key
        # Subscribers that reconnect with their last id get what a lost channel missed.
        self._channel = ChannelListener(client, CHANNEL, self._received, retry=RETRY_SECONDS)

    async def start(self) -> None:
        """Listens from now on; returns once subscribed to the channel."""
        await self._channel.start()

    async def aclose(self) -> None:
        await self._channel.aclose()

    async def publish(self, sdkappid: int, user_id: str, delivered: Delivered) -> None:
        user = _user_key(sdkappid, user_id)
        await self._publish(keys=[PREFIX + user], args=[_encode(delivered), self._window_ms, CHANNEL, user])

    @asynccontextmanager
    async def subscribe(self, sdkappid: int, user_id: str, after: str | None = None) -> AsyncIterator[_Subscriber]:
        user = _user_key(sdkappid, user_id)
        subscriber = _Subscriber()
        subscribers = self._subscribers.setdefault(user, set())
        subscribers.add(subscriber)  # live deliveries are gathered from now on
        try:
            answer = await self._subscribe(keys=[PREFIX + user], args=[after or "", self._window_ms])
            position, continued, *missed = [part.decode() if isinstance(part, bytes) else part for part in answer]
            subscriber.position = str(position)
            subscriber.resumed = bool(continued)
            # Everything after `last` is delivered: after the position, or after `after` (and
            # the stream's entries since, read here) when it is continued.
            subscriber.last = _id_key(after if after and continued else subscriber.position)
            gathered, subscriber.catching_up = subscriber.catching_up or [], None
            for index in range(0, len(missed), 2):
                subscriber.offer(_decode(missed[index + 1].encode(), missed[index]))
            for delivered in gathered:
                subscriber.offer(delivered)  # those read from the stream already are skipped
            yield subscriber
        finally:
            subscribers.discard(subscriber)
            if not subscribers and self._subscribers.get(user) is subscribers:
                del self._subscribers[user]

    def _received(self, data: bytes) -> None:
        user, _, rest = data.partition(b"\n")
        subscribers = self._subscribers.get(user.decode())
        if not subscribers:
            return
        stream_id, _, payload = rest.partition(b"\n")
        delivered = _decode(payload, stream_id.decode())
        for subscriber in list(subscribers):
            subscriber.offer(delivered)


def _user_key(sdkappid: int, user_id: str) -> str:
    return f"{sdkappid}:{user_id}"
