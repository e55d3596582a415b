"""The two indexes behind hybrid search, each behind a small Protocol, chosen by database.

- `SegmentVectors`: an application's segments nearest to a question's vector, visible and in
  scope. On SQLite each process keeps a `VectorIndex` per application (parley.knowledge.vectors):
  usearch's HNSW (wheels for every platform, half-precision storage, save and memory-mapped
  load); `ExactIndex` is brute force with numpy, for small sets (Q&A questions, narrow label
  scopes) and as the benchmark's ground truth. On PostgreSQL the database holds the index
  (pgvector HNSW, parley.store.knowledge_search), shared by every process.
- `KeywordIndex`: ranked matches of jieba-tokenised text: SQLite FTS5 (BM25), or PostgreSQL
  full-text search over the same tokens. The text is tokenised here, in Python, and stored
  pre-tokenised.

Vector index calls are CPU work: run them in a worker thread.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from parley.knowledge.labels import Scope
from parley.store.knowledge import SegmentRow

# --- keywords -------------------------------------------------------------------------------

_WORD = re.compile(r"[0-9A-Za-z\u00C0-\u024F\u0400-\u04FF\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF]")
STOPWORDS = frozenset(
    "a an and are as at be by do does for from how i in is it me my of on or the to was what when where which "
    "who why with you your can could should would will this that these those there their we our "
    "的 了 是 在 和 与 及 或 吗 呢 吧 啊 我 你 他 她 它 们 这 那 有 就 也 都 而 之 怎么 什么 如何 为什么 请问 一个".split()
)
_jieba_lock = threading.Lock()
_jieba_ready = False


def _jieba():
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def tokenize(text: str) -> list[str]:
    """Words for the keyword index: jieba's search-mode cut (Chinese), words elsewhere, lower-cased."""
    return [t for t in _jieba().lcut_for_search(text.lower()) if _WORD.search(t)]


def index_text(text: str) -> str:
    """What the keyword index stores for a segment: its tokens, joined by spaces."""
    return " ".join(tokenize(text))


def query_terms(question: str) -> list[str]:
    """The distinct non-stopword tokens of a question, in order."""
    seen: dict[str, None] = {}
    for token in tokenize(question):
        if token not in STOPWORDS:
            seen.setdefault(token, None)
    return list(seen)


class KeywordIndex(Protocol):
    async def search(self, app_id: int, terms: Sequence[str], k: int, scope: Scope) -> list[tuple[int, float]]:
        """(seq, score) of the best `k` visible segments in scope, best first."""
        ...


# --- vectors --------------------------------------------------------------------------------


class SegmentVectors(Protocol):
    async def nearest(
        self, app_id: int, query: np.ndarray, k: int, scope: Scope, exact: bool = False
    ) -> list[tuple[SegmentRow, float]]:
        """(segment, cosine similarity) of the `k` nearest visible segments in scope, best first;
        `exact` compares with every segment in scope rather than walking an approximate index."""
        ...

    async def forget(self, app_id: int, seqs: Sequence[int]) -> None:
        """Segments this process deleted or replaced."""
        ...

    async def warm(self, app_id: int) -> None:
        """Gets the index ready for the application's next question."""
        ...

    async def aclose(self) -> None: ...


class VectorIndex(Protocol):
    dimensions: int

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, keys: Sequence[int]) -> None: ...

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, cosine similarities) of the `k` nearest vectors, best first."""
        ...

    def __len__(self) -> int: ...

    def save(self, path: Path) -> None: ...


class USearchIndex:
    """HNSW (usearch) with cosine similarity, vectors stored as float16 by default."""

    def __init__(
        self,
        dimensions: int,
        *,
        dtype: str = "f16",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 96,
        path: Path | None = None,
    ) -> None:
        from usearch.index import Index

        self.dimensions = dimensions
        self._index = Index(
            ndim=dimensions, metric="cos", dtype=dtype, connectivity=connectivity,
            expansion_add=expansion_add, expansion_search=expansion_search,
        )
        if path is not None:
            self._index.load(str(path))
            self._index.expansion_search = expansion_search

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys):
            self._index.add(keys, np.asarray(vectors, dtype=np.float32))

    def remove(self, keys: Sequence[int]) -> None:
        if len(keys):
            self._index.remove(np.asarray(keys, dtype=np.uint64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._index) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        matches = self._index.search(np.asarray(query, dtype=np.float32).reshape(-1), k)
        return matches.keys.astype(np.int64), 1.0 - matches.distances.astype(np.float32)

    def __len__(self) -> int:
        return len(self._index)

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    @property
    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)


class ExactIndex:
    """Brute force: every vector in one float32 matrix. Exact, and fast up to ~100k vectors."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._keys = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dimensions), np.float32)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._keys = np.concatenate([self._keys, np.asarray(keys, np.int64)])
        self._vectors = np.vstack([self._vectors, np.asarray(vectors, np.float32).reshape(-1, self.dimensions)])

    def remove(self, keys: Sequence[int]) -> None:
        keep = ~np.isin(self._keys, np.asarray(keys, np.int64))
        self._keys, self._vectors = self._keys[keep], self._vectors[keep]

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self._keys, self._vectors, query, k)

    def __len__(self) -> int:
        return len(self._keys)

    def save(self, path: Path) -> None:
        np.savez(path, keys=self._keys, vectors=self._vectors)


def exact_search(keys: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = vectors @ np.asarray(query, np.float32).reshape(-1)
    k = min(k, len(keys))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return keys[top], scores[top]


def pack(vector: np.ndarray) -> bytes:
    """A vector as stored in the database: float16, little-endian."""
    return np.asarray(vector, dtype="<f2").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


def unpack_many(blobs: Sequence[bytes], dimensions: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dimensions), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f2").astype(np.float32).reshape(len(blobs), dimensions)
