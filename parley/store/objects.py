"""Uploaded files (ADP's "COS" uploads for real-time documents and chat images).

`ObjectStore` is the seam: `LocalObjectStore` keeps objects as files under the data
directory; an S3/COS implementation can fill the same interface. Multipart uploads are
kept as numbered part files until they are completed or aborted.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
from pathlib import Path, PurePosixPath
from typing import Protocol


class ObjectError(Exception):
    """A key or upload id that does not exist or is not allowed; `code` is S3's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes) -> str:
        """Stores the object; returns its ETag (hex MD5)."""

    async def get(self, key: str) -> bytes | None: ...

    async def start_multipart(self, key: str) -> str:
        """A new upload id for `key`."""

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str: ...

    async def complete_multipart(self, key: str, upload_id: str) -> str:
        """Joins the parts in number order into the object; returns its ETag."""

    async def abort_multipart(self, key: str, upload_id: str) -> None: ...


def clean_key(key: str) -> str:
    """The key without leading slashes; refuses `..`, empty segments' tricks and absolute escapes."""
    key = key.lstrip("/")
    parts = PurePosixPath(key).parts
    if not key or any(p in ("..", ".") for p in parts) or "\\" in key or "\x00" in key:
        raise ObjectError("InvalidArgument", "invalid object key")
    return "/".join(parts)


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
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

    async def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        return await asyncio.to_thread(_write, path, data)

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

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        if not 1 <= number <= 10_000:
            raise ObjectError("InvalidArgument", "partNumber must be between 1 and 10000")
        directory = self._upload_dir(key, upload_id)
        return await asyncio.to_thread(_write, directory / f"{number:05d}", data)

    async def complete_multipart(self, key: str, upload_id: str) -> str:
        directory = self._upload_dir(key, upload_id)
        path = self._path(key)

        def complete() -> str:
            parts = sorted(p for p in directory.iterdir() if p.name.isdigit())
            if not parts:
                raise ObjectError("InvalidPart", "the upload has no parts")
            data = b"".join(p.read_bytes() for p in parts)
            etag = _write(path, data)
            shutil.rmtree(directory, ignore_errors=True)
            return etag

        return await asyncio.to_thread(complete)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        directory = self._upload_dir(key, upload_id)
        await asyncio.to_thread(shutil.rmtree, directory, True)


def _write(path: Path, data: bytes) -> str:
    """Writes atomically (a temporary file renamed into place); returns the hex MD5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    return etag_of(data)


def etag_of(data: bytes) -> str:
    """An object's ETag, as S3 and COS give it for a single-part upload: the hex MD5."""
    return hashlib.md5(data).hexdigest()
