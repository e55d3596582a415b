"""The local object store: objects written as they stream in, and the object limit, multipart
uploads' parts counted together."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.store.objects import LocalObjectStore, ObjectError

KEY = "public/realtime/1/9/abc/file.md"
LIMIT = 1000


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def leftovers(root: Path) -> list[Path]:
    """Files other than finished objects and part files (temporary files, left behind)."""
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path, max_object_bytes=LIMIT)


async def test_an_object_is_written_from_its_chunks(store):
    etag = await store.put(KEY, chunks(b"a" * 400, b"", b"b" * 600))
    assert await store.get(KEY) == b"a" * 400 + b"b" * 600
    assert etag == hashlib.md5(b"a" * 400 + b"b" * 600).hexdigest()


async def test_an_object_over_the_limit_or_a_broken_stream_leaves_nothing(store, tmp_path):
    with pytest.raises(ObjectError) as info:
        await store.put(KEY, chunks(b"a" * 600, b"b" * 401))
    assert info.value.code == "EntityTooLarge"

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise ObjectError("IncompleteBody", "the body ended early")

    with pytest.raises(ObjectError):
        await store.put(KEY, broken())
    assert await store.get(KEY) is None
    assert leftovers(tmp_path) == []


async def test_a_part_that_would_take_the_upload_past_the_limit_is_refused(store, tmp_path):
    upload = await store.start_multipart(KEY)
    await store.put_part(KEY, upload, 1, chunks(b"a" * 450))
    await store.put_part(KEY, upload, 2, chunks(b"b" * 450))
    with pytest.raises(ObjectError) as info:
        await store.put_part(KEY, upload, 3, chunks(b"c" * 101))
    assert info.value.code == "EntityTooLarge"
    await store.put_part(KEY, upload, 2, chunks(b"b" * 550))  # a part uploaded again replaces its old bytes
    etag = await store.complete_multipart(KEY, upload)
    assert await store.get(KEY) == b"a" * 450 + b"b" * 550
    assert etag == hashlib.md5(b"a" * 450 + b"b" * 550).hexdigest()
    assert leftovers(tmp_path) == []


async def test_parts_uploaded_side_by_side_past_the_limit_are_refused_at_completion(store):
    upload = await store.start_multipart(KEY)

    async def first_part() -> AsyncIterator[bytes]:
        yield b"a" * 300
        await store.put_part(KEY, upload, 2, chunks(b"b" * 600))  # finishes while part 1 is still arriving
        yield b"a" * 300

    await store.put_part(KEY, upload, 1, first_part())
    with pytest.raises(ObjectError) as info:
        await store.complete_multipart(KEY, upload)
    assert info.value.code == "EntityTooLarge"
    assert await store.get(KEY) is None


async def test_parts_are_joined_in_number_order_a_block_at_a_time(tmp_path, monkeypatch):
    import parley.store.objects as objects

    monkeypatch.setattr(objects, "COPY_BLOCK", 7)
    store = LocalObjectStore(tmp_path)
    upload = await store.start_multipart(KEY)
    parts = {3: b"third part", 1: b"first part, ", 2: b"second part, "}
    for number, data in parts.items():
        await store.put_part(KEY, upload, number, chunks(data))
    await store.complete_multipart(KEY, upload)
    assert await store.get(KEY) == b"first part, second part, third part"
