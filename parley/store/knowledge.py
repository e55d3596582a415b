"""The knowledge base's durable state: documents, segments, Q&A pairs and labels.

Visibility rule: a segment is visible when it is in `kb_segments` (committed) and its
document is in the visitor's label scope. Learning writes to `kb_staged_segments` only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.ids import new_id
from parley.store.knowledge_scope import ATTR_ALL, ATTR_LABELS, Scope
from parley.store.knowledge_tables import (
    kb_documents,
    kb_labels,
    kb_qa,
    kb_qa_questions,
    kb_segments,
    kb_staged_segments,
)

LEARNING, SUCCESS, FAILED = "learning", "success", "failed"


_CHECKSUM_MODULUS = 2_147_483_647  # a prime below 2**31: a million residues sum far below 2**63


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: int
    app_id: int
    name: str
    file_type: str
    size: int
    content_hash: str
    file_path: str
    url: str
    title: str
    attr_range: int
    status: str
    reason: str
    live_generation: int
    pending_generation: int
    segment_count: int
    created_at: int
    updated_at: int
    labels: Mapping[str, list[str]]


@dataclass(frozen=True, slots=True)
class SegmentRow:
    seq: int
    id: int
    app_id: int
    doc_id: int
    ordinal: int
    text: str
    page: int | None
    sheet: str | None
    headings: str
    start: int
    end: int
    vector: bytes
    doc_name: str
    doc_url: str
    doc_title: str


@dataclass(frozen=True, slots=True)
class QARow:
    id: int
    app_id: int
    question: str
    answer: str
    attr_range: int
    similar_questions: list[str]
    labels: Mapping[str, list[str]]
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class StagedSegment:
    ordinal: int
    text: str
    tokens: str
    page: int | None
    sheet: str | None
    headings: str
    start: int
    end: int
    vector: bytes


def scope_clause(scope: Scope, item_id: Any, attr_range: Any) -> Any:
    """SQL twin of `Scope.admits` for items whose id and attr_range are the given columns."""
    if not scope.restricted:
        return sa.true()
    tests = [
        sa.exists().where(
            (kb_labels.c.item_id == item_id) & (kb_labels.c.attribute == attribute) & kb_labels.c.value.in_(sorted(values))
        )
        for attribute, values in scope.filters.items()
    ]
    matched = sa.and_(*tests) if scope.condition == "and" else sa.or_(*tests)
    return sa.or_(attr_range == ATTR_ALL, matched)


def segment_query(*extra: Any) -> Any:
    """SELECT of `SegmentRow`s (and any `extra` columns) from committed segments and their documents."""
    s, d = kb_segments.c, kb_documents.c
    return sa.select(
        s.seq, s.id, s.app_id, s.doc_id, s.ordinal, s.text, s.page, s.sheet, s.headings, s.start, s.end, s.vector,
        d.name.label("doc_name"), d.url.label("doc_url"), d.title.label("doc_title"), *extra,
    ).select_from(kb_segments.join(kb_documents, kb_documents.c.id == kb_segments.c.doc_id))


class KnowledgeRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- labels ----------------------------------------------------------------------------

    async def _labels(self, conn: Any, item_ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
        found: dict[int, dict[str, list[str]]] = {i: {} for i in item_ids}
        if not item_ids:
            return found
        rows = await conn.execute(
            sa.select(kb_labels.c.item_id, kb_labels.c.attribute, kb_labels.c.value)
            .where(kb_labels.c.item_id.in_(list(item_ids)))
            .order_by(kb_labels.c.attribute, kb_labels.c.value)
        )
        for item_id, attribute, value in rows:
            found[item_id].setdefault(attribute, []).append(value)
        return found

    async def _set_labels(self, conn: Any, app_id: int, item_id: int, labels: Mapping[str, list[str]]) -> None:
        await conn.execute(kb_labels.delete().where(kb_labels.c.item_id == item_id))
        rows = [
            {"item_id": item_id, "attribute": a, "value": v, "app_id": app_id} for a, values in labels.items() for v in values
        ]
        if rows:
            await conn.execute(kb_labels.insert(), rows)

    async def attributes(self, app_id: int) -> dict[str, list[str]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(kb_labels.c.attribute, kb_labels.c.value)
                .where(kb_labels.c.app_id == app_id)
                .distinct()
                .order_by(kb_labels.c.attribute, kb_labels.c.value)
            )
            found: dict[str, list[str]] = {}
            for attribute, value in rows:
                found.setdefault(attribute, []).append(value)
            return found

    # --- documents -------------------------------------------------------------------------

    async def _documents(self, conn: Any, condition: Any) -> list[DocumentRow]:
        rows = (await conn.execute(kb_documents.select().where(condition).order_by(kb_documents.c.created_at))).all()
        labels = await self._labels(conn, [r.id for r in rows])
        return [DocumentRow(**{k: getattr(r, k) for k in kb_documents.c.keys()}, labels=labels[r.id]) for r in rows]

    async def get_document(self, doc_id: int) -> DocumentRow | None:
        async with self._engine.connect() as conn:
            found = await self._documents(conn, kb_documents.c.id == doc_id)
        return found[0] if found else None

    async def document_by_name(self, app_id: int, name: str) -> DocumentRow | None:
        async with self._engine.connect() as conn:
            found = await self._documents(conn, (kb_documents.c.app_id == app_id) & (kb_documents.c.name == name))
        return found[0] if found else None

    async def list_documents(self, app_id: int) -> list[DocumentRow]:
        async with self._engine.connect() as conn:
            return await self._documents(conn, kb_documents.c.app_id == app_id)

    async def learning_documents(self) -> list[DocumentRow]:
        async with self._engine.connect() as conn:
            return await self._documents(conn, kb_documents.c.status == LEARNING)

    async def register_document(
        self,
        app_id: int,
        name: str,
        *,
        file_type: str,
        size: int,
        content_hash: str,
        file_path: str,
        url: str,
        labels: Mapping[str, list[str]],
    ) -> tuple[DocumentRow, str]:
        """Adds a document or a new version of one; says what happened.

        `created` and `changed` need learning; `resumed` continues an unfinished learning of
        the same content; `unchanged` needs nothing (labels and url are updated in place).
        """
        now = _now_ms()
        attr_range = ATTR_LABELS if labels else ATTR_ALL
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    kb_documents.select().where((kb_documents.c.app_id == app_id) & (kb_documents.c.name == name))
                )
            ).first()
            if row is None:
                doc_id = new_id()
                await conn.execute(
                    kb_documents.insert().values(
                        id=doc_id, app_id=app_id, name=name, file_type=file_type, size=size,
                        content_hash=content_hash, file_path=file_path, url=url, title="",
                        attr_range=attr_range, status=LEARNING, reason="", live_generation=0,
                        pending_generation=1, segment_count=0, created_at=now, updated_at=now,
                    )
                )
                action = "created"
            else:
                doc_id = row.id
                values: dict[str, Any] = {"url": url, "attr_range": attr_range, "updated_at": now}
                if row.content_hash == content_hash and row.status == SUCCESS:
                    action = "unchanged"
                elif row.content_hash == content_hash and row.status == LEARNING:
                    action = "resumed"
                else:
                    action = "changed"
                    values.update(
                        file_type=file_type, size=size, content_hash=content_hash, file_path=file_path,
                        status=LEARNING, reason="",
                        pending_generation=max(row.live_generation, row.pending_generation) + 1,
                    )
                    await conn.execute(kb_staged_segments.delete().where(kb_staged_segments.c.doc_id == doc_id))
                await conn.execute(kb_documents.update().where(kb_documents.c.id == doc_id).values(**values))
            await self._set_labels(conn, app_id, doc_id, labels)
            document = (await self._documents(conn, kb_documents.c.id == doc_id))[0]
        return document, action

    async def drop_orphaned_staging(self) -> None:
        """Staged segments of documents deleted while they were being learned."""
        async with self._engine.begin() as conn:
            await conn.execute(
                kb_staged_segments.delete().where(
                    ~sa.exists().where(kb_documents.c.id == kb_staged_segments.c.doc_id)
                )
            )

    async def staged_ordinals(self, doc_id: int, generation: int) -> set[int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(kb_staged_segments.c.ordinal).where(
                    (kb_staged_segments.c.doc_id == doc_id) & (kb_staged_segments.c.generation == generation)
                )
            )
            return {r[0] for r in rows}

    async def stage_segments(self, app_id: int, doc_id: int, generation: int, segments: Sequence[StagedSegment]) -> None:
        if not segments:
            return
        rows = [
            {
                "id": new_id(), "app_id": app_id, "doc_id": doc_id, "generation": generation, "ordinal": s.ordinal,
                "text": s.text, "tokens": s.tokens, "page": s.page, "sheet": s.sheet, "headings": s.headings,
                "start": s.start, "end": s.end, "vector": s.vector,
            }
            for s in segments
        ]
        async with self._engine.begin() as conn:
            await conn.execute(_insert_ignoring_duplicates(self._engine.dialect.name, kb_staged_segments), rows)

    async def commit_document(self, doc_id: int, generation: int, total: int, title: str) -> list[int] | None:
        """Makes the staged version visible in one transaction; returns the seqs it replaced.

        None when there is nothing to commit (the document went away, another worker
        committed it first, or segments are missing).
        """
        columns = [c.name for c in kb_staged_segments.c if c.name != "id"]
        async with self._engine.begin() as conn:
            doc = (await conn.execute(kb_documents.select().where(kb_documents.c.id == doc_id))).first()
            if doc is None or doc.pending_generation != generation:
                return None
            staged = kb_staged_segments.c
            where = (staged.doc_id == doc_id) & (staged.generation == generation)
            count = await conn.scalar(sa.select(sa.func.count()).select_from(kb_staged_segments).where(where))
            if count != total:
                return None
            replaced = list((await conn.scalars(sa.select(kb_segments.c.seq).where(kb_segments.c.doc_id == doc_id))).all())
            await conn.execute(kb_segments.delete().where(kb_segments.c.doc_id == doc_id))
            await conn.execute(
                kb_segments.insert().from_select(
                    ["id", *columns],
                    sa.select(staged.id, *[staged[c] for c in columns]).where(where).order_by(staged.ordinal),
                )
            )
            await conn.execute(kb_staged_segments.delete().where(staged.doc_id == doc_id))
            await conn.execute(
                kb_documents.update()
                .where(kb_documents.c.id == doc_id)
                .values(
                    live_generation=generation, pending_generation=0, status=SUCCESS, reason="",
                    segment_count=total, title=title[:512], updated_at=_now_ms(),
                )
            )
        return replaced

    async def fail_document(self, doc_id: int, generation: int, reason: str) -> None:
        """Learning failed: the reason is kept; an earlier version, if any, stays visible."""
        async with self._engine.begin() as conn:
            await conn.execute(
                kb_documents.update()
                .where((kb_documents.c.id == doc_id) & (kb_documents.c.pending_generation == generation))
                .values(status=FAILED, reason=reason[:1024], pending_generation=0, updated_at=_now_ms())
            )
            await conn.execute(kb_staged_segments.delete().where(kb_staged_segments.c.doc_id == doc_id))

    async def delete_document(self, doc_id: int) -> list[int]:
        """Removes the document, its segments and labels; returns the removed seqs."""
        async with self._engine.begin() as conn:
            removed = list((await conn.scalars(sa.select(kb_segments.c.seq).where(kb_segments.c.doc_id == doc_id))).all())
            await conn.execute(kb_segments.delete().where(kb_segments.c.doc_id == doc_id))
            await conn.execute(kb_staged_segments.delete().where(kb_staged_segments.c.doc_id == doc_id))
            await conn.execute(kb_labels.delete().where(kb_labels.c.item_id == doc_id))
            await conn.execute(kb_documents.delete().where(kb_documents.c.id == doc_id))
        return removed

    # --- segments --------------------------------------------------------------------------

    async def max_seq(self, app_id: int) -> int:
        async with self._engine.connect() as conn:
            return await conn.scalar(sa.select(sa.func.max(kb_segments.c.seq)).where(kb_segments.c.app_id == app_id)) or 0

    async def segment_count(self, app_id: int) -> int:
        async with self._engine.connect() as conn:
            return await conn.scalar(sa.select(sa.func.count()).where(kb_segments.c.app_id == app_id)) or 0

    async def vectors_after(self, app_id: int, seq: int, limit: int) -> list[tuple[int, bytes]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(kb_segments.c.seq, kb_segments.c.vector)
                .where((kb_segments.c.app_id == app_id) & (kb_segments.c.seq > seq))
                .order_by(kb_segments.c.seq)
                .limit(limit)
            )
            return [(r[0], r[1]) for r in rows]

    async def segments_in_scope(self, app_id: int, seqs: Sequence[int], scope: Scope) -> list[SegmentRow]:
        """The given segments that are still visible and in scope (any order)."""
        if not seqs:
            return []
        query = segment_query().where(
            kb_segments.c.seq.in_([int(s) for s in seqs])
            & (kb_segments.c.app_id == app_id)
            & scope_clause(scope, kb_documents.c.id, kb_documents.c.attr_range)
        )
        async with self._engine.connect() as conn:
            return [SegmentRow(**r._mapping) for r in await conn.execute(query)]

    async def segments_by_id(self, app_id: int, ids: Sequence[int]) -> list[SegmentRow]:
        if not ids:
            return []
        query = segment_query().where(kb_segments.c.id.in_(list(ids)) & (kb_segments.c.app_id == app_id))
        async with self._engine.connect() as conn:
            return [SegmentRow(**r._mapping) for r in await conn.execute(query)]

    async def scope_size(self, app_id: int, scope: Scope) -> int:
        """How many visible segments the scope admits (from the documents' counts)."""
        d = kb_documents.c
        query = sa.select(sa.func.coalesce(sa.func.sum(d.segment_count), 0)).where(
            (d.app_id == app_id) & (d.live_generation > 0) & scope_clause(scope, d.id, d.attr_range)
        )
        async with self._engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def scope_vectors(self, app_id: int, scope: Scope) -> list[tuple[int, bytes]]:
        query = (
            sa.select(kb_segments.c.seq, kb_segments.c.vector)
            .select_from(kb_segments.join(kb_documents, kb_documents.c.id == kb_segments.c.doc_id))
            .where((kb_segments.c.app_id == app_id) & scope_clause(scope, kb_documents.c.id, kb_documents.c.attr_range))
        )
        async with self._engine.connect() as conn:
            return [(r[0], r[1]) for r in await conn.execute(query)]

    # --- Q&A pairs -------------------------------------------------------------------------

    async def add_qa(
        self,
        app_id: int,
        question: str,
        answer: str,
        questions: Sequence[tuple[str, bytes]],
        labels: Mapping[str, list[str]],
    ) -> int:
        """Adds a pair; `questions` is the question then its similar questions, with vectors."""
        now, qa_id = _now_ms(), new_id()
        async with self._engine.begin() as conn:
            await conn.execute(
                kb_qa.insert().values(
                    id=qa_id, app_id=app_id, question=question, answer=answer,
                    attr_range=ATTR_LABELS if labels else ATTR_ALL, created_at=now, updated_at=now,
                )
            )
            await _insert_questions(conn, app_id, qa_id, questions)
            await self._set_labels(conn, app_id, qa_id, labels)
        return qa_id

    async def delete_qa(self, app_id: int, qa_id: int) -> bool:
        async with self._engine.begin() as conn:
            deleted = await conn.execute(kb_qa.delete().where((kb_qa.c.id == qa_id) & (kb_qa.c.app_id == app_id)))
            await conn.execute(kb_qa_questions.delete().where(kb_qa_questions.c.qa_id == qa_id))
            await conn.execute(kb_labels.delete().where(kb_labels.c.item_id == qa_id))
        return deleted.rowcount > 0

    async def list_qa(self, app_id: int, ids: Sequence[int] | None = None) -> list[QARow]:
        condition = kb_qa.c.app_id == app_id
        if ids is not None:
            condition = condition & kb_qa.c.id.in_(list(ids))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(kb_qa.select().where(condition).order_by(kb_qa.c.created_at))).all()
            qa_ids = [r.id for r in rows]
            similar: dict[int, list[str]] = {i: [] for i in qa_ids}
            if qa_ids:
                for qa_id, text in await conn.execute(
                    sa.select(kb_qa_questions.c.qa_id, kb_qa_questions.c.text)
                    .where(kb_qa_questions.c.qa_id.in_(qa_ids) & (kb_qa_questions.c.is_primary == sa.false()))
                    .order_by(kb_qa_questions.c.id)
                ):
                    similar[qa_id].append(text)
            labels = await self._labels(conn, qa_ids)
        return [
            QARow(r.id, r.app_id, r.question, r.answer, r.attr_range, similar[r.id], labels[r.id], r.created_at, r.updated_at)
            for r in rows
        ]

    async def qa_signature(self, app_id: int) -> tuple[int, int, int]:
        """Changes whenever the app's Q&A questions change, whoever changes them: their count,
        newest id and a checksum of their ids. A change replaces question rows with new ids, but
        "new" is by the minter's clock: a process on a host whose clock is behind mints ids older
        than the newest, so the count and newest id alone can stay the same. The checksum (a sum
        of the ids' residues, small enough for SQLite's 64-bit sum) changes with any row added or
        removed, but for a chance of about one in two billion per change."""
        q = kb_qa_questions.c
        query = sa.select(sa.func.count(), sa.func.max(q.id), sa.func.sum(q.id % _CHECKSUM_MODULUS)).where(q.app_id == app_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return (row[0] or 0, row[1] or 0, int(row[2] or 0)) if row else (0, 0, 0)

    async def qa_questions(self, app_id: int) -> list[tuple[int, int, str, bytes]]:
        """(question id, qa id, text, vector) of every question of the app's pairs."""
        q = kb_qa_questions.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(q.id, q.qa_id, q.text, q.vector).where(q.app_id == app_id))
            return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def qa_in_scope(self, app_id: int, qa_ids: Sequence[int], scope: Scope) -> set[int]:
        if not qa_ids:
            return set()
        query = sa.select(kb_qa.c.id).where(
            kb_qa.c.id.in_(list(qa_ids)) & (kb_qa.c.app_id == app_id) & scope_clause(scope, kb_qa.c.id, kb_qa.c.attr_range)
        )
        async with self._engine.connect() as conn:
            return set((await conn.scalars(query)).all())

    async def update_qa(
        self,
        app_id: int,
        qa_id: int,
        question: str,
        answer: str,
        questions: Sequence[tuple[str, bytes]],
        labels: Mapping[str, list[str]],
    ) -> bool:
        """Changes a pair in place (same id); its questions are replaced with new rows (and
        new ids, so the Q&A matcher's cache sees the change). False if there is no such pair."""
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                kb_qa.update()
                .where((kb_qa.c.id == qa_id) & (kb_qa.c.app_id == app_id))
                .values(question=question, answer=answer, attr_range=ATTR_LABELS if labels else ATTR_ALL,
                        updated_at=_now_ms())
            )
            if changed.rowcount == 0:
                return False
            await conn.execute(kb_qa_questions.delete().where(kb_qa_questions.c.qa_id == qa_id))
            await _insert_questions(conn, app_id, qa_id, questions)
            await self._set_labels(conn, app_id, qa_id, labels)
        return True

    async def qa_question_ids(self, qa_id: int) -> list[tuple[int, str]]:
        """(question id, text) of a pair's similar questions, in order."""
        q = kb_qa_questions.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(q.id, q.text).where((q.qa_id == qa_id) & (q.is_primary == sa.false())).order_by(q.id)
            )
            return [(r[0], r[1]) for r in rows]

    async def update_document_labels(
        self, app_id: int, doc_id: int, labels: Mapping[str, list[str]], url: str | None = None
    ) -> DocumentRow | None:
        """Changes a document's labels (and reference url) without relearning it."""
        values: dict[str, Any] = {"attr_range": ATTR_LABELS if labels else ATTR_ALL, "updated_at": _now_ms()}
        if url is not None:
            values["url"] = url
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                kb_documents.update()
                .where((kb_documents.c.id == doc_id) & (kb_documents.c.app_id == app_id))
                .values(**values)
            )
            if changed.rowcount == 0:
                return None
            await self._set_labels(conn, app_id, doc_id, labels)
            return (await self._documents(conn, kb_documents.c.id == doc_id))[0]


async def _insert_questions(conn: Any, app_id: int, qa_id: int, questions: Sequence[tuple[str, bytes]]) -> None:
    """A pair's questions, the first one primary, with their vectors."""
    await conn.execute(
        kb_qa_questions.insert(),
        [
            {"id": new_id(), "qa_id": qa_id, "app_id": app_id, "text": text, "is_primary": i == 0, "vector": blob}
            for i, (text, blob) in enumerate(questions)
        ],
    )


def _insert_ignoring_duplicates(dialect: str, table: sa.Table) -> Any:
    """INSERT that skips rows whose unique key is there already (a batch staged again after an
    interruption), in the dialect's words."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    return table.insert()
