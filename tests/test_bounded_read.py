"""Reading a response body that arrives in several packets, up to a limit."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from parley.bounded_read import TooLarge, read_body

PIECES = [bytes([65 + i]) * 3000 for i in range(5)]


async def slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
    await response.prepare(request)
    for piece in PIECES:
        await response.write(piece)
        await asyncio.sleep(0.02)  # each piece in a packet of its own
    await response.write_eof()
    return response


@pytest.fixture
async def url():
    app = web.Application()
    app.router.add_get("/", slow_body)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_a_body_in_several_packets_is_read_whole(url):
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert await read_body(response, 100_000) == b"".join(PIECES)


async def test_a_body_past_the_limit_is_refused(url):
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        with pytest.raises(TooLarge):
            await read_body(response, 10_000)
