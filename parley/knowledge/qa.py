"""Q&A pairs: a question, its similar questions and the answer given without a model call.

A visitor's question matches a pair when it equals one of the pair's questions (after
folding case, spaces and punctuation) or when its embedding is close enough to one of them
(query against query, above the application's Q&A threshold). Pairs are imported from
CSV or XLSX with the columns question, answer, similar questions and labels (English or
Chinese headers; without a header row the columns are taken in that order).
"""

from __future__ import annotations

import asyncio
import csv
import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from parley.knowledge.index import exact_search, pack, unpack_many
from parley.knowledge.labels import Scope, ScopeError, parse_labels
from parley.knowledge.parse import decode_text
from parley.models.embedders import Embedder
from parley.store.knowledge import KnowledgeRepository

MAX_QUESTION = 1000
MAX_ANSWER = 20_000
MAX_SIMILAR = 50


class QAError(ValueError):
    """A Q&A pair or import file the operator has to correct."""


@dataclass(frozen=True, slots=True)
class QAMatch:
    qa_id: int
    question: str
    """The pair's own question."""
    matched: str
    """The question or similar question that matched."""
    answer: str
    score: float


def fold(text: str) -> str:
    """Case, width, spaces and punctuation folded away, for exact matching."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] in "PS"))


@dataclass
class _Questions:
    signature: tuple[int, int, int]
    keys: np.ndarray
    qa_ids: np.ndarray
    texts: list[str]
    vectors: np.ndarray
    folded: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PairInput:
    question: str
    answer: str
    similar: list[str]
    labels: dict[str, list[str]]


def check_pair(question: object, answer: object, similar: object = None, labels: object = None) -> PairInput:
    if not isinstance(question, str) or not question.strip() or len(question) > MAX_QUESTION:
        raise QAError(f"question must be a non-empty string of at most {MAX_QUESTION} characters")
    if not isinstance(answer, str) or not answer.strip() or len(answer) > MAX_ANSWER:
        raise QAError(f"answer must be a non-empty string of at most {MAX_ANSWER} characters")
    similar = similar or []
    if not isinstance(similar, list) or not all(isinstance(s, str) for s in similar) or len(similar) > MAX_SIMILAR:
        raise QAError(f"similar_questions must be a list of at most {MAX_SIMILAR} strings")
    cleaned = list(dict.fromkeys(s.strip() for s in similar if s.strip() and len(s) <= MAX_QUESTION))
    try:
        parsed = parse_labels(labels)
    except ScopeError as exc:
        raise QAError(str(exc)) from exc
    return PairInput(question.strip(), answer.strip(), [s for s in cleaned if s != question.strip()], parsed)


@dataclass(frozen=True, slots=True)
class SimilarEdit:
    """Changes to a pair's similar questions (the cloud API's SimilarQuestionModify), by
    question id (SimBizId) or, for deletions, by text as well."""

    add: Sequence[str] = ()
    update: Mapping[int, str] = field(default_factory=dict)
    delete: Sequence[int | str] = ()

    def apply(self, current: Sequence[tuple[int, str]]) -> list[str]:
        """The similar questions after the edit; raises QAError for an id the pair does not have."""
        ids = {question_id for question_id, _ in current}
        unknown = [i for i in [*self.update, *self.delete] if isinstance(i, int) and i not in ids]
        if unknown:
            raise QAError(f"the pair has no similar question {unknown[0]}")
        kept = [
            self.update.get(question_id, text)
            for question_id, text in current
            if question_id not in self.delete and text not in self.delete
        ]
        return [*kept, *self.add]


class QAMatcher:
    def __init__(self, repository: KnowledgeRepository, embedder: Embedder) -> None:
        self._repo = repository
        self._embedder = embedder
        self._cache: dict[int, _Questions] = {}

    async def add(self, app_id: int, pair: PairInput) -> int:
        texts = [pair.question, *pair.similar]
        vectors = await asyncio.to_thread(self._embedder.embed_queries, texts)
        return await self._repo.add_qa(
            app_id, pair.question, pair.answer, [(t, pack(v)) for t, v in zip(texts, vectors)], pair.labels
        )

    async def replace(self, app_id: int, qa_id: int, pair: PairInput) -> bool:
        """Changes pair `qa_id` in place, re-embedding its questions; False if it does not exist."""
        texts = [pair.question, *pair.similar]
        vectors = await asyncio.to_thread(self._embedder.embed_queries, texts)
        return await self._repo.update_qa(
            app_id, qa_id, pair.question, pair.answer, [(t, pack(v)) for t, v in zip(texts, vectors)], pair.labels
        )

    async def _questions(self, app_id: int) -> _Questions:
        signature = await self._repo.qa_signature(app_id)
        cached = self._cache.get(app_id)
        if cached is not None and cached.signature == signature:
            return cached
        rows = await self._repo.qa_questions(app_id)
        dims = self._embedder.dimensions
        rows = [r for r in rows if len(r[3]) == dims * 2]
        questions = _Questions(
            signature,
            np.asarray([r[0] for r in rows], np.int64),
            np.asarray([r[1] for r in rows], np.int64),
            [r[2] for r in rows],
            unpack_many([r[3] for r in rows], dims),
        )
        for position, text in enumerate(questions.texts):
            questions.folded.setdefault(fold(text), []).append(position)
        self._cache[app_id] = questions
        return questions

    async def match(
        self, app_id: int, question: str, query_vector: np.ndarray, scope: Scope, threshold: float
    ) -> QAMatch | None:
        """The best pair in scope whose question matches above `threshold`, if any."""
        questions = await self._questions(app_id)
        if len(questions.keys) == 0:
            return None
        candidates: list[tuple[int, float]] = [(p, 1.0) for p in questions.folded.get(fold(question), [])]
        positions = np.arange(len(questions.keys))
        top, sims = exact_search(positions, questions.vectors, query_vector, 20)
        candidates += [(int(p), float(s)) for p, s in zip(top, sims) if s >= threshold]
        if not candidates:
            return None
        allowed = await self._repo.qa_in_scope(app_id, sorted({int(questions.qa_ids[p]) for p, _ in candidates}), scope)
        for position, score in sorted(candidates, key=lambda c: -c[1]):
            qa_id = int(questions.qa_ids[position])
            if qa_id in allowed:
                pair = (await self._repo.list_qa(app_id, [qa_id]))[0]
                return QAMatch(qa_id, pair.question, questions.texts[position], pair.answer, score)
        return None


# --- import ---------------------------------------------------------------------------------

_HEADERS = {
    "question": {"question", "questions", "问题", "标准问题", "问"},
    "answer": {"answer", "answers", "答案", "回答", "答"},
    "similar": {"similar", "similar questions", "similar_questions", "相似问题", "相似问"},
    "labels": {"labels", "label", "标签"},
}


def _split_similar(cell: str) -> list[str]:
    parts = [cell]
    for sep in ("\n", "|", "；", ";"):
        parts = [piece for part in parts for piece in part.split(sep)]
    return [p.strip() for p in parts if p.strip()]


def _label_cell(cell: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in cell.replace("；", ";").split(";"):
        if not part.strip():
            continue
        for sep in ("=", ":", "："):
            if sep in part:
                attribute, _, values = part.partition(sep)
                labels[attribute.strip()] = values.strip()
                break
        else:
            raise QAError(f"labels cell {cell!r}: expected attribute=value|value; ...")
    return labels


def table_pairs(name: str, data: bytes) -> list[PairInput]:
    """Q&A pairs from a CSV or XLSX file. Raises QAError naming the first bad row."""
    kind = name.lower().rsplit(".", 1)[-1]
    if kind == "csv":
        rows: list[Sequence[object]] = list(csv.reader(io.StringIO(decode_text(data))))
    elif kind == "xlsx":
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:
            raise QAError(f"could not read the XLSX file: {exc}") from exc
        rows = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
        workbook.close()
    else:
        raise QAError("Q&A pairs are imported from .csv or .xlsx files")
    cells = [["" if v is None else str(v).strip() for v in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        raise QAError("the file holds no Q&A pairs")
    columns: Mapping[str, int] = {"question": 0, "answer": 1, "similar": 2, "labels": 3}
    header = [c.casefold() for c in cells[0]]
    found = {key: i for key, names in _HEADERS.items() for i, h in enumerate(header) if h in names}
    first = 0
    if "question" in found and "answer" in found:
        columns, first = found, 1
    pairs = []
    for number, row in enumerate(cells[first:], first + 1):
        def cell(key: str) -> str:
            index = columns.get(key)
            return row[index] if index is not None and index < len(row) else ""

        try:
            labels = _label_cell(cell("labels")) if cell("labels") else None
            pairs.append(check_pair(cell("question"), cell("answer"), _split_similar(cell("similar")), labels))
        except QAError as exc:
            raise QAError(f"row {number}: {exc}") from exc
    return pairs
