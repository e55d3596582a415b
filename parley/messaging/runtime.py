"""Opens the IM domain against the shared settings, database, engine and applications."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from parley.config import IMAppSettings, Settings
from parley.engine.apps import ApplicationService
from parley.engine.engine import Engine
from parley.messaging.delivery import Delivery, LocalDelivery
from parley.messaging.limits import LocalRateLimiter, RateLimiter
from parley.messaging.responder import RobotResponder
from parley.messaging.service import MessagingService
from parley.messaging.shared import SharedState
from parley.store.messaging import MessagingRepository


@dataclass(slots=True)
class Messaging:
    """The IM domain as the server runs it: the service, its delivery, limits and Parley's robots."""

    service: MessagingService
    delivery: Delivery
    limiter: RateLimiter
    responder: RobotResponder
    apps: dict[int, IMAppSettings]

    async def aclose(self) -> None:
        await self.service.aclose()


def open_messaging(
    settings: Settings, database: AsyncEngine, engine: Engine, apps: ApplicationService, *,
    delivery: Delivery | None = None, limiter: RateLimiter | None = None, state: SharedState | None = None,
) -> Messaging:
    """The IM domain; `delivery`, `limiter` and `state` are shared with other instances (through
    the bus) when given, this process's own otherwise."""
    im_apps = {app.sdkappid: app for app in settings.im.apps}
    delivery = delivery or LocalDelivery(settings.im.resume_window)
    service = MessagingService(
        MessagingRepository(database),
        delivery,
        {sdkappid: frozenset(app.admins) for sdkappid, app in im_apps.items()},
        state,
    )
    responder = RobotResponder(service, engine, apps, lambda sdkappid: im_apps[sdkappid].robots if sdkappid in im_apps else {})
    service.add_robot_listener(responder.on_message)
    return Messaging(service, delivery, limiter or LocalRateLimiter(), responder, im_apps)
