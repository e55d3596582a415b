"""Learning documents: parse, split, embed, stage, then make visible at once.

A document is registered first (status `learning`) with a content-addressed copy of its
file, so learning can run in the background and survive a restart. Learning stages each
batch of embedded segments durably; after an interruption it starts again where it
stopped (the split is deterministic, so staged ordinals are simply skipped). When every
segment is staged, one transaction swaps the new version in (status `success`); a failure
records its reason (status `failed`) and leaves any earlier version visible.

Parsing, tokenising and embedding run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from parley.knowledge.index import index_text, pack
from parley.knowledge.parse import ParseError, file_type, parse_file, supported_types
from parley.knowledge.split import DEFAULT_MAX_CHARS, Segment, split_document
from parley.models.embedders import Embedder
from parley.store.knowledge import DocumentRow, KnowledgeRepository, StagedSegment

log = logging.getLogger(__name__)

BATCH = 32
MAX_NAME = 512

Progress = Callable[[DocumentRow, int, int], None]
"""Called with the document, segments done and segments in all, as learning advances."""
OnCommit = Callable[[int, list[int]], Awaitable[None]]


class IngestError(ValueError):
    """A document the operator has to correct before it can be added."""


@dataclass(frozen=True, slots=True)
class Registered:
    document: DocumentRow
    action: str  # created | changed | resumed | unchanged


def check_name(name: str) -> str:
    name = str(PurePosixPath(name.replace("\\", "/")))
    if not name or name in (".", "/") or len(name) > MAX_NAME or name.startswith("../"):
        raise IngestError(f"document name {name!r} is not acceptable (1-{MAX_NAME} characters, no '..')")
    if file_type(name) not in supported_types():
        raise IngestError(f"unsupported file type {file_type(name) or '(none)'!r}; supported: {', '.join(supported_types())}")
    return name


def document_context(name: str, title: str) -> str:
    """What leads every segment's embedded and indexed text: the document's name and title."""
    return " > ".join([PurePosixPath(name).stem, *([title] if title else [])])


def prepare_segments(embedder: Embedder, context: str, batch: list[Segment]) -> list[StagedSegment]:
    """Embeds and tokenises a batch (worker thread). The document and heading path lead the
    text that is embedded and indexed, so a segment is found by what it is about."""
    heads = [" > ".join([context, *s.headings]) for s in batch]
    vectors = embedder.embed_passages([f"{h}\n{s.text}" for h, s in zip(heads, batch)])
    return [
        StagedSegment(
            ordinal=s.ordinal, text=s.text, tokens=index_text(f"{h} {s.text}"), page=s.page, sheet=s.sheet,
            headings=s.heading_path, start=s.start, end=s.end, vector=pack(v),
        )
        for h, s, v in zip(heads, batch, vectors)
    ]


class Ingestor:
    def __init__(
        self,
        repository: KnowledgeRepository,
        embedder: Embedder,
        files_dir: Path,
        on_commit: OnCommit | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self._repo = repository
        self._embedder = embedder
        self._files = files_dir
        self._on_commit = on_commit
        self._max_chars = max_chars
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._worker: asyncio.Task[None] | None = None
        self._active: dict[int, asyncio.Task[DocumentRow | None]] = {}

    # --- registration ----------------------------------------------------------------------

    async def register(
        self, app_id: int, name: str, data: bytes, *, labels: Mapping[str, list[str]], url: str = ""
    ) -> Registered:
        name = check_name(name)
        digest = hashlib.sha256(data).hexdigest()
        path = self.stored_path(app_id, name, digest)
        if not path.exists():
            await asyncio.to_thread(_write_atomically, path, data)
        document, action = await self._repo.register_document(
            app_id, name, file_type=file_type(name), size=len(data), content_hash=digest,
            file_path=str(path), url=url, labels=labels,
        )
        return Registered(document, action)

    def stored_path(self, app_id: int, name: str, digest: str) -> Path:
        """Where the copy of a file is kept: content-addressed, so versions and names share it."""
        return self._files / str(app_id) / digest[:2] / f"{digest}.{file_type(name)}"

    # --- learning --------------------------------------------------------------------------

    async def learn(self, doc_id: int, progress: Progress | None = None) -> DocumentRow | None:
        """Learns the document's pending version now; returns it as it ends (None if it was deleted)."""
        while (running := self._active.get(doc_id)) is not None:
            # Another caller is learning it (perhaps an older version): let it finish first.
            await asyncio.wait([running])
        task = asyncio.create_task(self._learn(doc_id, progress))
        self._active[doc_id] = task
        task.add_done_callback(lambda done: self._active.pop(doc_id, None) if self._active.get(doc_id) is done else None)
        return await asyncio.shield(task)

    async def _learn(self, doc_id: int, progress: Progress | None) -> DocumentRow | None:
        document = await self._repo.get_document(doc_id)
        if document is None or document.status != "learning" or not document.pending_generation:
            return document
        generation = document.pending_generation
        try:
            parsed = await asyncio.to_thread(parse_file, Path(document.file_path), document.name)
            segments = split_document(parsed, self._max_chars)
            done = await self._repo.staged_ordinals(doc_id, generation)
            total = len(segments)
            if progress:
                progress(document, len(done), total)
            context = document_context(document.name, parsed.title)
            todo = [s for s in segments if s.ordinal not in done]
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                staged = await asyncio.to_thread(prepare_segments, self._embedder, context, batch)
                if await self._repo.get_document(doc_id) is None:
                    return None  # deleted while learning
                await self._repo.stage_segments(document.app_id, doc_id, generation, staged)
                if progress:
                    progress(document, len(done) + start + len(batch), total)
            replaced = await self._repo.commit_document(doc_id, generation, total, parsed.title)
        except ParseError as exc:
            await self._repo.fail_document(doc_id, generation, str(exc))
        except FileNotFoundError:
            await self._repo.fail_document(doc_id, generation, "the stored copy of the file is missing; add it again")
        except asyncio.CancelledError:
            raise  # stays `learning`: resumed at the next start
        except Exception as exc:
            log.exception("learning document %s failed", doc_id)
            await self._repo.fail_document(doc_id, generation, f"{type(exc).__name__}: {exc}")
        else:
            if replaced is not None and self._on_commit is not None:
                await self._on_commit(document.app_id, replaced)
        return await self._repo.get_document(doc_id)

    # --- background ------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())

    def enqueue(self, doc_id: int) -> None:
        if doc_id not in self._queued:
            self._queued.add(doc_id)
            self._queue.put_nowait(doc_id)

    async def resume_all(self) -> int:
        """Queues every document left `learning` (an interrupted run); returns how many."""
        await self._repo.drop_orphaned_staging()
        pending = await self._repo.learning_documents()
        for document in pending:
            self.enqueue(document.id)
        return len(pending)

    async def idle(self) -> None:
        """Waits until the background queue is empty and nothing is learning."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            doc_id = await self._queue.get()
            self._queued.discard(doc_id)
            try:
                await self.learn(doc_id)
            except Exception:
                log.exception("background learning of document %s failed", doc_id)
            finally:
                self._queue.task_done()

    async def aclose(self) -> None:
        for task in [self._worker, *self._active.values()]:
            if task is not None and not task.done():
                task.cancel()
        for task in [self._worker, *self._active.values()]:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._worker = None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
