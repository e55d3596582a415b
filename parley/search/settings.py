"""An application's online search settings (a field of its AppConfig)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SearchAppSettings(BaseModel):
    """Whether and how an application searches the web for its answers.

    The request can still turn search on or off for one turn (ADP `search_network`; CloudBase
    `searchEnable`, which needs the bot's own switch on as well).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    provider: str | None = None
    """A configured search engine's name (`[[search.providers]]`); none: the server's default."""
    count: int = Field(5, ge=1, le=20)
    """Results that go into the prompt as numbered sources."""
