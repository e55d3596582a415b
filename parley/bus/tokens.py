"""One-time tokens: issued by one call, redeemed once by another (ADP's GetWsToken).

`LocalTokenStore` keeps them in this process; a Redis implementation fills the same
interface (a key with a TTL, redeemed with GETDEL) so that any instance can redeem a
token another one issued.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

import orjson
import redis.asyncio


class TokenStore(Protocol):
    async def issue(self, claims: dict[str, Any], ttl: float) -> str:
        """A new token standing for `claims`, valid for `ttl` seconds and for one redemption."""

    async def redeem(self, token: str) -> dict[str, Any] | None:
        """The token's claims, once; None when it is unknown, expired or already used."""


class LocalTokenStore:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[float, dict[str, Any]]] = {}

    async def issue(self, claims: dict[str, Any], ttl: float) -> str:
        self._purge()
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (self._clock() + ttl, claims)
        return token

    async def redeem(self, token: str) -> dict[str, Any] | None:
        entry = self._tokens.pop(token, None)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def _purge(self) -> None:
        """Drops expired tokens from the oldest on, so that tokens never redeemed do not pile up.

        Tokens sit in issue order; the walk stops at the first live one, so each call
        costs only what has expired since the last.
        """
        now = self._clock()
        while self._tokens:
            token, (expires, _) = next(iter(self._tokens.items()))
            if expires >= now:
                return
            del self._tokens[token]


class RedisTokenStore:
    """Tokens as Redis keys with a TTL, redeemed with GETDEL: a token issued by one instance is
    redeemed once, by whichever instance the client reaches."""

    PREFIX = "parley:token:"

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._redis = client

    async def issue(self, claims: dict[str, Any], ttl: float) -> str:
        token = secrets.token_urlsafe(24)
        await self._redis.set(self.PREFIX + token, orjson.dumps(claims), px=max(int(ttl * 1000), 1))
        return token

    async def redeem(self, token: str) -> dict[str, Any] | None:
        claims = await self._redis.getdel(self.PREFIX + token)
        return None if claims is None else orjson.loads(claims)
