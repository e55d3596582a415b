"""Hybrid search: vector neighbours and keyword matches, fused by reciprocal rank.

Both rankings hold only segments that are visible and inside the visitor's scope: keyword
search filters in SQL; vector candidates are checked against the database, and a narrow
scope (few segments) is searched exactly instead of through the approximate index, so a
scope never hides its own best matches behind other people's documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parley.knowledge.index import exact_search, query_terms, unpack, unpack_many
from parley.knowledge.labels import Scope
from parley.knowledge.vectors import AppVectorIndexes
from parley.store.knowledge import KnowledgeRepository, SegmentRow

RRF_K = 60
EXACT_SCOPE_LIMIT = 50_000
"""A scope admitting at most this many segments is searched exactly."""
MAX_CANDIDATES = 4096


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Keys by the sum of 1/(k + rank) over the rankings that hold them, best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True, slots=True)
class Hit:
    segment: SegmentRow
    similarity: float
    """Cosine similarity to the question (the embedder's scale)."""
    score: float
    """Fused rank score; orders the hits."""
    vector_rank: int | None
    keyword_rank: int | None


class HybridSearcher:
    def __init__(self, repository: KnowledgeRepository, vectors: AppVectorIndexes) -> None:
        self._repo = repository
        self._vectors = vectors

    async def search(
        self, app_id: int, question: str, query_vector: np.ndarray, scope: Scope, candidates: int = 40
    ) -> list[Hit]:
        async def keywords() -> list[tuple[int, float]]:
            terms = await asyncio.to_thread(query_terms, question)
            return await self._repo.keyword_search(app_id, terms, candidates, scope)

        (vector_ranking, rows), keyword = await asyncio.gather(
            self._vector_candidates(app_id, query_vector, scope, candidates), keywords()
        )
        keyword_ranking = [seq for seq, _ in keyword]
        missing = [seq for seq in keyword_ranking if seq not in rows]
        for row in await self._repo.segments_in_scope(app_id, missing, scope):
            rows[row.seq] = row
        similarities = dict(vector_ranking)
        vector_keys = [seq for seq, _ in vector_ranking]
        hits = []
        for seq, score in reciprocal_rank_fusion([vector_keys, keyword_ranking]):
            row = rows.get(seq)
            if row is None:
                continue
            similarity = similarities.get(seq)
            if similarity is None:
                similarity = float(unpack(row.vector) @ query_vector)
            hits.append(
                Hit(
                    row, float(similarity), score,
                    vector_keys.index(seq) + 1 if seq in similarities else None,
                    keyword_ranking.index(seq) + 1 if seq in keyword_ranking else None,
                )
            )
        return hits

    async def _vector_candidates(
        self, app_id: int, query_vector: np.ndarray, scope: Scope, count: int
    ) -> tuple[list[tuple[int, float]], dict[int, SegmentRow]]:
        """(seq, similarity) best first, and the rows of those seqs; visible and in scope only."""
        if scope.restricted and await self._repo.scope_size(app_id, scope) <= EXACT_SCOPE_LIMIT:
            stored = await self._repo.scope_vectors(app_id, scope)
            dims = len(query_vector)

            def exact() -> tuple[np.ndarray, np.ndarray]:
                keys = np.asarray([seq for seq, blob in stored if len(blob) == dims * 2], np.int64)
                vectors = unpack_many([blob for _, blob in stored if len(blob) == dims * 2], dims)
                return exact_search(keys, vectors, query_vector, count)

            keys, sims = await asyncio.to_thread(exact)
            rows = {r.seq: r for r in await self._repo.segments_in_scope(app_id, keys.tolist(), scope)}
            return [(int(k), float(s)) for k, s in zip(keys, sims) if int(k) in rows], rows

        index = await self._vectors.get(app_id)
        k = count
        while True:
            keys, sims = await asyncio.to_thread(index.search, query_vector, k)
            rows = {r.seq: r for r in await self._repo.segments_in_scope(app_id, keys.tolist(), scope)}
            if len(rows) >= count or k >= len(index) or k >= MAX_CANDIDATES:
                break
            k *= 4
        ranking = [(int(key), float(sim)) for key, sim in zip(keys, sims) if int(key) in rows][:count]
        return ranking, {seq: rows[seq] for seq, _ in ranking}
