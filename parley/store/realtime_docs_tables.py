"""Real-time documents: files a visitor uploads into a chat session and Parley parses (ADP docParse)."""

from __future__ import annotations

import sqlalchemy as sa

from parley.store.tables import metadata

realtime_docs = sa.Table(
    "realtime_docs",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("file_name", sa.String(512), nullable=False),
    sa.Column("file_type", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("object_key", sa.String(1024), nullable=False),
    sa.Column("file_url", sa.String(2048), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False, default=""),
    sa.Column("error_message", sa.String(1024), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
sa.Index("ix_realtime_docs_session", realtime_docs.c.app_id, realtime_docs.c.session_id)
