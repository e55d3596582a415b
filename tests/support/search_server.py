"""Search engines for the tests: a SearXNG-compatible JSON API and a generic provider, with
fixed results, on loopback in their own process (`python -m tests.support.search_server --port N`).

- GET /searxng/search?q=...&format=json: SearXNG's answer shape (`results[{title, url, content}]`);
- POST /generic {query, count}: `[{title, url, snippet}]`;
- POST /tavily/search {query, max_results}: Tavily's `{results[{title, url, content}]}`;
- GET /bing/v7.0/search?q=&count=: Bing's `{webPages: {value[{name, url, snippet}]}}`.

Both answer the same fixed results (RESULTS, first `count`) unless the query contains
"nothing" (no results), "slow" (an answer only after 30 s: a timeout), or "broken" (HTTP 500).
GET /_control/queries lists the queries received (provider, query, count, and the key sent
in the provider's header when there is one); POST
/_control/reset forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

RESULTS = [
    {"title": "Nezha 2 box office passes 9.8 billion", "url": "https://news.example.com/nezha-98", "snippet": "The film's total reached 9.8 billion yuan on 13 February."},
    {"title": "Nezha 2 enters the global top 20", "url": "https://film.example.org/top20", "snippet": "It is the only non-Hollywood film in the top 20."},
    {"title": "Forecasts for Nezha 2", "url": "https://data.example.net/forecast", "snippet": "Analysts forecast 15.3 billion yuan."},
    {"title": "Overseas release", "url": "https://world.example.com/nezha-abroad", "snippet": "Overseas takings passed 6 million."},
]

queries: list[dict[str, Any]] = []


async def _answer(provider: str, query: str, count: int, key: str | None = None) -> list[dict[str, Any]] | Response:
    queries.append({"provider": provider, "query": query, "count": count, **({"key": key} if key is not None else {})})
    if "slow" in query:
        await asyncio.sleep(30)
    if "broken" in query:
        return JSONResponse({"error": "scripted failure"}, status_code=500)
    if "nothing" in query:
        return []
    return RESULTS[:count]


async def searxng(request: Request) -> Response:
    if request.query_params.get("format") != "json":
        return Response("only format=json is served", status_code=403)
    found = await _answer("searxng", request.query_params.get("q", ""), len(RESULTS))
    if isinstance(found, Response):
        return found
    results = [{"title": r["title"], "url": r["url"], "content": r["snippet"], "engine": "fixed"} for r in found]
    return JSONResponse({"query": request.query_params.get("q", ""), "number_of_results": len(results), "results": results})


async def generic(request: Request) -> Response:
    body = await request.json()
    found = await _answer("generic", str(body.get("query", "")), int(body.get("count", 10)))
    return found if isinstance(found, Response) else JSONResponse(found)


async def tavily(request: Request) -> Response:
    body = await request.json()
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    found = await _answer("tavily", str(body.get("query", "")), int(body.get("max_results", 5)), key)
    if isinstance(found, Response):
        return found
    return JSONResponse({"query": body.get("query"), "results": [
        {"title": r["title"], "url": r["url"], "content": r["snippet"], "score": 0.9} for r in found
    ]})


async def bing(request: Request) -> Response:
    key = request.headers.get("ocp-apim-subscription-key", "")
    found = await _answer("bing", request.query_params.get("q", ""), int(request.query_params.get("count", "10")), key)
    if isinstance(found, Response):
        return found
    value = [{"id": str(i), "name": r["title"], "url": r["url"], "snippet": r["snippet"]} for i, r in enumerate(found)]
    return JSONResponse({"_type": "SearchResponse", "webPages": {"value": value}})


async def control_queries(request: Request) -> Response:
    return JSONResponse(queries)


async def control_reset(request: Request) -> Response:
    queries.clear()
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/searxng/search", searxng, methods=["GET"]),
        Route("/generic", generic, methods=["POST"]),
        Route("/tavily/search", tavily, methods=["POST"]),
        Route("/bing/v7.0/search", bing, methods=["GET"]),
        Route("/_control/queries", control_queries, methods=["GET"]),
        Route("/_control/reset", control_reset, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # a "slow" query still in flight must not hold the test run up when the module stops it
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()


class SearchEngines:
    """This server in its own process, for a test module."""

    def __init__(self) -> None:
        import subprocess
        import sys

        from tests.support.processes import ROOT, free_port, wait_until_up

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.search_server", "--port", str(self.port)], cwd=ROOT)
        wait_until_up(f"{self.url}/_control/queries", self.process)

    def queries(self) -> list[dict[str, Any]]:
        import httpx

        return httpx.get(f"{self.url}/_control/queries").json()

    def close(self) -> None:
        from tests.support.processes import stop

        stop(self.process)
