"""Which call each cloud API signature was first accepted for, while it is within its age.

A TC3 signature covers only the headers its client names in SignedHeaders. The official
SDKs name `content-type;host`: X-TC-Action and X-TC-Version are outside the signature,
and with `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` so is the body. A request captured on its
way (a log, a proxy) could then be sent again within `signature_max_age` as another call.

The signature alone cannot tell such a replay from an honest SDK client that signs two
calls with the same body in the same second: their signatures are equal. What differs is
where they come from: the client sends its calls one after another over its own
connection, the replay comes over another. So an exclusive call (one that changes
something) is accepted on a signature already used only if it is that very call again
(a retry) or it arrives over the connection of the signature's first use. Other calls
(reads) are accepted on any signature, and bind a new one.

`LocalSignatureLedger` keeps the bindings in this process; `RedisSignatureLedger` shares
them between instances behind one address, so that a signature replayed on another
instance is refused too.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio


class SignatureLedger(Protocol):
    async def claim(self, signature: str, call: bytes, keep_for: float, *, exclusive: bool, origin: str | None) -> bool:
        """True if `signature` may serve `call` (a digest of the call) arriving over the
        connection `origin` (None: unknown). A new signature is bound to `call` and `origin`
        for `keep_for` seconds."""


def _may_share(first_call: bytes, first_origin: str | None, call: bytes, *, exclusive: bool, origin: str | None) -> bool:
    """Whether a signature first used for `first_call` over `first_origin` may serve `call` too."""
    if not exclusive or hmac.compare_digest(first_call, call):
        return True
    return origin is not None and origin == first_origin


@dataclass(frozen=True, slots=True)
class _FirstUse:
    forget_at: float
    call: bytes
    origin: str | None


class LocalSignatureLedger:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._first_uses: OrderedDict[str, _FirstUse] = OrderedDict()  # by signature

    async def claim(self, signature: str, call: bytes, keep_for: float, *, exclusive: bool, origin: str | None) -> bool:
        now = self._clock()
        self._forget_expired(now)
        first = self._first_uses.get(signature)
        if first is None:
            self._first_uses[signature] = _FirstUse(now + keep_for, call, origin)
            return True
        return _may_share(first.call, first.origin, call, exclusive=exclusive, origin=origin)

    def _forget_expired(self, now: float) -> None:
        """Entries sit in the order they were made and `keep_for` is the same for all of
        them, so the walk from the oldest stops at the first one still kept."""
        while self._first_uses:
            signature, first = next(iter(self._first_uses.items()))
            if first.forget_at > now:
                return
            del self._first_uses[signature]

    def __len__(self) -> int:
        return len(self._first_uses)


# KEYS: the signature's key. ARGV: the binding, its lifetime in ms. Binds a new signature
# (returns nil) or returns the binding it already has.
_BIND = """
local first = redis.call('GET', KEYS[1])
if first then return first end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""


class RedisSignatureLedger:
    """The bindings in Redis, shared by every instance. A connection is named with the instance
    that holds it, since two instances may see the same client address and port."""

    PREFIX = "parley:signature:"

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._bind = client.register_script(_BIND)
        self._instance = secrets.token_hex(6)

    async def claim(self, signature: str, call: bytes, keep_for: float, *, exclusive: bool, origin: str | None) -> bool:
        here = None if origin is None else f"{self._instance}/{origin}"
        binding = call.hex() + " " + (here or "")
        first = await self._bind(keys=[self.PREFIX + signature], args=[binding, max(int(keep_for * 1000), 1)])
        if first is None:
            return True
        first_call, _, first_origin = first.decode().partition(" ")
        return _may_share(bytes.fromhex(first_call), first_origin or None, call, exclusive=exclusive, origin=here)
