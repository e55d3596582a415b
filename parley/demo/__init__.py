"""The demo application, created and published on first start so that a new server answers at once."""

from __future__ import annotations

from pathlib import Path

import yaml

from parley.engine.apps import App, ApplicationService

DEMO_FILE = Path(__file__).parent / "demo.yaml"


async def ensure_demo(apps: ApplicationService) -> App:
    """The demo application, created and published if it does not exist yet."""
    data = yaml.safe_load(DEMO_FILE.read_text(encoding="utf-8"))
    app = await apps.get(data["name"])
    if app is None:
        app, _ = await apps.apply(data)
    if not app.published:
        app = await apps.publish(app.name, "demo")
    return app
