"""The HTTP request node. Unless the operator allows it, it reaches only public addresses:
the host is resolved first, every address it resolves to is checked, and the request goes
to the checked address (so a second lookup cannot swap in a private one). Redirects are
followed by hand, each hop checked the same way."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from parley.workflow.definition import HTTPNode
from parley.workflow.references import as_text, render
from parley.workflow.runner import NodeContext, NodeFailed, NodeResult

MAX_REDIRECTS = 3


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def checked_address(host: str, port: int, allow_private: bool) -> str:
    """An address of `host` to connect to; refuses a host with any non-public address."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NodeFailed(f"http: cannot resolve {host!r}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise NodeFailed(f"http: {host!r} has no address")
    if not allow_private:
        refused = [str(a) for a in addresses if not _public(a)]
        if refused:
            raise NodeFailed(f"http: {host!r} resolves to a private, loopback or reserved address "
                             f"({', '.join(refused)}); the operator has not allowed those")
    return str(addresses[0])


async def run_http(ctx: NodeContext) -> NodeResult:
    node: HTTPNode = ctx.node  # type: ignore[assignment]
    policy = ctx.runtime.http
    url = as_text(render(node.url, ctx.values))
    headers = {k: as_text(v) for k, v in render(node.headers, ctx.values).items()}
    params = {k: as_text(v) for k, v in render(node.params, ctx.values).items()}
    body = render(node.body, ctx.values)
    content: bytes | None = None
    if isinstance(body, (dict, list)):
        content = orjson.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    elif body is not None:
        content = as_text(body).encode()
    ctx.record.input = {"method": node.method, "url": url, "headers": headers, "params": params, "body": body}
    timeout = node.timeout or policy.timeout
    method = node.method
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            response = await _send(client, method, url, headers, params, content, policy.allow_private,
                                   node.max_response_bytes)
            if response[0] in (301, 302, 303, 307, 308) and response[3]:
                url = str(httpx.URL(url).join(response[3]))
                params = {}
                if response[0] == 303 or (response[0] in (301, 302) and method == "POST"):
                    method, content = "GET", None
                continue
            break
        else:
            raise NodeFailed(f"http: more than {MAX_REDIRECTS} redirects")
    status, text, response_headers, _ = response
    try:
        parsed: Any = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        parsed = None
    return NodeResult(outputs={"status_code": status, "body": text, "headers": response_headers, "json": parsed})


async def _send(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], params: dict[str, str],
                content: bytes | None, allow_private: bool, limit: int) -> tuple[int, str, dict[str, str], str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NodeFailed(f"http: only http and https URLs are allowed, not {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await checked_address(parts.hostname, port, allow_private)
    host_for_url = f"[{address}]" if ":" in address else address
    netloc = f"{host_for_url}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    request_headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1]}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    try:
        request = client.build_request(method, pinned, headers=request_headers, params=params or None,
                                       content=content, extensions=extensions)
        response = await client.send(request, stream=True)
        try:
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    raise NodeFailed(f"http: the response is over {limit} bytes")
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        raise NodeFailed(f"http: {url} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise NodeFailed(f"http: {url}: {type(exc).__name__}: {exc}") from None
    text = data.decode(response.encoding or "utf-8", "replace")
    return response.status_code, text, dict(response.headers), response.headers.get("location")
