"""`Bot.OnC2CMessage`: telling an operator's own bot about each message sent to a robot.

Posted as IM posts its callbacks (protocols/im.md, section 10): the query carries
`SdkAppid`, `CallbackCommand`, `contenttype`, `ClientIP`, `OptPlatform` and, with a token
configured, `RequestTime` and `Sign = hex(sha256(token + RequestTime))`. The bot's answer
is not awaited by the sender and does not change the message.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import httpx

from parley.config import IMAppSettings
from parley.messaging.service import MessageRow

log = logging.getLogger(__name__)


def sign(token: str, request_time: int | str) -> str:
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()


def on_c2c_message_body(message: MessageRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CallbackCommand": "Bot.OnC2CMessage",
        "From_Account": message.from_account,
        "To_Account": message.to_account,
        "MsgSeq": message.msg_seq,
        "MsgRandom": message.msg_random,
        "MsgTime": message.msg_time,
        "MsgKey": message.msg_key,
        "MsgId": message.msg_id,
        "OnlineOnlyFlag": int(message.online_only),
        "SendMsgResult": 0,
        "ErrorInfo": "send msg succeed",
        "UnreadMsgNum": 0,
        "MsgBody": message.body,
        "EventTime": int(time.time() * 1000),
    }
    if message.cloud_custom_data:
        body["CloudCustomData"] = message.cloud_custom_data
    return body


class CallbackPoster:
    """Posts each message to a robot to its application's callback URL (if it has one)."""

    def __init__(self, apps: dict[int, IMAppSettings], timeout: float) -> None:
        self._apps = apps
        self._timeout = timeout

    async def on_message(self, message: MessageRow) -> None:
        app = self._apps.get(message.sdkappid)
        if app is None or not app.callback_url:
            return
        params: dict[str, Any] = {
            "SdkAppid": message.sdkappid,
            "CallbackCommand": "Bot.OnC2CMessage",
            "contenttype": "json",
            "ClientIP": "127.0.0.1",
            "OptPlatform": "RESTAPI",
        }
        if app.callback_token:
            request_time = int(time.time())
            params.update(RequestTime=request_time, Sign=sign(app.callback_token, request_time))
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(app.callback_url, params=params, json=on_c2c_message_body(message))
            if response.status_code != 200:
                log.warning("Bot.OnC2CMessage callback to %s answered HTTP %s", app.callback_url, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("Bot.OnC2CMessage callback to %s failed: %s", app.callback_url, exc)
