"""The SQL of segment retrieval, one class per engine and index.

- SQLite: `Fts5KeywordSearch`, BM25 over the FTS5 table of migration 0002. Vectors are not
  searched in SQLite: each process keeps a usearch index (parley.knowledge.vectors).
- PostgreSQL: `PostgresKeywordSearch` (full-text search, `ts_rank` over the `simple` tsvector of
  the same jieba tokens) and `PostgresVectorSearch` (pgvector HNSW, cosine), both over
  `kb_segments_search` (migration 0009), which every process on the database shares.

Every query holds only committed segments of the application inside the visitor's scope: the
scope is a condition of the query itself, never a filter applied to its results.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.store.knowledge import SegmentRow, scope_clause, segment_query
from parley.store.knowledge_scope import Scope
from parley.store.knowledge_tables import FTS_TABLE, FTS_VOCAB_TABLE, kb_documents, kb_segments

MAX_POSTINGS = 20_000
"""A keyword query ranks at most about this many rows: the rarest terms are kept up to it."""


def rarest_terms(terms: Sequence[str], postings: Mapping[str, float], limit: int = MAX_POSTINGS) -> list[str]:
    """The query's terms from the rarest on, while the rows they match add up to `limit`:
    ranking every row that holds a very common word costs more than it tells."""
    kept, total = [], 0.0
    for term in sorted(terms, key=lambda t: postings.get(t, 0)):
        total += postings.get(term, 0)
        if total > limit:
            break
        kept.append(term)
    return kept


class Fts5KeywordSearch:
    """BM25 over SQLite's FTS5 index; term frequencies from its fts5vocab table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def search(self, app_id: int, terms: Sequence[str], k: int, scope: Scope) -> list[tuple[int, float]]:
        """(seq, score) best first."""
        if not terms:
            return []
        vocab = sa.table(FTS_VOCAB_TABLE, sa.column("term"), sa.column("doc"))
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(vocab.c.term, vocab.c.doc).where(vocab.c.term.in_(list(terms))))
            kept = rarest_terms(terms, {term: doc for term, doc in rows})
        if not kept:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in kept)
        fts = sa.table(FTS_TABLE, sa.column("rowid"), sa.column("rank"))
        query = (
            sa.select(kb_segments.c.seq, fts.c.rank)
            .select_from(
                fts.join(kb_segments, kb_segments.c.seq == fts.c.rowid).join(
                    kb_documents, kb_documents.c.id == kb_segments.c.doc_id
                )
            )
            .where(sa.text(f"{FTS_TABLE} MATCH :match").bindparams(match=match))
            .where(kb_segments.c.app_id == app_id)
            .where(scope_clause(scope, kb_documents.c.id, kb_documents.c.attr_range))
            .order_by(fts.c.rank)
            .limit(k)
        )
        async with self._engine.connect() as conn:
            return [(r[0], -float(r[1])) for r in await conn.execute(query)]


# --- PostgreSQL -----------------------------------------------------------------------------


class HalfVec(sa.types.UserDefinedType):
    """pgvector's `halfvec`, of a given dimension or any."""

    cache_ok = True

    def __init__(self, dimensions: int | None = None) -> None:
        self.dimensions = dimensions

    def get_col_spec(self, **_: Any) -> str:
        return f"halfvec({self.dimensions})" if self.dimensions else "halfvec"


class TsVector(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "tsvector"


search_index = sa.table(
    "kb_segments_search",
    sa.column("seq", sa.Integer), sa.column("app_id", sa.BigInteger), sa.column("doc_id", sa.BigInteger),
    sa.column("dims", sa.Integer), sa.column("embedding", HalfVec()), sa.column("words", TsVector()),
)
"""PostgreSQL's search index over committed segments (migration 0009; kept by triggers)."""

SIMPLE = sa.literal_column("'simple'::regconfig")
STATISTICS_TTL = 60.0
"""Seconds the keyword term frequencies (PostgreSQL's own column statistics) are reused."""


class PostgresKeywordSearch:
    """Full-text search over the tsvector of each segment's jieba tokens, ranked by `ts_rank`
    (normalised by length, as BM25 is). Which terms are rare comes from the statistics
    PostgreSQL's ANALYZE keeps for the column (its planner's own figures: the most common
    lexemes and the share of rows holding each), so no extra table is written with segments."""

    max_postings = 2_000
    """Fewer rows than FTS5 ranks (MAX_POSTINGS): `ts_rank` reads and scores each matching row's
    tsvector, several times FTS5's cost per row (docs/benchmarks.md); the rare terms that decide
    the ranking fit well within it, the common ones are what it leaves out."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postings: dict[str, float] = {}
        self._postings_at = float("-inf")

    async def _term_postings(self) -> dict[str, float]:
        if time.monotonic() - self._postings_at > STATISTICS_TTL:
            query = sa.text(
                "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
                "FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename "
                "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = s.schemaname) "
                "WHERE s.schemaname = current_schema() AND s.tablename = 'kb_segments_search' AND s.attname = 'words'"
            )
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
            postings: dict[str, float] = {}
            if row is not None and row[0] is not None:
                rows = max(float(row[2] or 0), 0.0)
                postings = {term: float(share) * rows for term, share in zip(row[0], row[1])}
            self._postings, self._postings_at = postings, time.monotonic()
        return self._postings

    async def search(self, app_id: int, terms: Sequence[str], k: int, scope: Scope) -> list[tuple[int, float]]:
        """(seq, score) best first."""
        if not terms:
            return []
        kept = rarest_terms(terms, await self._term_postings(), self.max_postings)
        if not kept:
            return []
        query_terms = [sa.func.plainto_tsquery(SIMPLE, sa.literal(t, sa.Text)) for t in kept]
        tsquery = query_terms[0]
        for term in query_terms[1:]:
            tsquery = tsquery.op("||")(term)
        x = search_index.c
        rank = sa.func.ts_rank(x.words, tsquery, 1).label("rank")
        query = (
            sa.select(x.seq, rank)
            .select_from(search_index.join(kb_documents, kb_documents.c.id == x.doc_id))
            .where((x.app_id == app_id) & x.words.op("@@")(tsquery))
            .where(scope_clause(scope, kb_documents.c.id, kb_documents.c.attr_range))
            .order_by(rank.desc(), x.seq)
            .limit(k)
        )
        async with self._engine.connect() as conn:
            return [(r[0], float(r[1])) for r in await conn.execute(query)]


class PostgresVectorSearch:
    """Nearest segments by cosine similarity through pgvector's HNSW.

    The index for this embedder's dimension is created on first use (see migration 0009 for
    why there is one per dimension); several processes starting at once create it once.
    Filtered searches use pgvector's iterative index scans, so a scope or an application
    holding a small share of the index still fills its `k` rather than returning fewer.
    """

    def __init__(
        self, engine: AsyncEngine, dimensions: int, *, ef_search: int = 96, m: int = 16, ef_construction: int = 128
    ) -> None:
        self._engine = engine
        self.dimensions = dimensions
        self.ef_search = ef_search
        self.m = m
        self.ef_construction = ef_construction
        self._prepared = False

    @property
    def index_name(self) -> str:
        return f"kb_segments_search_hnsw_{self.dimensions}"

    async def prepare(self) -> None:
        """Creates the HNSW index for this dimension if it does not exist yet. On a database that
        already holds many segments of this dimension, building it takes a while (once)."""
        if self._prepared:
            return
        async with self._engine.begin() as conn:
            # Looked up first: CREATE INDEX IF NOT EXISTS would lock out writers for a moment even
            # when the index is there (every process's first question).
            if await conn.scalar(sa.select(sa.func.to_regclass(self.index_name))) is None:
                await self._create(conn)
        self._prepared = True

    async def _create(self, conn: Any) -> None:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x5041524C4559)))  # "PARLEY": one builder
        await conn.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS {self.index_name} ON kb_segments_search "
                f"USING hnsw ((embedding::halfvec({self.dimensions})) halfvec_cosine_ops) "
                f"WITH (m = {int(self.m)}, ef_construction = {int(self.ef_construction)}) "
                f"WHERE dims = {int(self.dimensions)}"
            )
        )

    async def forget(self, app_id: int, seqs: Sequence[int]) -> None:
        """Nothing to do: deleting segments deletes their index rows (the foreign key cascades)."""

    async def warm(self, app_id: int) -> None:
        await self.prepare()

    async def aclose(self) -> None:
        """Nothing to save: the index is the database's."""

    async def nearest(
        self, app_id: int, query: np.ndarray, k: int, scope: Scope, exact: bool = False
    ) -> list[tuple[SegmentRow, float]]:
        """(segment, cosine similarity) of the `k` nearest visible segments in scope, best first.
        `exact` compares with every segment in scope instead of walking the index."""
        await self.prepare()
        literal = "[" + ",".join(f"{v:.6g}" for v in np.asarray(query, np.float32).reshape(-1)) + "]"
        x = search_index.c
        if exact:  # not the indexed expression: a plain scan of what the conditions admit
            distance = x.embedding.op("<=>", return_type=sa.Float)(sa.cast(sa.literal(literal, sa.Text), HalfVec()))
        else:
            typed = HalfVec(self.dimensions)
            distance = sa.cast(x.embedding, typed).op("<=>", return_type=sa.Float)(
                sa.cast(sa.literal(literal, sa.Text), typed)
            )
        labelled = distance.label("distance")
        query_rows = (
            segment_query(labelled)
            .join(search_index, x.seq == kb_segments.c.seq)
            .where((x.app_id == app_id) & (x.dims == self.dimensions))
            .where(scope_clause(scope, kb_documents.c.id, kb_documents.c.attr_range))
            .order_by(labelled)  # by the name: the vector is sent and parsed once
            .limit(k)
        )
        async with self._engine.begin() as conn:
            if not exact:
                await conn.execute(
                    sa.select(
                        sa.func.set_config("hnsw.ef_search", str(max(self.ef_search, k)), True),
                        sa.func.set_config("hnsw.iterative_scan", "relaxed_order", True),
                    )
                )
            rows = (await conn.execute(query_rows)).all()
        found = [(_segment(r._mapping), 1.0 - float(r.distance)) for r in rows]
        found.sort(key=lambda pair: -pair[1])  # relaxed order: nearly sorted already
        return found


def _segment(mapping: Mapping[str, Any]) -> SegmentRow:
    return SegmentRow(**{key: value for key, value in mapping.items() if key != "distance"})
