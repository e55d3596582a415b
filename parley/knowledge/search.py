"""Hybrid search: vector neighbours and keyword matches, fused by reciprocal rank.

Both rankings hold only segments that are visible and inside the visitor's scope, whichever
indexes the database gives them (parley.knowledge.index): a narrow scope (few segments) is
searched exactly instead of through the approximate index, so a scope never hides its own
best matches behind other people's documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parley.knowledge.index import KeywordIndex, SegmentVectors, query_terms, unpack
from parley.knowledge.labels import Scope
from parley.store.knowledge import KnowledgeRepository, SegmentRow

RRF_K = 60
EXACT_SCOPE_LIMIT = 50_000
"""A scope admitting at most this many segments is searched exactly."""


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
    def __init__(self, repository: KnowledgeRepository, vectors: SegmentVectors, keywords: KeywordIndex) -> None:
        self._repo = repository
        self._vectors = vectors
        self._keywords = keywords

    async def search(
        self, app_id: int, question: str, query_vector: np.ndarray, scope: Scope, candidates: int = 40
    ) -> list[Hit]:
        async def keywords() -> list[tuple[int, float]]:
            terms = await asyncio.to_thread(query_terms, question)
            return await self._keywords.search(app_id, terms, candidates, scope)

        async def vectors() -> list[tuple[SegmentRow, float]]:
            exact = scope.restricted and await self._repo.scope_size(app_id, scope) <= EXACT_SCOPE_LIMIT
            return await self._vectors.nearest(app_id, query_vector, candidates, scope, exact)

        nearest, keyword = await asyncio.gather(vectors(), keywords())
        rows = {row.seq: row for row, _ in nearest}
        keyword_ranking = [seq for seq, _ in keyword]
        missing = [seq for seq in keyword_ranking if seq not in rows]
        for row in await self._repo.segments_in_scope(app_id, missing, scope):
            rows[row.seq] = row
        similarities = {row.seq: similarity for row, similarity in nearest}
        vector_keys = [row.seq for row, _ in nearest]
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
