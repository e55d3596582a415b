"""The IM face's share of the running server, kept on `app.state`: the messaging domain
(opened with the other services) and the callback poster.

Authentication of callers (admins for REST, users for subscriptions) lives here too, as
both entry points need it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from parley.config import IMAppSettings, IMSettings
from parley.faces.im import errors, usersig
from parley.faces.im.callbacks import CallbackPoster
from parley.faces.im.errors import IMError
from parley.messaging.runtime import Messaging
from parley.services import Services

_opening = asyncio.Lock()


@dataclass(slots=True)
class IMContext:
    settings: IMSettings
    messaging: Messaging
    callbacks: CallbackPoster

    def app(self, raw_sdkappid: str | None) -> IMAppSettings:
        """The application named by the `sdkappid` query value, or the IMError a caller gets."""
        if not raw_sdkappid:
            raise IMError(errors.SDKAPPID_MISSING, "sdkappid is missing from the URL")
        if not (raw_sdkappid.isascii() and raw_sdkappid.isdigit()) or len(raw_sdkappid) > 12:
            raise IMError(errors.SDKAPPID_INVALID, "sdkappid is not a valid SDKAppID")
        app = self.messaging.apps.get(int(raw_sdkappid))
        if app is None:
            raise IMError(errors.SDKAPPID_UNKNOWN, f"SDKAppID {raw_sdkappid} does not exist")
        if app.disabled:
            raise IMError(errors.SDKAPPID_DISABLED, f"SDKAppID {raw_sdkappid} is disabled")
        return app

    @staticmethod
    def verify(app: IMAppSettings, identifier: str | None, sig: str | None) -> str:
        """Checks the caller's UserSig; returns the identifier it proves."""
        if not identifier:
            raise IMError(errors.ACCOUNT_OR_SIGNATURE, "identifier is missing from the URL")
        if not sig:
            raise IMError(errors.ACCOUNT_OR_SIGNATURE, "usersig is missing from the URL")
        try:
            usersig.verify(sig, sdkappid=app.sdkappid, identifier=identifier, key=app.secret_key)
        except usersig.UserSigError as exc:
            raise IMError(exc.code, exc.message) from None
        return identifier


async def im_context(connection: HTTPConnection) -> IMContext:
    """The face's context, made on first use: the callbacks start listening to the domain then."""
    state = connection.app.state
    context = getattr(state, "im_context", None)
    if context is not None:
        return context
    async with _opening:
        context = getattr(state, "im_context", None)
        if context is None:
            services: Services = state.services
            if services.messaging is None:
                raise RuntimeError("the server was started without the messaging domain")
            callbacks = CallbackPoster(services.messaging.apps, services.settings.im.callback_timeout)
            services.messaging.service.add_robot_listener(callbacks.on_message)
            context = IMContext(services.settings.im, services.messaging, callbacks)
            state.im_context = context
    return context
