"""Users' live view: a subscription per user, over SSE or WebSocket, and sending as that user.

IM's own client protocol is proprietary, so this is Parley's: authenticated with the
user's own UserSig (`?sdkappid=&identifier=<user>&usersig=`), it delivers each new
message (`MessageReceived`) and each modification (`MessageModified`, e.g. every chunk of
a robot's streaming message) as the message now stands, in admin_getroammsg's shape.

- `GET /im/v1/subscribe`: server-sent events `event: Ready|MessageReceived|MessageModified`,
  `data:` JSON; a keep-alive comment after each silence. Every event carries an `id:`; a client
  that reconnects with `Last-Event-ID` (to any instance) gets what it missed, nothing twice,
  and a Ready with `"Resumed": true` (false: too much time passed, or an id never given;
  it starts from now and should read the roaming history).
- `GET /im/v1/ws` (WebSocket): JSON frames `{"Event": ..., "Message": {...}}`; the client may
  send `{"Action": "sendmsg", "ReqId": ..., <sendmsg fields>}` and gets
  `{"Event": "Response", "ReqId": ..., <envelope>}` back; `{"Action": "ping"}` gets a pong.
- `POST /im/v1/sendmsg`: sendmsg as the authenticated user (From_Account is that user).

An authentication failure is the IM envelope with its code (HTTP 200 for SSE and sendmsg;
a WebSocket gets an `Error` frame, then is closed with 1008).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.faces.faults import fault_of
from parley.faces.im import errors
from parley.faces.im.calls import message_json, read_outgoing, send_c2c
from parley.faces.im.context import IMContext, im_context
from parley.faces.im.errors import IMError, envelope, failure, fault_envelope, fault_failure, json_response
from parley.messaging.delivery import Delivered, Overflowed

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EVENT_NAMES = {"received": "MessageReceived", "modified": "MessageModified"}


async def _authenticate(connection: HTTPConnection) -> tuple[IMContext, int, str]:
    """The context, SDKAppID and user a subscription or user request is for; IMError otherwise."""
    context = await im_context(connection)
    query = connection.query_params
    app = context.app(query.get("sdkappid"))
    user = context.verify(app, query.get("identifier"), query.get("usersig"))
    if not await context.messaging.service.known_accounts(app.sdkappid, [user]):
        raise IMError(errors.ACCOUNT_NOT_IMPORTED, f"account {user!r} has not been imported")
    return context, app.sdkappid, user


def delivery_json(delivered: Delivered) -> dict[str, Any]:
    return {"Event": EVENT_NAMES[delivered.kind], "Message": message_json(delivered.message)}


def _sse(event: str, data: dict[str, Any], event_id: str = "") -> bytes:
    head = b"id: " + event_id.encode() + b"\n" if event_id else b""
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def subscribe_sse(request: Request) -> Response:
    try:
        context, sdkappid, user = await _authenticate(request)
    except IMError as exc:
        return failure(exc.code, exc.info)
    except Exception as exc:
        return fault_failure(fault_of(exc, "IM subscription"), errors.LOGIN)

    # A Last-Event-ID is the id of a delivery; an unreadable one cannot be continued, which the
    # Ready event says (with Resumed false) rather than refusing a reconnecting client.
    after = request.headers.get("last-event-id", "").strip()[:100] or None

    async def stream() -> AsyncIterator[bytes]:
        async with context.messaging.delivery.subscribe(sdkappid, user, after) as subscription:
            ready = envelope(Identifier=user)
            if after is not None:
                ready["Resumed"] = subscription.resumed
            # Resumed, the client's place is still its last id (what it missed follows).
            yield _sse("Ready", ready, after if after is not None and subscription.resumed else subscription.position)
            while True:
                try:
                    delivered = await subscription.next(context.settings.subscription_keepalive)
                except Overflowed:
                    yield _sse("Error", envelope(errors.CALL_RATE_EXCEEDED, "the subscriber fell behind; resubscribe"))
                    return
                if delivered is None:
                    yield b": keep-alive\n\n"
                    continue
                data = delivery_json(delivered)
                yield _sse(data["Event"], data, delivered.id)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def user_sendmsg(request: Request) -> Response:
    try:
        context, sdkappid, user = await _authenticate(request)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise IMError(90001, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise IMError(90001, "the request body must be a JSON object")
        result = await send_c2c(context, sdkappid, read_outgoing(body, user))
    except IMError as exc:
        return failure(exc.code, exc.info)
    except Exception as exc:
        return fault_failure(fault_of(exc, "IM user sendmsg"), errors.OPENIM)
    return json_response(envelope(**result))


async def subscribe_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        context, sdkappid, user = await _authenticate(websocket)
    except IMError as exc:
        await websocket.send_text(json.dumps({"Event": "Error", **envelope(exc.code, exc.info)}))
        await websocket.close(1008)
        return
    except Exception as exc:
        fault = fault_envelope(fault_of(exc, "IM subscription"), errors.LOGIN)
        await websocket.send_text(json.dumps({"Event": "Error", **fault}))
        await websocket.close(1011)
        return
    sending = asyncio.Lock()  # deliveries and answers to the client's frames share the socket

    async def send(data: dict[str, Any]) -> None:
        async with sending:
            await websocket.send_text(orjson.dumps(data).decode())

    async with context.messaging.delivery.subscribe(sdkappid, user) as subscription:
        await send({"Event": "Ready", **envelope(Identifier=user)})
        reader = asyncio.create_task(_read_frames(websocket, send, context, sdkappid, user))
        try:
            while not reader.done():
                waiter = asyncio.create_task(subscription.next(context.settings.subscription_keepalive))
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    break
                try:
                    delivered = waiter.result()
                except Overflowed:
                    await websocket.close(1013)
                    break
                await send({"Event": "KeepAlive"} if delivered is None else delivery_json(delivered))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            reader.cancel()


async def _read_frames(websocket: WebSocket, send: Any, context: IMContext, sdkappid: int, user: str) -> None:
    """Answers the client's frames until it goes away."""
    try:
        while True:
            text = await websocket.receive_text()
            await send(await _answer_frame(text, context, sdkappid, user))
    except (WebSocketDisconnect, RuntimeError):
        return


async def _answer_frame(text: str, context: IMContext, sdkappid: int, user: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError:
        return {"Event": "Response", **envelope(90001, "the frame is not valid JSON")}
    if not isinstance(frame, dict):
        return {"Event": "Response", **envelope(90001, "the frame must be a JSON object")}
    action, req_id = frame.get("Action"), frame.get("ReqId")
    head = {"Event": "Response", "Action": action, "ReqId": req_id}
    if action == "ping":
        return {**head, **envelope()}
    if action != "sendmsg":
        return {**head, **envelope(errors.UNKNOWN_COMMAND, f"unknown Action {action!r} (sendmsg, ping)")}
    try:
        result = await send_c2c(context, sdkappid, read_outgoing(frame, user))
    except IMError as exc:
        return {**head, **envelope(exc.code, exc.info)}
    except Exception as exc:
        return {**head, **fault_envelope(fault_of(exc, "IM sendmsg frame"), errors.OPENIM)}
    return {**head, **envelope(**result)}


routes = [
    Route("/im/v1/subscribe", subscribe_sse, methods=["GET"]),
    Route("/im/v1/sendmsg", user_sendmsg, methods=["POST"]),
    WebSocketRoute("/im/v1/ws", subscribe_ws),
]
