"""The knowledge service: what the engine and the faces call.

At chat time the engine calls `resolve` once per question and acts on the `Resolution`:

- `kind == "qa"`: answer with `resolution.qa.answer` directly, reply method 5, no model call;
- `kind == "passages"`: add `resolution.instructions()` and `resolution.context` to the
  prompt, then after the reply `quote_infos(reply_text, resolution.passages)`;
- `kind == "nothing"`: if `resolution.unknown` the unknown-question reply (reply method 2),
  else let the model answer without knowledge.

In every case `resolution.references()` is the `reference` event's list,
`resolution.knowledge()` the reply's `knowledge` hits, and `elapsed_ms` / `input_tokens`
the token_stat `knowledge` procedure.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from parley.caching import RefreshingCache
from parley.config import KnowledgeServerSettings
from parley.ids import new_id, parse_id
from parley.knowledge.attributes import (
    AttributeEntity,
    LabelError,
    LabelInput,
    LabelNotFound,
    LabelRef,
    attribute_key,
    check_attribute_name,
    check_label_input,
    check_label_set,
    expand_scope,
    resolve_refs,
    synonyms,
)
from parley.knowledge.index import KeywordIndex, SegmentVectors, USearchIndex
from parley.knowledge.ingest import Ingestor, IngestError, Progress, Registered
from parley.knowledge.labels import EVERYTHING, Scope, ScopeError, parse_labels, parse_scope
from parley.knowledge.qa import PairInput, QAMatch, QAMatcher, SimilarEdit, check_pair, table_pairs
from parley.knowledge.search import HybridSearcher
from parley.knowledge.settings import KnowledgeSettings
from parley.knowledge.vectors import AppVectorIndexes, ProcessVectorIndex
from parley.models.embedders import Embedder, build_embedder
from parley.store.knowledge import DocumentRow, KnowledgeRepository, QARow, SegmentRow
from parley.store.knowledge_labels import AttributeRepository
from parley.store.knowledge_search import Fts5KeywordSearch, PostgresKeywordSearch, PostgresVectorSearch
from parley.text import estimate_tokens

QA_TYPE, SEGMENT_TYPE = 1, 2
CANDIDATES = 40

INSTRUCTIONS = (
    "Answer from the knowledge below when it is relevant. Each source starts with its number "
    "in brackets; after a sentence that uses a source, cite it with that number, like [1]. "
    "If the knowledge does not answer the question, say so rather than guess."
)


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved segment as the prompt, the `reference` event and DescribeRefer need it."""

    index: int
    """Its [n] number in the prompt (1-based)."""
    segment_id: int
    doc_id: int
    doc_name: str
    url: str
    text: str
    page: int | None
    sheet: str | None
    headings: str
    start: int
    end: int
    similarity: float

    @property
    def source_name(self) -> str:
        return PurePosixPath(self.doc_name).stem

    def locator(self) -> str:
        parts = [f"page {self.page}" if self.page else "", f"sheet {self.sheet}" if self.sheet else "", self.headings]
        return " · ".join(p for p in parts if p)

    def reference(self) -> dict[str, Any]:
        return {
            "id": str(self.segment_id), "type": SEGMENT_TYPE, "url": self.url, "name": self.source_name,
            "doc_id": str(self.doc_id), "doc_biz_id": str(self.doc_id), "doc_name": self.doc_name, "qa_biz_id": "0",
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    kind: Literal["qa", "passages", "nothing"]
    qa: QAMatch | None = None
    passages: tuple[Passage, ...] = ()
    unknown: bool = False
    """Nothing relevant and the application answers that with its unknown-question reply."""
    elapsed_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def context(self) -> str:
        """The passages for the prompt, numbered [1], [2]... in reference order."""
        blocks = []
        for p in self.passages:
            where = p.locator()
            blocks.append(f"[{p.index}] {p.doc_name}" + (f" ({where})" if where else "") + f"\n{p.text}")
        return "\n\n".join(blocks)

    def instructions(self) -> str:
        """A system-prompt addition: how to use and cite the context (empty without passages)."""
        return f"{INSTRUCTIONS}\n\n{self.context}" if self.passages else ""

    def references(self) -> list[dict[str, Any]]:
        if self.qa is not None:
            return [{
                "id": str(self.qa.qa_id), "type": QA_TYPE, "url": "", "name": self.qa.question,
                "doc_id": "0", "doc_biz_id": "0", "doc_name": "", "qa_biz_id": str(self.qa.qa_id),
            }]
        return [p.reference() for p in self.passages]

    def knowledge(self) -> list[dict[str, Any]]:
        """The reply's `knowledge` hits."""
        if self.qa is not None:
            return [{"id": str(self.qa.qa_id), "type": QA_TYPE}]
        return [{"id": str(p.segment_id), "type": SEGMENT_TYPE, "seg_id": str(p.segment_id)} for p in self.passages]


_MARK = re.compile(r"\[(\d{1,3})\]|【(\d{1,3})】|\^\[(\d{1,3})\]")


def quote_infos(reply_text: str, references: Sequence[Any]) -> list[dict[str, int]]:
    """ADP quote_infos for the model's [n] marks in `reply_text`.

    `position` is the index (in characters, as ADP counts them) where the mark starts in the
    text as given; marks outside 1..len(references) are ignored. Use `strip_quote_marks`
    instead to send the reply without the marks.
    """
    limit = len(references)
    infos = []
    for match in _MARK.finditer(reply_text):
        number = int(next(g for g in match.groups() if g))
        if 1 <= number <= limit:
            infos.append({"index": number, "position": match.start()})
    return infos


def strip_quote_marks(reply_text: str, references: Sequence[Any]) -> tuple[str, list[dict[str, int]]]:
    """The reply without its valid [n] marks, and quote_infos positioned in that text."""
    limit = len(references)
    pieces: list[str] = []
    infos: list[dict[str, int]] = []
    cursor = length = 0
    for match in _MARK.finditer(reply_text):
        number = int(next(g for g in match.groups() if g))
        if not 1 <= number <= limit:
            continue
        piece = reply_text[cursor : match.start()]
        pieces.append(piece)
        length += len(piece)
        infos.append({"index": number, "position": length})
        cursor = match.end()
    pieces.append(reply_text[cursor:])
    return "".join(pieces), infos


@dataclass(frozen=True, slots=True)
class ReferDetail:
    """One reference id resolved, with what DescribeRefer returns."""

    refer_biz_id: str
    doc_type: int  # 1 Q&A, 2 document segment
    doc_name: str = ""
    doc_biz_id: str = "0"
    page_content: str = ""
    question: str = ""
    answer: str = ""
    url: str = ""
    page_infos: list[int] = field(default_factory=list)
    sheet_infos: list[str] = field(default_factory=list)
    headings: str = ""
    start: int = 0
    end: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "refer_biz_id": self.refer_biz_id, "doc_type": self.doc_type, "doc_name": self.doc_name,
            "doc_biz_id": self.doc_biz_id, "page_content": self.page_content, "question": self.question,
            "answer": self.answer, "url": self.url, "page_infos": self.page_infos, "sheet_infos": self.sheet_infos,
            "headings": self.headings, "start": self.start, "end": self.end,
        }

    def cloud_api(self) -> dict[str, Any]:
        """The DescribeRefer `List[]` item (Tencent Cloud API field names)."""
        return {
            "ReferBizId": self.refer_biz_id, "DocType": self.doc_type, "DocName": self.doc_name,
            "PageContent": self.page_content, "Question": self.question, "Answer": self.answer,
            "Confidence": 0.0, "Mark": 0, "Highlights": [], "OrgData": self.page_content,
            "PageInfos": self.page_infos, "SheetInfos": self.sheet_infos, "DocBizId": self.doc_biz_id,
            "KnowledgeBizId": "",
        }


class KnowledgeError(ValueError):
    """A knowledge-base request the operator has to correct (bad file, bad pair, unknown id)."""


def segment_indexes(
    engine: AsyncEngine, repository: KnowledgeRepository, settings: KnowledgeServerSettings, embedder: Embedder,
    root: Path,
) -> tuple[SegmentVectors, KeywordIndex]:
    """The database's indexes for hybrid search: on PostgreSQL pgvector and full-text search in
    the database, shared by every process; on SQLite a usearch index per process (saved under
    `root`) and FTS5."""
    if engine.dialect.name == "postgresql":
        vectors = PostgresVectorSearch(engine, embedder.dimensions, ef_search=settings.expansion_search)
        return vectors, PostgresKeywordSearch(engine)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder.name)
    indexes = AppVectorIndexes(
        repository,
        embedder.dimensions,
        (settings.index_dir or root / "index") / slug,
        factory=lambda dims: USearchIndex(dims, expansion_search=settings.expansion_search),
        loader=lambda dims, path: USearchIndex(dims, expansion_search=settings.expansion_search, path=path),
    )
    return ProcessVectorIndex(repository, indexes), Fts5KeywordSearch(engine)


class KnowledgeService:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: KnowledgeServerSettings,
        data_dir: Path,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder or build_embedder(settings.embedder)
        self.repository = KnowledgeRepository(engine)
        self.attribute_repository = AttributeRepository(engine)
        self._synonyms: RefreshingCache[int, dict[str, dict[str, set[str]]]] = RefreshingCache(
            self._load_synonyms, ttl=1.0
        )
        root = data_dir / "knowledge"
        self.vectors, keywords = segment_indexes(engine, self.repository, settings, self.embedder, root)
        self.searcher = HybridSearcher(self.repository, self.vectors, keywords)
        self.qa = QAMatcher(self.repository, self.embedder)
        self.ingestor = Ingestor(
            self.repository, self.embedder, root / "files", on_commit=self._committed, max_chars=settings.segment_chars
        )
        self._warming: set[asyncio.Task[Any]] = set()
        self._has_knowledge: RefreshingCache[int, bool] = RefreshingCache(self._ask_has_knowledge, ttl=1.0)

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, background: bool = True) -> int:
        """Starts background learning and resumes documents an earlier run left unfinished."""
        if not background:
            return 0
        self.ingestor.start()
        return await self.ingestor.resume_all()

    async def aclose(self) -> None:
        await self.ingestor.aclose()
        for task in list(self._warming):
            task.cancel()
        await self.vectors.aclose()

    async def has_knowledge(self, app_id: int) -> bool:
        """Whether the application has any Q&A pair or learned segment. Turns of applications
        without knowledge skip the knowledge stage.

        Cached (a second, refreshed in the background; see RefreshingCache): changes made
        through this service are seen at once, those of another process about a second later.
        """
        return await self._has_knowledge.get(app_id)

    async def _ask_has_knowledge(self, app_id: int) -> bool:
        return (await self.repository.qa_signature(app_id))[0] > 0 or await self.repository.max_seq(app_id) > 0

    def _changed(self, app_id: int) -> None:
        self._has_knowledge.forget(app_id)

    async def _committed(self, app_id: int, replaced: list[int]) -> None:
        self._changed(app_id)
        await self.vectors.forget(app_id, replaced)
        task = asyncio.create_task(self.vectors.warm(app_id))  # keep the index warm for the next question
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    # --- documents -------------------------------------------------------------------------

    async def add_document(
        self,
        app_id: int,
        name: str,
        data: bytes,
        *,
        labels: Any = None,
        url: str = "",
        background: bool = True,
    ) -> Registered:
        """Registers a document (or a new version) and learns it: queued, or now when not `background`."""
        if len(data) > self.settings.max_file_mb * 1024 * 1024:
            raise KnowledgeError(f"{name}: larger than the {self.settings.max_file_mb:g} MiB limit")
        if not isinstance(url, str) or len(url) > 2048:
            raise KnowledgeError("url must be a string of at most 2048 characters")
        try:
            registered = await self.ingestor.register(app_id, name, data, labels=parse_labels(labels), url=url)
        except (IngestError, ScopeError) as exc:
            raise KnowledgeError(str(exc)) from exc
        if registered.action != "unchanged" and background:
            self.ingestor.enqueue(registered.document.id)
        return registered

    async def learn(self, doc_id: int, progress: Progress | None = None) -> DocumentRow | None:
        return await self.ingestor.learn(doc_id, progress)

    async def idle(self) -> None:
        """Waits for background learning to finish (tests, the CLI)."""
        await self.ingestor.idle()

    async def list_documents(self, app_id: int) -> list[DocumentRow]:
        return await self.repository.list_documents(app_id)

    async def get_document(self, app_id: int, doc_id: int) -> DocumentRow | None:
        document = await self.repository.get_document(doc_id)
        return document if document is not None and document.app_id == app_id else None

    async def document_by_name(self, app_id: int, name: str) -> DocumentRow | None:
        return await self.repository.document_by_name(app_id, name)

    async def delete_document(self, app_id: int, doc_id: int) -> bool:
        document = await self.get_document(app_id, doc_id)
        if document is None:
            return False
        removed = await self.repository.delete_document(doc_id)
        await self.vectors.forget(app_id, removed)
        self._changed(app_id)
        return True

    async def attributes(self, app_id: int) -> dict[str, list[str]]:
        return await self.repository.attributes(app_id)

    async def modify_document(
        self, app_id: int, doc_id: int, labels: Any = None, url: str | None = None
    ) -> DocumentRow | None:
        """Changes a document's labels (and reference url) without relearning it; None if it
        does not exist. Raises KnowledgeError for malformed labels or url."""
        if url is not None and (not isinstance(url, str) or len(url) > 2048):
            raise KnowledgeError("url must be a string of at most 2048 characters")
        try:
            parsed = parse_labels(labels)
        except ScopeError as exc:
            raise KnowledgeError(str(exc)) from exc
        document = await self.repository.update_document_labels(app_id, doc_id, parsed, url)
        self._changed(app_id)
        return document

    # --- Q&A pairs -------------------------------------------------------------------------

    async def add_qa(
        self, app_id: int, question: Any, answer: Any, similar_questions: Any = None, labels: Any = None
    ) -> QARow:
        try:
            pair = check_pair(question, answer, similar_questions, labels)
        except ValueError as exc:
            raise KnowledgeError(str(exc)) from exc
        qa_id = await self.qa.add(app_id, pair)
        self._changed(app_id)
        return (await self.repository.list_qa(app_id, [qa_id]))[0]

    async def import_qa(self, app_id: int, name: str, data: bytes) -> list[int]:
        """Adds every pair of a CSV/XLSX file, or none if any row is bad."""
        try:
            pairs: list[PairInput] = table_pairs(name, data)
        except ValueError as exc:
            raise KnowledgeError(str(exc)) from exc
        added = [await self.qa.add(app_id, pair) for pair in pairs]
        self._changed(app_id)
        return added

    async def list_qa(self, app_id: int) -> list[QARow]:
        return await self.repository.list_qa(app_id)

    async def get_qa(self, app_id: int, qa_id: int) -> QARow | None:
        found = await self.repository.list_qa(app_id, [qa_id])
        return found[0] if found else None

    async def similar_questions(self, app_id: int, qa_id: int) -> list[tuple[int, str]]:
        """(question id, text) of a pair's similar questions: the ids SimilarEdit names."""
        if await self.get_qa(app_id, qa_id) is None:
            return []
        return await self.repository.qa_question_ids(qa_id)

    async def modify_qa(
        self,
        app_id: int,
        qa_id: int,
        *,
        question: Any = None,
        answer: Any = None,
        similar_questions: Any = None,
        similar_edit: SimilarEdit | None = None,
        labels: Any = None,
        keep_labels: bool = True,
    ) -> QARow | None:
        """Changes a pair in place (same id) and re-embeds its questions; what is not given is
        kept (labels too while `keep_labels`). None if there is no such pair."""
        current = await self.get_qa(app_id, qa_id)
        if current is None:
            return None
        try:
            similar = current.similar_questions if similar_questions is None else similar_questions
            if similar_edit is not None:
                similar = similar_edit.apply(await self.repository.qa_question_ids(qa_id))
            pair = check_pair(
                current.question if question is None else question,
                current.answer if answer is None else answer,
                similar,
                dict(current.labels) if keep_labels else labels,
            )
        except ValueError as exc:
            raise KnowledgeError(str(exc)) from exc
        if not await self.qa.replace(app_id, qa_id, pair):
            return None
        self._changed(app_id)
        return await self.get_qa(app_id, qa_id)

    # --- attribute labels ------------------------------------------------------------------
    # Raise LabelNotFound for an unknown attribute id, LabelError for anything else to correct.

    async def list_attributes(self, app_id: int) -> list[AttributeEntity]:
        return await self.attribute_repository.list(app_id)

    async def get_attribute(self, app_id: int, attribute_id: int) -> AttributeEntity:
        attribute = await self.attribute_repository.get(app_id, attribute_id)
        if attribute is None:
            raise LabelNotFound(f"no attribute label {attribute_id} in this application")
        return attribute

    async def create_attribute(
        self, app_id: int, name: Any, labels: Sequence[LabelInput], key: str = ""
    ) -> AttributeEntity:
        name = check_attribute_name(name)
        cleaned = [check_label_input(LabelInput(label.name, label.similar)) for label in labels]
        check_label_set(cleaned)
        existing = await self.attribute_repository.list(app_id)
        if any(a.name == name for a in existing):
            raise LabelError(f"an attribute named {name!r} already exists")
        attribute_id = new_id()
        chosen = attribute_key(key, name, attribute_id, (a.key for a in existing))
        attribute = await self.attribute_repository.create(app_id, attribute_id, chosen, name, cleaned)
        self._synonyms.forget(app_id)
        return attribute

    async def modify_attribute(
        self,
        app_id: int,
        attribute_id: int,
        *,
        name: Any = None,
        delete_label_ids: Sequence[int] = (),
        labels: Sequence[LabelInput] = (),
    ) -> AttributeEntity:
        """Renames the attribute, deletes labels, changes labels with an id and adds those
        without. A renamed label is renamed on the items that carry it."""
        attribute = await self.get_attribute(app_id, attribute_id)
        new_name = attribute.name if name is None else check_attribute_name(name)
        if new_name != attribute.name and any(
            a.name == new_name for a in await self.attribute_repository.list(app_id) if a.id != attribute.id
        ):
            raise LabelError(f"an attribute named {new_name!r} already exists")
        deleted = set(delete_label_ids)
        changes = [check_label_input(label) for label in labels]
        for label_id in [*deleted, *(c.id for c in changes if c.id is not None)]:
            if attribute.label(label_id) is None:
                raise LabelError(f"attribute {attribute_id} has no label {label_id}")
        if any(c.id in deleted for c in changes):
            raise LabelError("a label cannot be changed and deleted in the same request")
        by_id = {c.id: c for c in changes if c.id is not None}
        after = [by_id.get(label.id, LabelInput(label.name)) for label in attribute.labels if label.id not in deleted]
        check_label_set([*after, *(c for c in changes if c.id is None)])
        modified = await self.attribute_repository.modify(attribute, new_name, sorted(deleted), changes)
        self._synonyms.forget(app_id)
        self._changed(app_id)
        return modified

    async def delete_attributes(self, app_id: int, attribute_ids: Sequence[int]) -> None:
        """Deletes the attributes, or none if one is unknown. Items keep their plain labels."""
        for attribute_id in attribute_ids:
            await self.get_attribute(app_id, attribute_id)
        await self.attribute_repository.delete(app_id, list(dict.fromkeys(attribute_ids)))
        self._synonyms.forget(app_id)

    async def resolve_label_refs(self, app_id: int, refs: Sequence[LabelRef]) -> dict[str, list[str]]:
        """AttrLabels refs to plain labels; raises LabelError for an unknown id."""
        if not refs:
            return {}
        attributes = {a.id: a for a in await self.attribute_repository.list(app_id)}
        return resolve_refs(attributes, refs)

    async def _expanded(self, app_id: int, scope: Scope) -> Scope:
        """The scope with labels whose similar labels were requested (cached for a second)."""
        if not scope.restricted:
            return scope
        return expand_scope(scope, await self._synonyms.get(app_id))

    async def _load_synonyms(self, app_id: int) -> dict[str, dict[str, set[str]]]:
        return synonyms(await self.attribute_repository.list(app_id))

    async def delete_qa(self, app_id: int, qa_id: int) -> bool:
        self._changed(app_id)
        return await self.repository.delete_qa(app_id, qa_id)

    # --- chat time -------------------------------------------------------------------------

    @staticmethod
    def scope(
        custom_variables: Mapping[str, Any] | None, visitor_labels: Any, settings: KnowledgeSettings
    ) -> Scope:
        """The request's retrieval scope. Raises ScopeError (ADP 460024) for malformed labels."""
        return parse_scope(custom_variables, visitor_labels, settings.variable_bindings, settings.scope_condition)

    async def resolve(
        self, app_id: int, question: str, scope: Scope = EVERYTHING, settings: KnowledgeSettings | None = None
    ) -> Resolution:
        """What the knowledge base says about `question`, within `scope`."""
        settings = settings or KnowledgeSettings()
        started = time.monotonic()
        if not settings.enabled or not question.strip():
            return Resolution("nothing")
        tokens = estimate_tokens(question)

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        scope = await self._expanded(app_id, scope)
        has_qa = settings.qa_enabled and (await self.repository.qa_signature(app_id))[0] > 0
        if not has_qa and await self.repository.max_seq(app_id) == 0:  # an empty knowledge base
            return Resolution("nothing", unknown=settings.unknown_when_nothing, elapsed_ms=elapsed())
        thresholds = settings.thresholds(self.embedder.thresholds)
        query_vector = (await asyncio.to_thread(self.embedder.embed_queries, [question]))[0]
        if has_qa:
            match = await self.qa.match(app_id, question, query_vector, scope, thresholds.qa)
            if match is not None:
                return Resolution("qa", qa=match, elapsed_ms=elapsed(), input_tokens=tokens)
        hits = await self.searcher.search(app_id, question, query_vector, scope, CANDIDATES)
        relevant = [h for h in hits if h.similarity >= thresholds.doc]
        if relevant:
            best = max(h.similarity for h in relevant)
            relevant = [h for h in relevant if h.similarity >= best - settings.relative_margin]
        passages: list[Passage] = []
        budget = settings.token_budget
        for hit in relevant[: settings.top_k]:
            cost = estimate_tokens(hit.segment.text)
            if cost > budget and passages:
                break
            passages.append(_passage(len(passages) + 1, hit.segment, hit.similarity, budget))
            budget -= cost
        if not passages:
            return Resolution("nothing", unknown=settings.unknown_when_nothing, elapsed_ms=elapsed(), input_tokens=tokens)
        return Resolution("passages", passages=tuple(passages), elapsed_ms=elapsed(), input_tokens=tokens)

    quote_infos = staticmethod(quote_infos)
    strip_quote_marks = staticmethod(strip_quote_marks)

    async def describe_refer(self, app_id: int, ids: Sequence[Any]) -> list[ReferDetail]:
        """Details of reference ids (the `reference` event's `id`s); unknown ids are left out."""
        wanted: list[int] = []
        for raw in ids:
            text = str(raw).strip()
            if not (text.isascii() and text.isdigit()) or len(text) > 20:
                raise KnowledgeError(f"reference id {raw!r} is not a decimal id")
            found = parse_id(text)
            if found is not None:  # past any id there can be: unknown
                wanted.append(found)
        found: dict[int, ReferDetail] = {}
        for row in await self.repository.segments_by_id(app_id, wanted):
            found[row.id] = ReferDetail(
                str(row.id), SEGMENT_TYPE, row.doc_name, str(row.doc_id), row.text, url=row.doc_url,
                page_infos=[row.page] if row.page else [], sheet_infos=[row.sheet] if row.sheet else [],
                headings=row.headings, start=row.start, end=row.end,
            )
        rest = [i for i in wanted if i not in found]
        if rest:
            for pair in await self.repository.list_qa(app_id, rest):
                found[pair.id] = ReferDetail(str(pair.id), QA_TYPE, question=pair.question, answer=pair.answer, page_content=pair.answer)
        return [found[i] for i in dict.fromkeys(wanted) if i in found]


def _passage(index: int, row: SegmentRow, similarity: float, budget: int) -> Passage:
    text = row.text
    if estimate_tokens(text) > budget:  # only ever the first passage: cut it to the budget
        while text and estimate_tokens(text) > budget:
            text = text[: max(1, int(len(text) * 0.8))]
    return Passage(
        index, row.id, row.doc_id, row.doc_name, row.doc_url, text, row.page, row.sheet, row.headings,
        row.start, row.end, similarity,
    )
