"""Reading an aiohttp response body up to a limit.

`StreamReader.read(n)` gives back whatever has arrived, up to n bytes, not the whole body:
a body that arrives in several packets must be read in a loop.
"""

from __future__ import annotations

import aiohttp


class TooLarge(Exception):
    """The body is longer than the limit (only the limit and a little more were read)."""


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body; raises TooLarge past `limit` bytes, without reading on."""
    if response.content_length is not None and response.content_length > limit:
        raise TooLarge(f"the body has {response.content_length} bytes; at most {limit} are read")
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"the body has more than {limit} bytes")
    return bytes(data)
