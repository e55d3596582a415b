"""The services a running server shares with its faces (kept on `app.state.services`)."""

from __future__ import annotations

from dataclasses import dataclass

from parley.config import Settings
from parley.engine.apps import ApplicationService
from parley.engine.engine import Engine
from parley.models.registry import ModelRegistry


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    apps: ApplicationService
    models: ModelRegistry
