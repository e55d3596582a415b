"""Which call each cloud API signature was first accepted for, while it is within its age.

A TC3 signature covers only the headers its client names in SignedHeaders. The official
SDKs name `content-type;host`: X-TC-Action and X-TC-Version are outside the signature,
and with `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` so is the body. A request captured on its
way (a log, a proxy) could then be sent again within `signature_max_age` as another call.

Nothing tells such a replay from an honest client that signs two calls with the same body
in the same second (the SDK's signatures are then equal), so the ledger is strict where a
replay does harm: an exclusive call (one that changes something) is accepted only as the
first call of its signature, or as that very call again (a retry). Other calls (reads)
are accepted on any signature, and bind a new one.

`LocalSignatureLedger` keeps the bindings in this process, which is how Parley runs on
SQLite; several instances behind one address would share them in Redis (SET NX with a TTL).
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from typing import Any


class LocalSignatureLedger:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._calls: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # signature -> (forget at, call)

    def claim(self, signature: str, call: bytes, keep_for: float, *, exclusive: bool) -> bool:
        """True if `signature` may serve `call`. A new signature is bound to `call` for
        `keep_for` seconds from now; a bound one serves an `exclusive` call only if it is
        the call it is bound to, any other call always."""
        now = self._clock()
        self._forget_expired(now)
        bound = self._calls.get(signature)
        if bound is None:
            self._calls[signature] = (now + keep_for, call)
            return True
        return not exclusive or hmac.compare_digest(bound[1], call)

    def _forget_expired(self, now: float) -> None:
        """Entries sit in the order they were made and `keep_for` is the same for all of
        them, so the walk from the oldest stops at the first one still kept."""
        while self._calls:
            signature, (forget_at, _) = next(iter(self._calls.items()))
            if forget_at > now:
                return
            del self._calls[signature]

    def __len__(self) -> int:
        return len(self._calls)
