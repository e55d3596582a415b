"""Request body limits for every face, enforced at the ASGI level while the body streams in.

Each face declares the paths it serves, the largest body it reads there and how it refuses a
longer one in its own wire shape (`BodyLimit`). `BodyLimits` sits in front of the whole server
(Socket.IO and the SSE hot path included) and, with the first limit whose paths match:

- a `Content-Length` over the limit is refused at once, before a byte of the body is read (the
  HTTP server delivers no more than `Content-Length` bytes, so nothing else needs counting);
- a body without a length (chunked) is counted as it arrives; once the count passes the limit
  the refusal is sent, and the application sees the client leave (`http.disconnect`), as when a
  client goes away mid-body. Whatever the application sends after that is dropped.

Refusals carry `Connection: close`: the client stops sending, and the connection is not used
again with the rest of a body still in it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

Refusal = Callable[[Scope, int], ASGIApp]
"""(the request's scope, the limit) -> the response refusing its body, in the face's shape."""


@dataclass(frozen=True, slots=True)
class BodyLimit:
    applies: Callable[[str], bool]
    """Whether a request path is this face's."""
    limit: int
    """Bytes."""
    refuse: Refusal


def plain_refusal(scope: Scope, limit: int) -> Response:
    """The refusal for paths no face claims: the admin API's error shape, HTTP 413."""
    body = {"error": {"code": "body_too_large", "message": f"the request body is larger than {limit} bytes"}}
    return Response(orjson.dumps(body), status_code=413, media_type="application/json")


class BodyLimits:
    def __init__(self, app: ASGIApp, limits: Sequence[BodyLimit], default: int) -> None:
        self.app = app
        self.limits = list(limits)
        self.default = BodyLimit(lambda path: True, default, plain_refusal)

    def limit_for(self, path: str) -> BodyLimit:
        return next((rule for rule in self.limits if rule.applies(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.limit_for(scope["path"])
        declared = content_length(scope)
        if declared is None:
            await _Counted(self.app, rule, scope, receive, send).run()
        elif declared > rule.limit:
            await _refuse(rule, scope, send)
        else:
            await self.app(scope, receive, send)


def content_length(scope: Scope) -> int | None:
    """The declared body length; None when there is none (or it is not a plain number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) <= 20 else None
    return None


async def _refuse(rule: BodyLimit, scope: Scope, send: Send) -> None:
    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await rule.refuse(scope, rule.limit)(scope, nothing, closing)


class _Counted:
    """One request whose body has no declared length: counted as the application reads it."""

    def __init__(self, app: ASGIApp, rule: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self.app = app
        self.rule = rule
        self.scope = scope
        self._receive = receive
        self._send = send
        self.received = 0
        self.cut = False
        self.started = False

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception:
            if not self.cut:
                raise
            # The application met the disconnect this class made up; the client has its answer.
            log.debug("after a body over the limit on %s", self.scope["path"], exc_info=True)

    async def receive(self) -> Message:
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.rule.limit:
                self.cut = True
                if not self.started:
                    await _refuse(self.rule, self.scope, self._send)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.cut:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
