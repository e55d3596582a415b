"""The schema, as SQLAlchemy Core tables. Alembic migrations in migrations/ create it.

Ids are the numeric ids of parley.ids (BigInteger); times are Unix milliseconds.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

apps = sa.Table(
    "apps",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("app_key", sa.String(128), nullable=False, unique=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("description", sa.String(1024), nullable=False, default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("app_id", "version", name="uq_releases_app_version"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    # The face that owns the session (adp, cloudbase, im): names are unique only within a face.
    sa.Column("face", sa.String(16), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("visitor_biz_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("app_id", "face", "session_id", name="uq_sessions_app_face_session"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("session_pk", sa.BigInteger, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("app_id", sa.BigInteger, nullable=False),
    sa.Column("request_id", sa.String(255), nullable=False, default=""),
    sa.Column("is_from_self", sa.Boolean, nullable=False),
    sa.Column("related_record_id", sa.BigInteger, nullable=True),
    sa.Column("content", sa.Text, nullable=False, default=""),
    sa.Column("reasoning", sa.Text, nullable=False, default=""),
    sa.Column("reply_method", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model", sa.String(128), nullable=False, default=""),
    sa.Column("is_evil", sa.Boolean, nullable=False, default=False),
    sa.Column("is_llm_generated", sa.Boolean, nullable=False, default=False),
    sa.Column("token_stat", sa.JSON, nullable=True),
    sa.Column("file_infos", sa.JSON, nullable=True),
    sa.Column("extra", sa.JSON, nullable=True),
    sa.Column("error_code", sa.Integer, nullable=True),
    sa.Column("error_message", sa.String(1024), nullable=True),
    sa.Column("score", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
)
sa.Index("ix_records_session_id", records.c.session_pk, records.c.id)
sa.Index(
    "ix_records_in_progress",
    records.c.status,
    sqlite_where=records.c.status == "streaming",
    postgresql_where=records.c.status == "streaming",
)
"""Answers being written (conversations.IN_PROGRESS): few at any time, found at start-up."""
