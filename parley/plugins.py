"""Loading provider plugins: packages that register a provider from an entry point."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

log = logging.getLogger(__name__)


def load_plugins(group: str) -> None:
    """Calls every `group` entry point's hook (which calls the group's `register_provider`);
    a broken plugin is logged, it does not take the server down."""
    for entry in entry_points(group=group):
        try:
            entry.load()()
        except Exception:
            log.exception("plugin %s of %s failed to load", entry.name, group)
