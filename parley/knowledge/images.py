"""The images of a question, fetched for a vision model.

An image Parley itself stored (uploaded under a DescribeStorageCredential grant) is read
from the object store through the real-time documents service, never over the network. Any
other URL is fetched only from a host the operator allows, and only when every address the
name resolves to is public: the connection goes to those checked addresses (no second
lookup between the check and the connect), redirects are not followed, and the size and time
are limited. Anything wrong raises ImageError; the turn then fails with 460025.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from parley.bounded_read import TooLarge, read_body
from parley.config import ImageSettings
from parley.knowledge.realtime_docs import DocumentError, RealtimeDocuments
from parley.store.objects import ObjectError, clean_key

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


class ImageError(ValueError):
    """An image that cannot be given to the model; the message says why."""


@dataclass(slots=True, frozen=True)
class FetchedImage:
    url: str
    mime: str
    data: bytes


def image_type(data: bytes) -> str | None:
    """The MIME type of an image by its first bytes; None when it is no image a model reads."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _SIGNATURES if data.startswith(magic)), None)


def host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*.") and host.endswith(pattern[1:]) or host == pattern:
            return True
    return False


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """Resolves a name and refuses it unless every address is public."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise OSError(f"{host} does not resolve: {exc}") from None
        results: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if not public_address(address):
                raise RefusedAddress(f"{host} resolves to {address}, which is not a public address")
            results.append(
                {"hostname": host, "host": address, "port": int(sockaddr[1]), "family": fam, "proto": proto,
                 "flags": socket.AI_NUMERICHOST}
            )
        if not results:
            raise OSError(f"{host} does not resolve")
        return results

    async def close(self) -> None:
        pass


class RefusedAddress(OSError):
    pass


class ImageFetcher:
    def __init__(self, settings: ImageSettings, documents: RealtimeDocuments | None, bucket: str) -> None:
        self.settings = settings
        self._documents = documents
        self._bucket = bucket

    def _own_key(self, url: str) -> str | None:
        """The object key when `url` names an upload under Parley's bucket path, else None."""
        path = unquote(urlsplit(url).path)
        prefix = f"/{self._bucket}/"
        if not path.startswith(prefix):
            return None
        try:
            return clean_key(path[len(prefix):])
        except ObjectError:
            return None

    async def fetch_all(self, app_id: int, urls: Sequence[str]) -> list[FetchedImage]:
        """The question's images, fetched together; the first failure raises ImageError."""
        if len(urls) > self.settings.max_images:
            raise ImageError(f"the question has {len(urls)} images; at most {self.settings.max_images} are read")
        return list(await asyncio.gather(*(self.fetch(app_id, url) for url in urls)))

    async def fetch(self, app_id: int, url: str) -> FetchedImage:
        key = self._own_key(url) if self._documents is not None else None
        if key is not None:
            assert self._documents is not None
            try:
                self._documents.granted_app(key, for_writing=False)
            except ObjectError:
                key = None  # not one of Parley's uploads: an external URL like any other
        if key is not None:
            try:
                data = await self._documents.uploaded(app_id, key)  # type: ignore[union-attr]
            except DocumentError as exc:
                raise ImageError(f"the uploaded image cannot be read: {exc}") from None
        else:
            data = await self._download(url)
        if len(data) > self.settings.max_bytes:
            raise ImageError(f"the image has {len(data)} bytes; at most {self.settings.max_bytes} are read")
        mime = image_type(data)
        if mime is None:
            raise ImageError("the file is not a PNG, JPEG, GIF, WebP or BMP image")
        return FetchedImage(url, mime, data)

    async def _download(self, url: str) -> bytes:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise ImageError("an image URL must be http or https")
        if not host_allowed(host, self.settings.allowed_hosts):
            raise ImageError(f"images are not fetched from {host} (not an allowed host)")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not public_address(host):
            raise ImageError(f"{host} is not a public address")
        limit = self.settings.max_bytes
        connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(), use_dns_cache=False, force_close=True)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status != 200:
                        raise ImageError(f"{host} answered HTTP {response.status}")
                    data = await read_body(response, limit)
        except TooLarge as exc:
            raise ImageError(f"the image is too large: {exc}") from None
        except RefusedAddress as exc:
            raise ImageError(str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            cause: Any = exc.os_error
            if isinstance(cause, RefusedAddress):
                raise ImageError(str(cause)) from None
            raise ImageError(f"{host} is unreachable: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ImageError(f"{host} is unreachable: {exc}") from None
        except TimeoutError:
            raise ImageError(f"{host} sent no image within {self.settings.timeout:g} s") from None
        return data
