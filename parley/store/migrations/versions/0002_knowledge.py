"""Knowledge base: documents, segments (with an FTS5 keyword index), Q&A pairs, labels.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


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
        sa.Column("headings", sa.Text, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("file_type", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("file_path", sa.String(1024), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("attr_range", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("live_generation", sa.Integer, nullable=False),
        sa.Column("pending_generation", sa.Integer, nullable=False),
        sa.Column("segment_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("app_id", "name", name="uq_kb_documents_app_name"),
    )
    op.create_table(
        "kb_segments",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.BigInteger, nullable=False, unique=True),
        *_segment_fields(),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_kb_segments_app_seq", "kb_segments", ["app_id", "seq"])
    op.create_index("ix_kb_segments_doc", "kb_segments", ["doc_id", "ordinal"])
    op.create_table(
        "kb_staged_segments",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        *_segment_fields(),
        sa.UniqueConstraint("doc_id", "generation", "ordinal", name="uq_kb_staged_doc_gen_ordinal"),
    )
    op.create_table(
        "kb_qa",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("attr_range", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_kb_qa_app", "kb_qa", ["app_id"])
    op.create_table(
        "kb_qa_questions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("qa_id", sa.BigInteger, nullable=False),
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_kb_qa_questions_app", "kb_qa_questions", ["app_id", "id"])
    op.create_index("ix_kb_qa_questions_qa", "kb_qa_questions", ["qa_id"])
    op.create_table(
        "kb_labels",
        sa.Column("item_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("attribute", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), primary_key=True),
        sa.Column("app_id", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_kb_labels_app_attr", "kb_labels", ["app_id", "attribute", "value"])
    if op.get_bind().dialect.name == "sqlite":
        # Keyword index: the tokens column holds jieba-tokenised text joined by spaces, so
        # FTS5's unicode61 tokenizer only has to split on the spaces.
        op.execute(
            "CREATE VIRTUAL TABLE kb_segments_fts USING fts5("
            "tokens, content='kb_segments', content_rowid='seq', tokenize='unicode61 remove_diacritics 2')"
        )
        # Document frequency per term, so that a question's very common words can be left out
        # of the keyword query (ranking every row that holds them would cost more than it tells).
        op.execute("CREATE VIRTUAL TABLE kb_segments_fts_vocab USING fts5vocab(kb_segments_fts, 'row')")
        op.execute(
            "CREATE TRIGGER kb_segments_fts_insert AFTER INSERT ON kb_segments BEGIN "
            "INSERT INTO kb_segments_fts(rowid, tokens) VALUES (new.seq, new.tokens); END"
        )
        op.execute(
            "CREATE TRIGGER kb_segments_fts_delete AFTER DELETE ON kb_segments BEGIN "
            "INSERT INTO kb_segments_fts(kb_segments_fts, rowid, tokens) VALUES ('delete', old.seq, old.tokens); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS kb_segments_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS kb_segments_fts_insert")
        op.execute("DROP TABLE IF EXISTS kb_segments_fts_vocab")
        op.execute("DROP TABLE IF EXISTS kb_segments_fts")
    op.drop_table("kb_labels")
    op.drop_index("ix_kb_qa_questions_qa", table_name="kb_qa_questions")
    op.drop_index("ix_kb_qa_questions_app", table_name="kb_qa_questions")
    op.drop_table("kb_qa_questions")
    op.drop_index("ix_kb_qa_app", table_name="kb_qa")
    op.drop_table("kb_qa")
    op.drop_table("kb_staged_segments")
    op.drop_index("ix_kb_segments_doc", table_name="kb_segments")
    op.drop_index("ix_kb_segments_app_seq", table_name="kb_segments")
    op.drop_table("kb_segments")
    op.drop_table("kb_documents")
