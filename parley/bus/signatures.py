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

`LocalSignatureLedger` keeps the bindings in this process, which is how Parley runs on
SQLite; several instances behind one address would share them in Redis (SET NX with a TTL).
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class _FirstUse:
    forget_at: float
    call: bytes
    origin: str | None


class LocalSignatureLedger:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._first_uses: OrderedDict[str, _FirstUse] = OrderedDict()  # by signature

    def claim(self, signature: str, call: bytes, keep_for: float, *, exclusive: bool, origin: str | None) -> bool:
        """True if `signature` may serve `call` arriving over the connection `origin` (None:
        unknown). A new signature is bound to `call` and `origin` for `keep_for` seconds."""
        now = self._clock()
        self._forget_expired(now)
        first = self._first_uses.get(signature)
        if first is None:
            self._first_uses[signature] = _FirstUse(now + keep_for, call, origin)
            return True
        if not exclusive or hmac.compare_digest(first.call, call):
            return True
        return origin is not None and origin == first.origin

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
