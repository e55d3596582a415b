"""The built-in providers: SearXNG's JSON API, Tavily, Bing Web Search, and a generic HTTP
provider (`POST {query, count}` answered with `[{title, url, snippet}]`) for anything else.

Each speaks its backend's small wire format with aiohttp, as the model client does.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from parley.bounded_read import TooLarge, read_body
from parley.config import SearchProviderConfig
from parley.search.base import SearchError, SearchResult

RESPONSE_LIMIT = 2 * 1024 * 1024
"""The largest answer read from a provider."""


class HttpSearchProvider:
    """Shared plumbing: one session, the API key from the environment, JSON in and out."""

    def __init__(self, config: SearchProviderConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self._client().request(method, url, **kwargs) as response:
                body = await read_body(response, RESPONSE_LIMIT)
                if response.status >= 400:
                    raise SearchError(f"{self.config.name} answered HTTP {response.status}: {body[:200].decode('utf-8', 'replace')}")
        except aiohttp.ClientError as exc:
            raise SearchError(f"{self.config.name} is unreachable: {exc}") from exc
        except TooLarge as exc:
            raise SearchError(f"{self.config.name} answered too much: {exc}") from exc
        try:
            return orjson.loads(body)
        except ValueError as exc:
            raise SearchError(f"{self.config.name} answered with something other than JSON") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _results(items: Any, title: str, url: str, snippet: str, count: int) -> list[SearchResult]:
    """Results from a list of objects, keeping those with a URL (malformed items are skipped)."""
    if not isinstance(items, list):
        raise SearchError("the answer holds no list of results")
    found = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get(url), str) or not item[url]:
            continue
        found.append(SearchResult(str(item.get(title) or item[url]), item[url], str(item.get(snippet) or "")))
        if len(found) >= count:
            break
    return found


class SearxngProvider(HttpSearchProvider):
    """SearXNG's `GET /search?format=json` (the instance must allow the json format)."""

    async def search(self, query: str, count: int) -> list[SearchResult]:
        params = {"q": query, "format": "json", **{k: str(v) for k, v in self.config.options.items()}}
        data = await self._json("GET", self.config.base_url.rstrip("/") + "/search", params=params)
        return _results(data.get("results") if isinstance(data, dict) else None, "title", "url", "content", count)


class TavilyProvider(HttpSearchProvider):
    """Tavily's `POST /search` with a bearer key."""

    async def search(self, query: str, count: int) -> list[SearchResult]:
        base = self.config.base_url or "https://api.tavily.com"
        body = {"query": query, "max_results": count, **self.config.options}
        headers = {"Authorization": f"Bearer {self.config.api_key()}"}
        data = await self._json("POST", base.rstrip("/") + "/search", json=body, headers=headers)
        return _results(data.get("results") if isinstance(data, dict) else None, "title", "url", "content", count)


class BingProvider(HttpSearchProvider):
    """Bing Web Search v7: `GET /v7.0/search` with the subscription key header."""

    async def search(self, query: str, count: int) -> list[SearchResult]:
        base = self.config.base_url or "https://api.bing.microsoft.com"
        params = {"q": query, "count": str(count), **{k: str(v) for k, v in self.config.options.items()}}
        headers = {"Ocp-Apim-Subscription-Key": self.config.api_key()}
        data = await self._json("GET", base.rstrip("/") + "/v7.0/search", params=params, headers=headers)
        pages = data.get("webPages") if isinstance(data, dict) else None
        return _results(pages.get("value") if isinstance(pages, dict) else [], "name", "url", "snippet", count)


class GenericProvider(HttpSearchProvider):
    """Any service answering `POST {query, count}` with `[{title, url, snippet}]` (or
    `{"results": [...]}`); a bearer key is sent when one is configured."""

    async def search(self, query: str, count: int) -> list[SearchResult]:
        if not self.config.base_url:
            raise SearchError(f"{self.config.name}: base_url is required")
        key = self.config.api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        data = await self._json("POST", self.config.base_url, json={"query": query, "count": count}, headers=headers)
        if isinstance(data, dict):
            data = data.get("results")
        return _results(data, "title", "url", "snippet", count)
