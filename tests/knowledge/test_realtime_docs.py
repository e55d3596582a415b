"""Upload grants and the documents a turn may use."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from parley.knowledge.realtime_docs import DocumentError, RealtimeDocuments
from parley.store.apps import AppRepository
from parley.store.database import Database
from parley.store.objects import LocalObjectStore, ObjectError
from parley.store.realtime_docs import RealtimeDocRepository


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
async def setup(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await database.migrate()
    apps = AppRepository(database.engine)
    app = await apps.create("docs", {"name": "docs"})
    other = await apps.create("other", {"name": "other"})
    documents = RealtimeDocuments(RealtimeDocRepository(database.engine), LocalObjectStore(tmp_path / "objects"),
                                  lambda: "secret", upload_ttl=60, max_chars=10)
    yield documents, app.id, other.id
    await database.close()


async def test_a_grant_is_good_for_its_app_only_and_cannot_be_forged(setup):
    documents, app_id, _ = setup
    grant = documents.grant_upload(app_id, "md")
    assert documents.granted_app(grant.key, for_writing=True) == app_id
    forged = grant.key.replace(f"/{app_id}/", f"/{app_id + 1}/")
    with pytest.raises(ObjectError):
        documents.granted_app(forged, for_writing=True)
    with pytest.raises(DocumentError):
        documents.grant_upload(app_id, "../x")


@pytest.mark.parametrize("public", [True, False])
async def test_every_part_of_a_grant_is_covered_by_its_mac(setup, public):
    documents, app_id, _ = setup
    grant = documents.grant_upload(app_id, "md", public=public, kind="realtime")
    visibility, kind, app, expires, mac, name = grant.key.split("/")
    flipped = {"public": "private", "private": "public"}[visibility]
    for forged in (
        f"{flipped}/{kind}/{app}/{expires}/{mac}/{name}",
        f"{visibility}/offline/{app}/{expires}/{mac}/{name}",
        f"{visibility}/{kind}/{app}/{int(expires) + 1}/{mac}/{name}",
        f"{visibility}/{kind}/{app}/{expires}/{mac}/{'0' * 32}.md",
    ):
        for writing in (True, False):
            with pytest.raises(ObjectError) as info:
                documents.granted_app(forged, for_writing=writing)
            assert info.value.code == "AccessDenied"


async def test_an_expired_grant_can_be_read_but_not_written(setup, monkeypatch):
    documents, app_id, _ = setup
    grant = documents.grant_upload(app_id, "md")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    with pytest.raises(ObjectError):
        documents.granted_app(grant.key, for_writing=True)
    assert documents.granted_app(grant.key, for_writing=False) == app_id


async def test_a_turn_gets_its_sessions_documents_and_nothing_else(setup):
    documents, app_id, other_id = setup
    grant = documents.grant_upload(app_id, "md")
    await documents.objects.put(grant.key, chunks(b"# Title\n\nA long enough ", b"body of text"))
    doc = await documents.parse(app_id, "s1", "/" + grant.key, "notes.md", "md", "http://x/notes.md")
    assert doc.status == "success" and len(doc.text) == 10  # cut at max_chars
    used = await documents.for_turn(app_id, "s1", [{"doc_id": str(doc.id)}])
    assert [d.doc_id for d in used] == [doc.id]
    for app, session, doc_id in ((app_id, "s2", str(doc.id)), (other_id, "s1", str(doc.id)), (app_id, "s1", "123"), (app_id, "s1", "x")):
        with pytest.raises(DocumentError):
            await documents.for_turn(app, session, [{"doc_id": doc_id}])
    with pytest.raises(DocumentError):  # uploaded for another application
        await documents.parse(other_id, "s1", grant.key, "notes.md", "md", "")
