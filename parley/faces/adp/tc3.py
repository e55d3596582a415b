"""TC3-HMAC-SHA256, the signature of Tencent Cloud API 3.0, checked on the server side.

The client signs the method, path, query, a chosen set of headers and the SHA-256 of the
body with a key derived from its SecretKey, the UTC date and the service name. The server
rebuilds the same string from what it received and compares. Nothing here knows about
HTTP frameworks: the caller hands in the method, path, query, headers and body bytes.

The canonical request follows Tencent's rule ("签名方法 v3", step 1): each signed header
is written `name:value\n` with name and value lower-cased and trimmed, in the order of
SignedHeaders, which names them lower-cased. The official SDKs sign `content-type;host`
(values that are lower-case already); adp-chat-client also signs `x-tc-action`, whose
value (`GetMsgRecord`) only the lower-casing makes agree. Which service may own the
action named is the caller's check (cloud_services.py): here the scope's service is only
an input of the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

ALGORITHM = "TC3-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)


class SignatureError(Exception):
    """The request's signature does not hold; `code` is Tencent's error code for the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an `Authorization: TC3-HMAC-SHA256 ...` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        raise SignatureError("AuthFailure.InvalidAuthorization", "Authorization in the request header is invalid.")
    parts = match["credential"].split("/")
    if len(parts) != 4 or parts[3] != "tc3_request" or not all(parts):
        raise SignatureError(
            "AuthFailure.InvalidAuthorization",
            "Credential in the Authorization header must be SecretId/Date/Service/tc3_request.",
        )
    signed = tuple(h.strip().lower() for h in match["signed"].split(";"))
    if "content-type" not in signed or "host" not in signed:
        raise SignatureError(
            "AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host."
        )
    return Authorization(parts[0], parts[1], parts[2], signed, match["signature"].lower())


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    k_date = hmac.new(("TC3" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_date, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()


def string_to_sign(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    body: bytes,
    timestamp: str,
    date: str,
    service: str,
) -> str:
    """The canonical request, hashed into the string the client signed."""
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers)
    if headers.get("x-tc-content-sha256") == UNSIGNED_PAYLOAD:
        payload_hash = hashlib.sha256(UNSIGNED_PAYLOAD.encode()).hexdigest()
    else:
        payload_hash = hashlib.sha256(body).hexdigest()
    # Tencent's rule: the canonical query string of a POST is empty (its parameters are the body).
    canonical_query = "" if method.upper() == "POST" else query
    canonical_request = "\n".join(
        [method.upper(), path or "/", canonical_query, canonical_headers, ";".join(signed_headers), payload_hash]
    )
    scope = f"{date}/{service}/tc3_request"
    return "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])


def sign(secret_key: str, date: str, service: str, to_sign: str) -> str:
    return hmac.new(signing_key(secret_key, date, service), to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    now: float,
    max_age: float,
) -> Authorization:
    """Checks a signed request; returns its authorization, or raises SignatureError.

    `headers` has lower-case names; `secrets` maps SecretId to SecretKey. The checks run
    in the order Tencent reports them: header form, timestamp age, key, signature.
    """
    auth = parse_authorization(headers.get("authorization", ""))
    timestamp = headers.get("x-tc-timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureError("MissingParameter", "The request is missing a valid X-TC-Timestamp header.")
    # Past 12 digits (the year 33658) no clock is near: said before int() or a float meets it.
    if len(timestamp) > 12 or abs(now - int(timestamp)) > max_age:
        raise SignatureError(
            "AuthFailure.SignatureExpire",
            f"Signature expired. Timestamp and server time cannot differ by more than {int(max_age)} seconds.",
        )
    expected_date = datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%d")
    if auth.date != expected_date:
        raise SignatureError(
            "AuthFailure.SignatureFailure", "The date in Credential does not match X-TC-Timestamp (UTC)."
        )
    secret_key = secrets.get(auth.secret_id)
    if secret_key is None:
        raise SignatureError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    to_sign = string_to_sign(
        method=method,
        path=path,
        query=query,
        headers=headers,
        signed_headers=auth.signed_headers,
        body=body,
        timestamp=timestamp,
        date=auth.date,
        service=auth.service,
    )
    expected = sign(secret_key, auth.date, auth.service, to_sign)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    return auth
