"""Uploaded files (ADP's "COS" uploads for real-time documents and chat images).

`ObjectStore` is the seam: `LocalObjectStore` keeps objects as files under the data
directory; an S3/COS implementation can fill the same interface. Objects are written as
their bytes arrive, into a temporary file renamed into place, so an upload is never held
whole in memory. Multipart uploads are kept as numbered part files until they are completed
(copied block by block into the object) or aborted.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
from collections.abc import AsyncIterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol


class ObjectError(Exception):
    """A key or upload id that does not exist or is not allowed; `code` is S3's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ObjectStore(Protocol):
    """Objects are written from a stream of chunks, so that no upload is ever held whole in memory.

    A chunk stream that raises leaves nothing behind; the error propagates. A store refuses an
    object (or a multipart upload's parts together) larger than its limit with EntityTooLarge.
    """

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> str:
        """Stores the object; returns its ETag (hex MD5)."""

    async def get(self, key: str) -> bytes | None: ...

    async def start_multipart(self, key: str) -> str:
        """A new upload id for `key`."""

    async def put_part(self, key: str, upload_id: str, number: int, chunks: AsyncIterable[bytes]) -> str:
        """Stores one part; refuses it when the upload's parts would pass the object limit."""

    async def complete_multipart(self, key: str, upload_id: str) -> str:
        """Joins the parts in number order into the object; returns its ETag (the whole object's MD5)."""

    async def abort_multipart(self, key: str, upload_id: str) -> None: ...


def clean_key(key: str) -> str:
    """The key without leading slashes; refuses `..`, empty segments' tricks and absolute escapes."""
    key = key.lstrip("/")
    parts = PurePosixPath(key).parts
    if not key or any(p in ("..", ".") for p in parts) or "\\" in key or "\x00" in key:
        raise ObjectError("InvalidArgument", "invalid object key")
    return "/".join(parts)


class LocalObjectStore:
    def __init__(self, root: Path, max_object_bytes: int | None = None) -> None:
        self.root = root
        self.max_object_bytes = max_object_bytes
        """The largest object, a multipart upload's parts counted together; None: no limit."""
        self._uploads = root / ".multipart"

    def _path(self, key: str) -> Path:
        return self.root / clean_key(key)

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise ObjectError("NoSuchUpload", "the upload does not exist")
        path = self._uploads / upload_id
        owner = path / ".key"
        if not owner.exists() or owner.read_text() != clean_key(key):
            raise ObjectError("NoSuchUpload", "the upload does not exist")
        return path

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> str:
        return await _write(self._path(key), chunks, self.max_object_bytes)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return await asyncio.to_thread(lambda: path.read_bytes() if path.is_file() else None)

    async def start_multipart(self, key: str) -> str:
        upload_id = secrets.token_hex(16)
        directory = self._uploads / upload_id
        clean = clean_key(key)

        def start() -> None:
            directory.mkdir(parents=True)
            (directory / ".key").write_text(clean)

        await asyncio.to_thread(start)
        return upload_id

    async def put_part(self, key: str, upload_id: str, number: int, chunks: AsyncIterable[bytes]) -> str:
        if not 1 <= number <= 10_000:
            raise ObjectError("InvalidArgument", "partNumber must be between 1 and 10000")
        directory = self._upload_dir(key, upload_id)
        name = f"{number:05d}"
        limit = None
        if self.max_object_bytes is not None:
            others = await asyncio.to_thread(_parts_size, directory, skip=name)
            limit = self.max_object_bytes - others  # the part may take the upload up to the limit, not past it
        return await _write(directory / name, chunks, limit)

    async def complete_multipart(self, key: str, upload_id: str) -> str:
        directory = self._upload_dir(key, upload_id)
        path = self._path(key)
        limit = self.max_object_bytes

        def complete() -> str:
            parts = sorted(p for p in directory.iterdir() if p.name.isdigit())
            if not parts:
                raise ObjectError("InvalidPart", "the upload has no parts")
            if limit is not None and sum(p.stat().st_size for p in parts) > limit:
                raise ObjectError("EntityTooLarge", f"the parts together are larger than the {limit}-byte limit")
            etag = _join(parts, path)
            shutil.rmtree(directory, ignore_errors=True)
            return etag

        return await asyncio.to_thread(complete)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        directory = self._upload_dir(key, upload_id)
        await asyncio.to_thread(shutil.rmtree, directory, True)


async def _write(path: Path, chunks: AsyncIterable[bytes], limit: int | None) -> str:
    """Streams the chunks into a temporary file renamed into place once complete; returns the
    hex MD5. Past `limit` bytes, or when the stream raises, nothing is left behind."""
    temporary = _temporary(path)
    digest = hashlib.md5()
    size = 0
    file = await asyncio.to_thread(_open_new, temporary)
    try:
        async for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise ObjectError("EntityTooLarge", f"the object is larger than the {limit}-byte limit")
            digest.update(chunk)
            await asyncio.to_thread(file.write, chunk)
        await asyncio.to_thread(file.close)
        await asyncio.to_thread(temporary.replace, path)
    except BaseException:  # a refused or broken stream, a cancelled request: leave nothing behind
        _discard(file, temporary)
        raise
    return digest.hexdigest()


def _join(parts: list[Path], path: Path) -> str:
    """Copies the parts one block at a time into the object; returns its hex MD5."""
    temporary = _temporary(path)
    digest = hashlib.md5()
    file = _open_new(temporary)
    try:
        for part in parts:
            with part.open("rb") as source:
                while block := source.read(COPY_BLOCK):
                    digest.update(block)
                    file.write(block)
        file.close()
        temporary.replace(path)
    except BaseException:
        _discard(file, temporary)
        raise
    return digest.hexdigest()


COPY_BLOCK = 1024 * 1024


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _open_new(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


def _discard(file: BinaryIO, path: Path) -> None:
    file.close()
    path.unlink(missing_ok=True)


def _parts_size(directory: Path, skip: str) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.isdigit() and p.name != skip)


def etag_of(data: bytes) -> str:
    """An object's ETag as Parley gives it: the hex MD5 of the whole object (a single-part upload's
    ETag on S3 and COS)."""
    return hashlib.md5(data).hexdigest()
