"""Documents over time: replaced, deleted, interrupted and resumed, seen from another process;
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from parley.knowledge import search as search_module
from parley.knowledge.index import pack
from parley.knowledge.service import KnowledgeService
from parley.knowledge.settings import KnowledgeSettings
from parley.store.knowledge import StagedSegment
from tests.knowledge.test_service import open_service

APP = 7
SETTINGS = KnowledgeSettings(variable_bindings={"team": "team"})


def long_document() -> bytes:
    """About 70 segments (with 100-character segments): more than two learning batches."""
    topics = [f"Paragraph {i} explains rule number {i} of the warehouse safety handbook in detail." for i in range(70)]
    topics[65] = "Forklift drivers must wear a yellow helmet and a reflective vest at all times."
    return "\n\n".join(topics).encode()


async def texts(service: KnowledgeService, question: str, settings: KnowledgeSettings = SETTINGS) -> list[str]:
    resolution = await service.resolve(APP, question, settings=settings)
    return [p.text for p in resolution.passages]


async def test_a_changed_document_replaces_its_segments_and_delete_removes_them(tmp_path: Path, database_url: str):
    database, service = await open_service(tmp_path, database_url)
    try:
        first = await service.add_document(APP, "menu.txt", b"The canteen serves noodles on Mondays.", background=False)
        await service.learn(first.document.id)
        assert "noodles" in " ".join(await texts(service, "What does the canteen serve on Mondays?"))

        again = await service.add_document(APP, "menu.txt", b"The canteen serves noodles on Mondays.", background=False)
        assert again.action == "unchanged"

        changed = await service.add_document(APP, "menu.txt", b"The canteen serves dumplings on Mondays.", background=False)
        assert (changed.action, changed.document.id) == ("changed", first.document.id)
        await service.learn(changed.document.id)
        found = " ".join(await texts(service, "What does the canteen serve on Mondays?"))
        assert "dumplings" in found and "noodles" not in found
        assert [d.segment_count for d in await service.list_documents(APP)] == [1]

        assert await service.delete_document(APP, first.document.id)
        assert await texts(service, "What does the canteen serve on Mondays?") == []
        assert await service.list_documents(APP) == []
    finally:
        await service.aclose()
        await database.close()


async def test_an_interrupted_document_stays_invisible_then_resumes(tmp_path: Path, database_url: str):
    database, service = await open_service(tmp_path, database_url, segment_chars=100)
    question = "What must forklift drivers wear?"
    try:
        registered = await service.add_document(APP, "handbook.txt", long_document(), background=False)
        staged: list[int] = []

        def progress(_document, done: int, total: int) -> None:
            if done >= 32 and not any(d >= 32 for d in staged):  # the server shuts down after the first batch
                asyncio.get_running_loop().create_task(service.ingestor.aclose())
            staged.append(done)

        with pytest.raises(asyncio.CancelledError):
            await service.learn(registered.document.id, progress)
        document = await service.get_document(APP, registered.document.id)
        assert document.status == "learning" and 32 <= staged[-1] < 70
        assert len(await service.repository.staged_ordinals(document.id, document.pending_generation)) == staged[-1]
        assert await texts(service, question) == []  # half-learned: not visible at all
        again = await service.add_document(APP, "handbook.txt", long_document(), background=False)
        assert again.action == "resumed"  # `parley kb add` run again picks it up where it stopped
    finally:
        await service.aclose()
        await database.close()

    database, service = await open_service(tmp_path, database_url, segment_chars=100)
    try:
        assert await service.start() == 1  # a restart resumes it in the background
        await service.idle()
        document = await service.get_document(APP, registered.document.id)
        assert (document.status, document.segment_count) == ("success", 70)
        assert "yellow helmet" in (await texts(service, question))[0]
    finally:
        await service.aclose()
        await database.close()


async def test_another_process_sees_new_and_replaced_segments(tmp_path: Path, database_url: str):
    """The CLI learns while a server answers: each has its own vector index over one database."""
    database, writer = await open_service(tmp_path, database_url)
    other_database, reader = await open_service(tmp_path, database_url)
    try:
        assert await texts(reader, "Which day is the market open?") == []
        first = await writer.add_document(APP, "market.md", b"# Market\n\nThe market is open on Saturdays.", background=False)
        await writer.learn(first.document.id)
        assert "Saturdays" in (await texts(reader, "Which day is the market open?"))[0]
        changed = await writer.add_document(APP, "market.md", b"# Market\n\nThe market is open on Sundays.", background=False)
        await writer.learn(changed.document.id)
        found = await texts(reader, "Which day is the market open?")
        assert "Sundays" in found[0] and not any("Saturdays" in t for t in found)
    finally:
        await writer.aclose()
        await reader.aclose()
        await database.close()
        await other_database.close()


async def test_the_vector_index_is_saved_and_loaded(tmp_path: Path, database_url: str):
    """On SQLite the process saves its index and loads it again; on PostgreSQL the index is the
    database's and no file is written."""
    database, service = await open_service(tmp_path, database_url)
    registered = await service.add_document(APP, "tea.txt", "绿茶产自杭州西湖。".encode(), background=False)
    await service.learn(registered.document.id)
    assert await texts(service, "西湖出产什么茶？")
    await service.aclose()
    await database.close()
    saved = list((tmp_path / "knowledge" / "index").rglob("vectors-*.usearch"))
    assert len(saved) == (1 if database_url.startswith("sqlite") else 0)

    database, service = await open_service(tmp_path, database_url)
    try:
        assert "绿茶" in (await texts(service, "西湖出产什么茶？"))[0]
    finally:
        await service.aclose()
        await database.close()


async def test_a_wide_scope_through_the_approximate_index_still_excludes(tmp_path: Path, database_url: str, monkeypatch):
    monkeypatch.setattr(search_module, "EXACT_SCOPE_LIMIT", 0)  # force the ANN path for scoped questions
    database, service = await open_service(tmp_path, database_url)
    try:
        for name, team, text in [
            ("red.txt", "red", "The red team meets in room 101 on Tuesdays."),
            ("blue.txt", "blue", "The blue team meets in room 202 on Thursdays."),
        ]:
            registered = await service.add_document(APP, name, text.encode(), labels={"team": [team]}, background=False)
            await service.learn(registered.document.id)
        scope = service.scope({"team": "blue"}, None, SETTINGS)
        resolution = await service.resolve(APP, "Where does the red team meet?", scope, SETTINGS)
        assert {p.doc_name for p in resolution.passages} <= {"blue.txt"}
    finally:
        await service.aclose()
        await database.close()


async def test_a_new_version_added_while_the_old_one_is_learning_wins(tmp_path: Path, database_url: str):
    database, service = await open_service(tmp_path, database_url, segment_chars=100)
    try:
        old = await service.add_document(APP, "handbook.txt", long_document(), background=False)
        learning = asyncio.create_task(service.learn(old.document.id))
        await asyncio.sleep(0)
        new = await service.add_document(APP, "handbook.txt", b"Forklift drivers must wear a blue helmet.", background=False)
        assert new.action == "changed"
        document = await service.learn(new.document.id)
        await learning
        assert (document.status, document.segment_count) == ("success", 1)
        assert "blue helmet" in (await texts(service, "What must forklift drivers wear?"))[0]
    finally:
        await service.aclose()
        await database.close()


async def test_a_batch_staged_again_is_kept_once(tmp_path: Path, database_url: str):
    """Two learners of one document (say `parley kb resume` beside a server) may stage the same
    batch: the second write is ignored, not an error (on PostgreSQL it was a unique violation)."""
    database, service = await open_service(tmp_path, database_url)
    try:
        registered = await service.add_document(APP, "twice.txt", b"Staged twice.", background=False)
        document = registered.document
        batch = [StagedSegment(0, "Staged twice.", "staged twice", None, None, "", 0, 13, pack(np.ones(4) / 2))]
        await service.repository.stage_segments(APP, document.id, document.pending_generation, batch)
        await service.repository.stage_segments(APP, document.id, document.pending_generation, batch)
        assert await service.repository.staged_ordinals(document.id, document.pending_generation) == {0}
    finally:
        await service.aclose()
        await database.close()
