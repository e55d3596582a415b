"""UserSig (TLSSigAPIv2): how IM callers prove who they are, generated and verified.

A UserSig is zlib-compressed JSON in a URL-safe base64 (`+` -> `*`, `/` -> `-`, `=` -> `_`)
carrying the identifier, the SDKAppID, the time it was made, how long it lasts and an
HMAC-SHA256 over those lines, keyed with the application's secret key used as text.
Verification follows the Go reference order; each failure carries the IM code a REST
caller gets for it (protocols/im.md, sections 2.1 and 3.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

DEFAULT_EXPIRE = 180 * 86400
MAX_USERSIG_LENGTH = 8192
MAX_INFLATED_BYTES = 16384

EXPIRED = 70001
UNPARSABLE = 70003
VERIFY_FAILED = 70009
IDENTIFIER_MISMATCH = 70013
SDKAPPID_MISMATCH = 70014

_TO_URL_SAFE = str.maketrans({"+": "*", "/": "-", "=": "_"})
_FROM_URL_SAFE = str.maketrans({"*": "+", "-": "/", "_": "="})


class UserSigError(Exception):
    """The UserSig does not prove the caller's identity; `code` is the IM error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class UserSigClaims:
    identifier: str
    sdkappid: int
    time: int
    expire: int

    @property
    def expires_at(self) -> int:
        return self.time + self.expire


def _content(identifier: str, sdkappid: int, issued: int, expire: int, userbuf: str | None) -> bytes:
    text = f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{issued}\nTLS.expire:{expire}\n"
    if userbuf is not None:
        text += f"TLS.userbuf:{userbuf}\n"
    return text.encode("utf-8")


def _signature(key: str, content: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode("utf-8"), content, hashlib.sha256).digest()).decode("ascii")


def generate(sdkappid: int, key: str, identifier: str, expire: int = DEFAULT_EXPIRE, now: int | None = None) -> str:
    """A UserSig for `identifier`, valid for `expire` seconds from `now` (default: the current time)."""
    issued = int(time.time()) if now is None else now
    document = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": issued,
        "TLS.sig": _signature(key, _content(identifier, sdkappid, issued, expire, None)),
    }
    compressed = zlib.compress(json.dumps(document).encode("utf-8"))
    return base64.b64encode(compressed).decode("ascii").translate(_TO_URL_SAFE)


def decode(usersig: str) -> dict[str, Any]:
    """The JSON document inside a UserSig; UserSigError(70003) when it cannot be read."""
    if not usersig or len(usersig) > MAX_USERSIG_LENGTH:
        raise UserSigError(UNPARSABLE, "usersig is empty or too long")
    try:
        compressed = base64.b64decode(usersig.translate(_FROM_URL_SAFE), validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_INFLATED_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise UserSigError(UNPARSABLE, "usersig is truncated or too large")
        document = json.loads(raw)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise UserSigError(UNPARSABLE, f"usersig cannot be parsed: {type(exc).__name__}") from None
    if not isinstance(document, dict):
        raise UserSigError(UNPARSABLE, "usersig does not hold a JSON object")
    return document


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserSigError(UNPARSABLE, f"usersig lacks a valid {name}")
    return value


def verify(usersig: str, *, sdkappid: int, identifier: str, key: str, now: int | None = None) -> UserSigClaims:
    """Checks a UserSig made for `identifier` in application `sdkappid` with `key`.

    Raises UserSigError with 70003 (unreadable), 70014 (other SDKAppID), 70013 (other
    identifier), 70001 (expired) or 70009 (user buffer present, or signature wrong).
    """
    document = decode(usersig)
    claims = UserSigClaims(
        identifier=_field(document, "TLS.identifier", str),
        sdkappid=_field(document, "TLS.sdkappid", int),
        time=_field(document, "TLS.time", int),
        expire=_field(document, "TLS.expire", int),
    )
    signature = _field(document, "TLS.sig", str)
    if claims.sdkappid != sdkappid:
        raise UserSigError(SDKAPPID_MISMATCH, "the usersig was made for another SDKAppID")
    if claims.identifier != identifier:
        raise UserSigError(IDENTIFIER_MISMATCH, "the usersig was made for another identifier")
    current = int(time.time()) if now is None else now
    if current > claims.expires_at:
        raise UserSigError(EXPIRED, "the usersig has expired")
    if "TLS.userbuf" in document:
        raise UserSigError(VERIFY_FAILED, "a usersig with a user buffer is not accepted here")
    expected = _signature(key, _content(claims.identifier, claims.sdkappid, claims.time, claims.expire, None))
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        raise UserSigError(VERIFY_FAILED, "the usersig signature does not match")
    return claims
