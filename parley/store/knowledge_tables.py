"""Knowledge base tables: documents, their segments, Q&A pairs and labels.

Segments being learned wait in `kb_staged_segments`; a document's new version becomes
visible in one transaction that moves them into `kb_segments` (and out of the old ones),
so retrieval never sees a half-indexed document. `kb_segments.seq` grows with every
commit and is never reused: it is the key of the vector index, which catches up on
whatever has a larger seq than it has seen. On SQLite the keyword index is an FTS5 table over
`kb_segments.tokens` (jieba-tokenised text), kept in step by triggers (migration 0002); on
PostgreSQL `kb_segments_search` holds each segment's halfvec and tsvector for pgvector and
full-text search, kept in step the same way (migration 0009, parley.store.knowledge_search).
"""

from __future__ import annotations

import sqlalchemy as sa

from parley.store.tables import metadata

kb_documents = sa.Table(
    "kb_documents",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("file_type", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("file_path", sa.String(1024), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False, default=""),
    sa.Column("title", sa.String(512), nullable=False, default=""),
    sa.Column("attr_range", sa.Integer, nullable=False, default=1),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(1024), nullable=False, default=""),
    sa.Column("live_generation", sa.Integer, nullable=False, default=0),
    sa.Column("pending_generation", sa.Integer, nullable=False, default=0),
    sa.Column("segment_count", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("app_id", "name", name="uq_kb_documents_app_name"),
)



def _segment_fields() -> list[sa.Column]:
    return [
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("doc_id", sa.BigInteger, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("tokens", sa.Text, nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("sheet", sa.String(256), nullable=True),
        sa.Column("headings", sa.Text, nullable=False, default=""),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    ]


kb_segments = sa.Table(
    "kb_segments",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.BigInteger, nullable=False, unique=True),
    *_segment_fields(),
    sqlite_autoincrement=True,
)
sa.Index("ix_kb_segments_app_seq", kb_segments.c.app_id, kb_segments.c.seq)
sa.Index("ix_kb_segments_doc", kb_segments.c.doc_id, kb_segments.c.ordinal)

kb_staged_segments = sa.Table(
    "kb_staged_segments",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    *_segment_fields(),
    sa.UniqueConstraint("doc_id", "generation", "ordinal", name="uq_kb_staged_doc_gen_ordinal"),
)

kb_qa = sa.Table(
    "kb_qa",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("attr_range", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
sa.Index("ix_kb_qa_app", kb_qa.c.app_id)

kb_qa_questions = sa.Table(
    "kb_qa_questions",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("qa_id", sa.BigInteger, nullable=False),
    sa.Column("app_id", sa.BigInteger, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)
sa.Index("ix_kb_qa_questions_app", kb_qa_questions.c.app_id, kb_qa_questions.c.id)
sa.Index("ix_kb_qa_questions_qa", kb_qa_questions.c.qa_id)

kb_labels = sa.Table(
    "kb_labels",
    metadata,
    sa.Column("item_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("attribute", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(128), primary_key=True),
    sa.Column("app_id", sa.BigInteger, nullable=False),
)
sa.Index("ix_kb_labels_app_attr", kb_labels.c.app_id, kb_labels.c.attribute, kb_labels.c.value)

FTS_TABLE = "kb_segments_fts"
FTS_VOCAB_TABLE = "kb_segments_fts_vocab"
