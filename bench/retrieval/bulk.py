"""Bulk loading for the retrieval benchmark on PostgreSQL: the pipeline's rows, written by COPY.

Learning through the pipeline costs a few round trips and transactions per batch of 32 segments
(stage, then commit each document); on PostgreSQL that is about 130 segments/s on the shared
benchmark machine, hours for a million. What retrieval is measured on does not depend on how the
rows got there, so this writes the same rows at once: every document is parsed, split, embedded
and tokenised by the pipeline's own functions (parley.knowledge.ingest), its file copy is kept
where the pipeline keeps it, and documents and committed segments go in with COPY, a few
thousand segments per statement. `kb_segments_search` is filled by the database's own insert
trigger (migration 0009), as in production. No HNSW index exists while loading: it is built
afterwards (`PostgresVectorSearch.prepare`), as the benchmark does for both paths.

What it does not reproduce is the staging table's churn and the per-document transactions, so
its segments/s is not Parley's learning rate.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable
from typing import Any

from parley.ids import new_id
from parley.knowledge.ingest import BATCH, document_context, prepare_segments
from parley.knowledge.parse import file_type, parse_file
from parley.knowledge.service import KnowledgeService
from parley.knowledge.split import split_document
from parley.store.database import Database
from parley.store.knowledge import SUCCESS
from parley.store.knowledge_scope import ATTR_ALL
from parley.store.knowledge_tables import kb_documents, kb_segments

SEGMENTS_PER_COPY = 5_000
GENERATION = 1
"""A document's first version, as the pipeline commits it."""

DOCUMENT_COLUMNS = [c.name for c in kb_documents.c]
SEGMENT_COLUMNS = [c.name for c in kb_segments.c if c.name != "seq"]  # seq: the serial, in row order


def _document_rows(service: KnowledgeService, app_id: int, batch: list[tuple[str, str]]) -> tuple[list[tuple], list[tuple]]:
    """Documents and segment rows of a batch of (name, text), as the pipeline would commit them
    (runs in a worker thread: parsing, jieba and embedding)."""
    documents: list[tuple] = []
    segments: list[tuple] = []
    for name, text in batch:
        data = text.encode()
        digest = hashlib.sha256(data).hexdigest()
        path = service.ingestor.stored_path(app_id, name, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        parsed = parse_file(path, name)
        split = split_document(parsed, service.settings.segment_chars)
        context = document_context(name, parsed.title)
        doc_id, now = new_id(), int(time.time() * 1000)
        row = {
            "id": doc_id, "app_id": app_id, "name": name, "file_type": file_type(name), "size": len(data),
            "content_hash": digest, "file_path": str(path), "url": "", "title": parsed.title[:512],
            "attr_range": ATTR_ALL, "status": SUCCESS, "reason": "", "live_generation": GENERATION,
            "pending_generation": 0, "segment_count": len(split), "created_at": now, "updated_at": now,
        }
        documents.append(tuple(row[c] for c in DOCUMENT_COLUMNS))
        for start in range(0, len(split), BATCH):
            for s in prepare_segments(service.embedder, context, split[start : start + BATCH]):
                segment = {
                    "id": new_id(), "app_id": app_id, "doc_id": doc_id, "generation": GENERATION,
                    "ordinal": s.ordinal, "text": s.text, "tokens": s.tokens, "page": s.page, "sheet": s.sheet,
                    "headings": s.headings, "start": s.start, "end": s.end, "vector": s.vector,
                }
                segments.append(tuple(segment[c] for c in SEGMENT_COLUMNS))
    return documents, segments


async def _copy(database: Database, documents: list[tuple], segments: list[tuple]) -> None:
    """One transaction, as a document's commit is: its documents and their segments (the
    trigger fills the search table from the statement's rows)."""
    async with database.engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
        async with raw.transaction():
            await raw.copy_records_to_table("kb_documents", records=documents, columns=DOCUMENT_COLUMNS)
            await raw.copy_records_to_table("kb_segments", records=segments, columns=SEGMENT_COLUMNS)


async def bulk_learn(
    service: KnowledgeService, database: Database, app_id: int, documents: Iterable[tuple[str, str, int]],
    progress_every: int = 50_000,
) -> int:
    """Loads every (name, text, topic) document as learned; returns the segments written.
    Preparing the next batch (Python) overlaps the database writing the previous one."""
    if database.engine.dialect.name != "postgresql":
        raise ValueError("bulk loading writes with PostgreSQL's COPY")
    batches = _batches(documents, SEGMENTS_PER_COPY)
    written, reported, started = 0, 0, time.perf_counter()
    pending = None
    for batch in batches:
        prepared = asyncio.to_thread(_document_rows, service, app_id, batch)
        if pending is None:
            rows = await prepared
        else:
            rows, _ = await asyncio.gather(prepared, _copy(database, *pending))
            written += len(pending[1])
        pending = rows
        if written - reported >= progress_every:
            reported = written
            print(f"  bulk: {written} segments written, {written / (time.perf_counter() - started):.0f}/s", flush=True)
    if pending is not None:
        await _copy(database, *pending)
        written += len(pending[1])
    return written


def _batches(documents: Iterable[tuple[str, str, int]], segments: int) -> Iterable[list[tuple[str, str]]]:
    """Documents grouped by about `segments` lines of text each."""
    batch: list[tuple[str, str]] = []
    lines = 0
    for name, text, _topic in documents:
        batch.append((name, text))
        lines += text.count("\n") + 1
        if lines >= segments:
            yield batch
            batch, lines = [], 0
    if batch:
        yield batch

