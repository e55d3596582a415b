"""Which provider serves which configured search engine.

Providers register a factory under a name (`searxng`, `tavily`, `bing`, `generic`), the same
way as model providers (parley.models.registry): built-in ones here, others through the
`parley.search` entry-point group, so adding one never edits the engine.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.config import SearchProviderConfig, SearchSettings
from parley.plugins import load_plugins
from parley.search.base import SearchProvider

ProviderFactory = Callable[[SearchProviderConfig], SearchProvider]
_providers: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    _providers[name] = factory


def _builtin(name: str) -> ProviderFactory:
    def build(config: SearchProviderConfig) -> SearchProvider:
        from parley.search import http

        kinds = {"searxng": http.SearxngProvider, "tavily": http.TavilyProvider, "bing": http.BingProvider,
                 "generic": http.GenericProvider}
        return kinds[name](config)

    return build


for _name in ("searxng", "tavily", "bing", "generic"):
    register_provider(_name, _builtin(_name))



class SearchRegistry:
    """The configured search engines by name; each is built on first use."""

    def __init__(self, settings: SearchSettings) -> None:
        load_plugins("parley.search")
        self._configs: dict[str, SearchProviderConfig] = {}
        for config in settings.providers:
            if config.provider not in _providers:
                raise ValueError(f"search provider {config.name!r}: unknown provider {config.provider!r}")
            self._configs[config.name] = config
        self.default_name = settings.default or (settings.providers[0].name if settings.providers else None)
        self._built: dict[str, SearchProvider] = {}

    def names(self) -> list[str]:
        return list(self._configs)

    def config(self, name: str) -> SearchProviderConfig | None:
        return self._configs.get(name)

    def get(self, name: str) -> SearchProvider:
        provider = self._built.get(name)
        if provider is None:
            provider = self._built[name] = _providers[self._configs[name].provider](self._configs[name])
        return provider

    async def aclose(self) -> None:
        for provider in self._built.values():
            await provider.aclose()
        self._built.clear()
