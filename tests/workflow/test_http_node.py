"""The HTTP request node, and its refusal of private and loopback addresses."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from parley.workflow.definition import parse_workflow
from parley.workflow.nodes.http import checked_address
from parley.workflow.runner import NodeFailed
from tests.workflow.conftest import Driver, LoopbackServer


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({
        "method": request.method, "path": request.url.path, "query": dict(request.query_params),
        "token": request.headers.get("x-token"), "host": request.headers.get("host"),
        "body": (await request.body()).decode(),
    })


async def moved(request: Request) -> RedirectResponse:
    return RedirectResponse("/echo/after", status_code=302)


async def big(request: Request) -> PlainTextResponse:
    return PlainTextResponse("x" * 5000)


APP = Starlette(routes=[Route("/echo/{rest:path}", echo, methods=["GET", "POST"]), Route("/moved", moved),
                        Route("/big", big)])


def http_workflow(url: str, **fields) -> object:
    return parse_workflow({
        "name": "http",
        "nodes": [
            {"id": "start", "type": "start", "inputs": [{"name": "q", "type": "string", "default": "tea"}]},
            {"id": "call", "type": "http", "url": url, **fields},
            {"id": "end", "type": "end", "reply": "{{call.status_code}} {{call.json.method}} {{call.json.body}}",
             "outputs": {"json": "{{call.json}}"}},
        ],
        "edges": [{"source": "start", "target": "call"}, {"source": "call", "target": "end"}],
    })


async def test_loopback_is_refused_unless_allowed(driver: Driver) -> None:
    async with LoopbackServer(APP) as server:
        refused = await driver.run(http_workflow(f"{server.url}/echo/x"))
        assert refused.state.status == "failed"
        assert refused.node("call")["FailMessage"] == (
            "http: '127.0.0.1' resolves to a private, loopback or reserved address (127.0.0.1); "
            "the operator has not allowed those")
        driver.runner.runtime.http.allow_private = True
        allowed = await driver.run(http_workflow(
            f"{server.url}/echo/{{{{start.q}}}}", method="POST", params={"n": "{{start.q}}"},
            headers={"X-Token": "t-{{start.q}}"}, body={"drink": "{{start.q}}"}))
    assert allowed.last().reply == '200 POST {"drink":"tea"}'
    json = allowed.state.outputs["json"]
    assert json["path"] == "/echo/tea" and json["query"] == {"n": "tea"} and json["token"] == "t-tea"
    assert json["host"] == f"127.0.0.1:{server.port}"
    assert allowed.node("call")["NodeType"] == 8


async def test_redirects_are_followed_and_checked(driver: Driver) -> None:
    driver.runner.runtime.http.allow_private = True
    async with LoopbackServer(APP) as server:
        outcome = await driver.run(http_workflow(f"http://localhost:{server.port}/moved"))
        assert outcome.state.outputs["json"]["path"] == "/echo/after"
        too_big = await driver.run(http_workflow(f"{server.url}/big", max_response_bytes=100))
    assert too_big.node("call")["FailMessage"] == "http: the response is over 100 bytes"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                  "0.0.0.0", "::1", "fd00::1", "::ffff:127.0.0.1", "100.64.0.1"])
async def test_non_public_addresses_are_refused(host: str) -> None:
    with pytest.raises(NodeFailed, match="private, loopback or reserved"):
        await checked_address(host, 80, allow_private=False)
    assert await checked_address(host, 80, allow_private=True)


async def test_public_addresses_pass() -> None:
    assert await checked_address("8.8.8.8", 443, allow_private=False) == "8.8.8.8"


@pytest.mark.parametrize(("url", "words"), [("file:///etc/passwd", "only http and https URLs are allowed"),
                                            ("http://nonexistent.invalid/", "cannot resolve 'nonexistent.invalid'")])
async def test_bad_urls_fail_the_node(driver: Driver, url: str, words: str) -> None:
    outcome = await driver.run(http_workflow(url))
    assert words in outcome.node("call")["FailMessage"]
