"""Each application's vector index in this process, kept in step with the database (SQLite).

On PostgreSQL the database holds the vector index itself (parley.store.knowledge_search); on
SQLite `ProcessVectorIndex` answers hybrid search's vector half from the indexes below.

The database is the truth; the index is derived from it. Committed segments get an
ever-growing `seq`, so an index only has to add what has a larger seq than the last it
saw: that is how a server picks up documents the `parley kb` command learned in another
process. Segments removed by this process are removed from its index at once; ones removed
elsewhere stay in the index until the next rebuild but are never returned, because every
candidate is checked against the database (visible and in scope) before it is used.

Indexes are saved on close as `<dir>/app-<id>/vectors-<seq>.usearch` (the seq they reflect
is in the name, so a file and its position can never disagree) and loaded on first use.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parley.knowledge.index import USearchIndex, VectorIndex, exact_search, unpack_many
from parley.knowledge.labels import Scope
from parley.store.knowledge import KnowledgeRepository, SegmentRow

log = logging.getLogger(__name__)

_FILE = re.compile(r"^vectors-(\d+)\.usearch$")
SYNC_BATCH = 20_000
MAX_CANDIDATES = 4096


@dataclass
class _AppIndex:
    index: VectorIndex
    seq: int = 0
    saved_seq: int = -1
    removed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AppVectorIndexes:
    def __init__(
        self,
        repository: KnowledgeRepository,
        dimensions: int,
        directory: Path | None = None,
        factory: Callable[[int], VectorIndex] | None = None,
        loader: Callable[[int, Path], VectorIndex] | None = None,
    ) -> None:
        self._repo = repository
        self.dimensions = dimensions
        self._directory = directory
        self._factory = factory or (lambda dims: USearchIndex(dims))
        self._loader = loader or (lambda dims, path: USearchIndex(dims, path=path))
        self._apps: dict[int, _AppIndex] = {}

    async def get(self, app_id: int) -> VectorIndex:
        """The app's index, caught up with every segment committed so far."""
        state = self._apps.get(app_id)
        if state is None:
            state = await asyncio.to_thread(self._open, app_id)
            if len(state.index) > 1.2 * await self._repo.segment_count(app_id) + 1000:
                # Many segments were removed by other processes since it was saved: start afresh.
                state = _AppIndex(self._factory(self.dimensions))
            state = self._apps.setdefault(app_id, state)
        await self._sync(app_id, state)
        return state.index

    def _open(self, app_id: int) -> _AppIndex:
        directory = self._app_dir(app_id)
        if directory is not None and directory.is_dir():
            files = sorted(
                ((int(m.group(1)), p) for p in directory.iterdir() if (m := _FILE.match(p.name))), reverse=True
            )
            for seq, path in files:
                try:
                    index = self._loader(self.dimensions, path)
                except Exception:
                    log.warning("vector index %s could not be loaded; rebuilding from the database", path)
                    continue
                if index.dimensions == self.dimensions:
                    return _AppIndex(index, seq=seq, saved_seq=seq)
        return _AppIndex(self._factory(self.dimensions))

    async def _sync(self, app_id: int, state: _AppIndex) -> None:
        newest = await self._repo.max_seq(app_id)
        if newest <= state.seq:
            return
        async with state.lock:
            while state.seq < newest:
                rows = await self._repo.vectors_after(app_id, state.seq, SYNC_BATCH)
                if not rows:
                    break
                width = self.dimensions * 2
                good = [(seq, blob) for seq, blob in rows if len(blob) == width]
                if len(good) < len(rows):
                    log.warning("app %s: %d segments have vectors of another size (embedder changed?)", app_id, len(rows) - len(good))
                keys = np.asarray([seq for seq, _ in good], dtype=np.int64)
                blobs = [blob for _, blob in good]

                def add() -> None:
                    state.index.add(keys, unpack_many(blobs, self.dimensions))

                await asyncio.to_thread(add)
                state.seq = rows[-1][0]

    async def forget(self, app_id: int, seqs: list[int]) -> None:
        """Removes segments this process deleted or replaced."""
        state = self._apps.get(app_id)
        if state is None or not seqs:
            return
        async with state.lock:
            await asyncio.to_thread(state.index.remove, seqs)
            state.removed = True

    def _app_dir(self, app_id: int) -> Path | None:
        return self._directory / f"app-{app_id}" if self._directory is not None else None

    async def save(self) -> None:
        """Writes every index that changed since it was loaded or last saved."""
        for app_id, state in list(self._apps.items()):
            directory = self._app_dir(app_id)
            if directory is None or (state.seq == state.saved_seq and not state.removed) or len(state.index) == 0:
                continue
            async with state.lock:
                await asyncio.to_thread(self._write, directory, state)

    @staticmethod
    def _write(directory: Path, state: _AppIndex) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"vectors-{state.seq}.usearch"
        temporary = directory / f".vectors-{state.seq}.tmp"
        state.index.save(temporary)
        temporary.replace(target)
        for path in directory.iterdir():
            if _FILE.match(path.name) and path != target:
                path.unlink(missing_ok=True)
        state.saved_seq, state.removed = state.seq, False


class ProcessVectorIndex:
    """`SegmentVectors` from this process's usearch indexes: candidates are checked against the
    database (visible, in scope) and the search widened until enough pass; an exact search
    compares with every vector the scope admits."""

    def __init__(self, repository: KnowledgeRepository, indexes: AppVectorIndexes) -> None:
        self._repo = repository
        self.indexes = indexes

    async def nearest(
        self, app_id: int, query: np.ndarray, k: int, scope: Scope, exact: bool = False
    ) -> list[tuple[SegmentRow, float]]:
        if exact:
            stored = await self._repo.scope_vectors(app_id, scope)
            dims = len(query)

            def search_all() -> tuple[np.ndarray, np.ndarray]:
                keys = np.asarray([seq for seq, blob in stored if len(blob) == dims * 2], np.int64)
                vectors = unpack_many([blob for _, blob in stored if len(blob) == dims * 2], dims)
                return exact_search(keys, vectors, query, k)

            keys, sims = await asyncio.to_thread(search_all)
            rows = {r.seq: r for r in await self._repo.segments_in_scope(app_id, keys.tolist(), scope)}
            return [(rows[int(key)], float(sim)) for key, sim in zip(keys, sims) if int(key) in rows]

        index = await self.indexes.get(app_id)
        wanted = k
        while True:
            keys, sims = await asyncio.to_thread(index.search, query, wanted)
            rows = {r.seq: r for r in await self._repo.segments_in_scope(app_id, keys.tolist(), scope)}
            if len(rows) >= k or wanted >= len(index) or wanted >= MAX_CANDIDATES:
                break
            wanted *= 4
        return [(rows[int(key)], float(sim)) for key, sim in zip(keys, sims) if int(key) in rows][:k]

    async def forget(self, app_id: int, seqs: Sequence[int]) -> None:
        await self.indexes.forget(app_id, list(seqs))

    async def warm(self, app_id: int) -> None:
        await self.indexes.get(app_id)

    async def aclose(self) -> None:
        await self.indexes.save()
