"""The indexes hybrid search is given on each database (knowledge.service.segment_indexes):
both halves keep to the visitor's scope, approximate and exact vector search agree, and on
PostgreSQL segments of another embedder's dimension and very common words are left out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from parley.config import KnowledgeServerSettings
from parley.knowledge.index import index_text, pack
from parley.knowledge.labels import EVERYTHING, Scope
from parley.knowledge.service import segment_indexes
from parley.store.database import Database
from parley.store.knowledge import KnowledgeRepository, StagedSegment
from parley.store.knowledge_search import PostgresKeywordSearch, rarest_terms

APP = 11
DIMS = 8


@dataclass
class Embedder:
    """What segment_indexes reads of an embedder: its name and dimension."""

    name: str = "test/8"
    dimensions: int = DIMS


def unit(seed: int, dims: int = DIMS) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


async def learn(repository: KnowledgeRepository, name: str, texts: list[str], vectors: list[np.ndarray],
                labels: dict[str, list[str]] | None = None) -> None:
    document, _ = await repository.register_document(
        APP, name, file_type="txt", size=1, content_hash=name, file_path=name, url="", labels=labels or {}
    )
    staged = [
        StagedSegment(i, text, index_text(text), None, None, "", 0, len(text), pack(vector))
        for i, (text, vector) in enumerate(zip(texts, vectors))
    ]
    await repository.stage_segments(APP, document.id, document.pending_generation, staged)
    assert await repository.commit_document(document.id, document.pending_generation, len(staged), name) == []


@pytest.fixture
async def indexed(database_url: str, tmp_path: Path):
    database = Database(database_url)
    await database.migrate()
    repository = KnowledgeRepository(database.engine)
    await learn(repository, "red.txt", [f"The red team meets in room {i}." for i in range(3)],
                [unit(i) for i in range(3)], {"team": ["red"]})
    await learn(repository, "blue.txt", [f"The blue team meets in hall {i}." for i in range(3)],
                [unit(10 + i) for i in range(3)], {"team": ["blue"]})
    await learn(repository, "all.txt", ["Every team meets in the canteen on Fridays."], [unit(20)])
    vectors, keywords = segment_indexes(database.engine, repository, KnowledgeServerSettings(), Embedder(), tmp_path)
    yield database, repository, vectors, keywords
    await vectors.aclose()
    await database.close()


BLUE = Scope({"team": frozenset({"blue"})})


async def test_keyword_search_ranks_matches_and_keeps_to_the_scope(indexed):
    _, repository, _, keywords = indexed
    everything = await keywords.search(APP, ["red", "meets"], 10, EVERYTHING)
    rows = {r.seq: r for r in await repository.segments_in_scope(APP, [seq for seq, _ in everything], EVERYTHING)}
    assert len(everything) == 7 and all(rows[seq].doc_name == "red.txt" for seq, _ in everything[:3])
    scoped = await keywords.search(APP, ["red", "meets"], 10, BLUE)
    names = {r.doc_name for r in await repository.segments_in_scope(APP, [seq for seq, _ in scoped], EVERYTHING)}
    assert len(scoped) == 4 and names == {"blue.txt", "all.txt"}
    assert await keywords.search(APP + 1, ["red"], 10, EVERYTHING) == []  # another application's


@pytest.mark.parametrize("exact", [False, True])
async def test_vector_search_finds_the_nearest_and_keeps_to_the_scope(indexed, exact):
    _, _, vectors, _ = indexed
    [(best, similarity), *_] = await vectors.nearest(APP, unit(1), 3, EVERYTHING, exact)
    assert (best.doc_name, best.ordinal) == ("red.txt", 1) and similarity == pytest.approx(1.0, abs=2e-3)
    scoped = await vectors.nearest(APP, unit(1), 10, BLUE, exact)
    assert len(scoped) == 4 and {row.doc_name for row, _ in scoped} == {"blue.txt", "all.txt"}
    assert [s for _, s in scoped] == sorted((s for _, s in scoped), reverse=True)


async def test_segments_of_another_dimension_are_left_out(indexed, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's per-process index skips them when it loads them (parley.knowledge.vectors)")
    _, repository, vectors, _ = indexed
    await learn(repository, "wide.txt", ["An older embedder's segment."], [unit(30, 2 * DIMS)])
    for exact in (False, True):
        found = await vectors.nearest(APP, unit(1), 20, EVERYTHING, exact)
        assert len(found) == 7 and "wide.txt" not in {row.doc_name for row, _ in found}


async def test_very_common_words_are_left_out_of_the_keyword_query(indexed, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("FTS5's term counts: tested through the service (tests/knowledge/test_service.py)")
    database, _, _, _ = indexed
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE kb_segments_search")
    postings = await PostgresKeywordSearch(database.engine)._term_postings()
    assert postings["meets"] == pytest.approx(7) and postings["team"] == pytest.approx(7)
    assert rarest_terms(["team", "canteen", "meets"], postings, limit=5) == ["canteen"]
    assert rarest_terms(["team", "canteen"], postings, limit=20) == ["canteen", "team"]


async def test_processes_starting_together_build_the_index_once(database_url):
    """Each process makes sure its embedder's HNSW index exists on first use (PostgreSQL)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's vector index is each process's own")
    from parley.store.knowledge_search import PostgresVectorSearch

    database = Database(database_url)
    try:
        await database.migrate()
        first, second = PostgresVectorSearch(database.engine, 16), PostgresVectorSearch(database.engine, 16)
        await asyncio.gather(first.prepare(), second.prepare())
        async with database.engine.connect() as conn:
            names = (await conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'kb_segments_search' AND indexname LIKE '%hnsw%'"
            )).scalars().all()
        assert names == ["kb_segments_search_hnsw_16"]
    finally:
        await database.close()
