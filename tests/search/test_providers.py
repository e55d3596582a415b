"""Each built-in search provider against its backend's wire format, served on loopback
(tests/support/search_server.py), through the service the engine calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parley.config import SearchProviderConfig, SearchSettings
from parley.search.registry import SearchRegistry, register_provider
from parley.search.base import SearchResult
from parley.search.service import WebSearch
from tests.support.search_server import RESULTS, SearchEngines


@pytest.fixture(scope="module")
def engines() -> Iterator[SearchEngines]:
    engines = SearchEngines()
    yield engines
    engines.close()


def web_search(engines: SearchEngines, provider: str, timeout: float = 10.0, **extra) -> WebSearch:
    config = SearchProviderConfig(name=f"the-{provider}", provider=provider, base_url=f"{engines.url}/{provider}", timeout=timeout,
                                  api_key_env="PARLEY_TEST_SEARCH_KEY", **extra)
    return WebSearch(SearchRegistry(SearchSettings(providers=[config])))


@pytest.mark.parametrize("provider", ["searxng", "generic", "tavily", "bing"])
async def test_each_provider_returns_titled_links_in_order(engines, provider, monkeypatch):
    monkeypatch.setenv("PARLEY_TEST_SEARCH_KEY", "k-123")
    search = web_search(engines, provider)
    try:
        outcome = await search.search(None, "box office", 2)
    finally:
        await search.aclose()
    assert outcome.error == "" and outcome.provider == f"the-{provider}"
    assert outcome.results == tuple(SearchResult(r["title"], r["url"], r["snippet"]) for r in RESULTS[:2])
    received = engines.queries()[-1]
    assert received["provider"] == provider and received["query"] == "box office"
    if provider in ("tavily", "bing"):
        assert received["key"] == "k-123" and received["count"] == 2
    numbered = outcome.numbered(3)
    assert [r["id"] for r in numbered.references()] == ["3", "4"] and numbered.references()[0]["type"] == 4
    assert numbered.instructions().count("\n[") == 2 and "like [3]" in numbered.instructions()


@pytest.mark.parametrize(
    "query, error",
    [("slow query", "within 2 s"), ("broken query", "HTTP 500"), ("nothing at all", "")],
)
async def test_failures_and_empty_answers_become_an_outcome_not_an_exception(engines, query, error):
    search = web_search(engines, "searxng", timeout=2.0)  # the slow query answers after 30 s
    try:
        outcome = await search.search(None, query, 3)
    finally:
        await search.aclose()
    assert outcome.results == ()
    assert error in outcome.error if error else outcome.error == ""
    assert outcome.instructions() == "" and outcome.references() == []
    assert ("failed" if error else "found nothing") in outcome.note


async def test_an_unreachable_provider_or_an_unknown_name_says_so():
    config = SearchProviderConfig(name="gone", provider="generic", base_url="http://127.0.0.1:9/", timeout=2.0)
    search = WebSearch(SearchRegistry(SearchSettings(providers=[config])))
    try:
        assert "unreachable" in (await search.search(None, "q", 3)).error
        assert "no search provider named 'other'" in (await search.search("other", "q", 3)).error
    finally:
        await search.aclose()
    assert "no search provider is configured" in (await WebSearch(SearchRegistry(SearchSettings())).search(None, "q", 3)).error


async def test_a_registered_provider_is_chosen_by_configuration():
    class Fixed:
        def __init__(self, config):
            self.config = config

        async def search(self, query, count):
            return [SearchResult(f"{self.config.options['prefix']} {query}", "https://example.com/")] * count

        async def aclose(self):
            pass

    register_provider("fixed-for-test", Fixed)
    config = SearchProviderConfig(name="mine", provider="fixed-for-test", options={"prefix": "about"})
    outcome = await WebSearch(SearchRegistry(SearchSettings(providers=[config]))).search("mine", "tea", 2)
    assert [r.title for r in outcome.results] == ["about tea", "about tea"]
    with pytest.raises(ValueError, match="unknown provider"):
        SearchRegistry(SearchSettings(providers=[SearchProviderConfig(name="x", provider="nope")]))
