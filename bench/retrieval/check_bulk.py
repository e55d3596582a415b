"""Are bulk-loaded rows what the pipeline writes, as far as search can tell?

    nice -n 10 python -m bench.retrieval.check_bulk --size 5000

Loads one corpus twice on the benchmark's PostgreSQL, into two databases: learned through the
pipeline, and by COPY (bench/retrieval/bulk.py). Then builds the HNSW index on each as the
benchmark does and compares what search reads: the documents and committed segments (all but
the minted ids and times), the search table's rows (halfvec, tsvector), exact nearest
neighbours and keyword results for the benchmark's questions (must be equal), and recall@10 of
the approximate index and the hybrid top 10 (the HNSW graph is built with random levels, so
these are reported side by side, not required to be equal). Exits 1 on a difference.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.retrieval.bulk import bulk_learn
from bench.retrieval.corpus import SyntheticEmbedder, documents, questions
from bench.retrieval.run import APP, POSTGRES_SETTINGS, QUESTIONS, _postgres_build
from parley.config import KnowledgeServerSettings
from parley.knowledge.index import query_terms
from parley.knowledge.labels import EVERYTHING
from parley.knowledge.service import KnowledgeService
from parley.store.database import Database
from parley.store.knowledge_search import PostgresKeywordSearch, PostgresVectorSearch

DOCUMENT_FIELDS = (
    "name, file_type, size, content_hash, url, title, attr_range, status, reason, "
    "live_generation, pending_generation, segment_count"
)
SEGMENT_FIELDS = 's.seq, d.name, s.app_id, s.generation, s.ordinal, s.text, s.tokens, s.page, s.sheet, s.headings, s.start, s."end", s.vector'
SEARCH_FIELDS = "x.seq, d.name, x.app_id, x.dims, x.embedding::text, x.words::text"
MUST_BE_EQUAL = ("documents", "file paths", "segments", "search rows", "staged rows", "exact nearest", "keyword results")


async def load(url: str, size: int, work: Path, bulk: bool, asked: int = QUESTIONS) -> dict[str, Any]:
    """Fills one database and reads back what search sees (for `asked` questions)."""
    shutil.rmtree(work, ignore_errors=True)
    database = Database(url)
    await database.migrate()
    embedder = SyntheticEmbedder(size)
    service = KnowledgeService(database.engine, KnowledgeServerSettings(segment_chars=100), work, embedder=embedder)
    if bulk:
        await bulk_learn(service, database, APP, documents(size))
    else:
        for name, text, _topic in documents(size):
            registered = await service.add_document(APP, name, text.encode(), background=False)
            await service.learn(registered.document.id)
    await _postgres_build(database, embedder.dimensions)
    found: dict[str, Any] = {}
    async with database.engine.connect() as conn:
        found["documents"] = (await conn.execute(sa.text(f"SELECT {DOCUMENT_FIELDS} FROM kb_documents ORDER BY name"))).all()
        found["file paths"] = [
            str(Path(p).relative_to(work)) for p in await conn.scalars(sa.text("SELECT file_path FROM kb_documents ORDER BY name"))
        ]
        found["segments"] = (await conn.execute(sa.text(
            f"SELECT {SEGMENT_FIELDS} FROM kb_segments s JOIN kb_documents d ON d.id = s.doc_id ORDER BY s.seq"
        ))).all()
        found["search rows"] = (await conn.execute(sa.text(
            f"SELECT {SEARCH_FIELDS} FROM kb_segments_search x JOIN kb_documents d ON d.id = x.doc_id ORDER BY x.seq"
        ))).all()
        found["staged rows"] = await conn.scalar(sa.text("SELECT count(*) FROM kb_staged_segments"))
    texts = questions(asked, size)
    vectors = embedder.embed_queries(texts)
    ann = PostgresVectorSearch(database.engine, embedder.dimensions)
    keywords = PostgresKeywordSearch(database.engine)
    exact, approximate, keyword, hybrid = [], [], [], []
    for question, q in zip(texts, vectors):
        exact.append([row.seq for row, _ in await ann.nearest(APP, q, 10, EVERYTHING, exact=True)])
        approximate.append([row.seq for row, _ in await ann.nearest(APP, q, 10, EVERYTHING)])
        keyword.append(await keywords.search(APP, query_terms(question), 40, EVERYTHING))
        hybrid.append([hit.segment.seq for hit in await service.searcher.search(APP, question, q, EVERYTHING, 40)][:10])
    found["exact nearest"], found["keyword results"] = exact, keyword
    found["recall@10"] = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    found["hybrid top 10"] = hybrid
    await service.aclose()
    await database.close()
    shutil.rmtree(work, ignore_errors=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=5_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "parley-bench-bulk-check")
    args = parser.parse_args()
    from tests.support.postgres import Postgres

    postgres = Postgres(settings=POSTGRES_SETTINGS)
    try:
        pipeline = asyncio.run(load(postgres.new_database(), args.size, args.work / "pipeline", bulk=False))
        bulk = asyncio.run(load(postgres.new_database(), args.size, args.work / "bulk", bulk=True))
    finally:
        postgres.close()
    failed = False
    for key in MUST_BE_EQUAL:
        same = pipeline[key] == bulk[key]
        failed |= not same
        count = len(pipeline[key]) if isinstance(pipeline[key], list) else pipeline[key]
        print(f"{key}: {'identical' if same else 'DIFFERENT'} ({count})")
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(pipeline["hybrid top 10"], bulk["hybrid top 10"])])
    identical = sum(a == b for a, b in zip(pipeline["hybrid top 10"], bulk["hybrid top 10"]))
    print(f"recall@10 (ef 96): pipeline {pipeline['recall@10']:.3f}, bulk {bulk['recall@10']:.3f}")
    print(f"hybrid top 10: {identical}/{len(bulk['hybrid top 10'])} identical lists, mean overlap {overlap:.3f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
