"""Applications, releases, sessions and records.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("app_key", sa.String(128), nullable=False, unique=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("description", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("app_id", "version", name="uq_releases_app_version"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("visitor_biz_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("app_id", "session_id", name="uq_sessions_app_session"),
    )
    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("session_pk", sa.BigInteger, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("is_from_self", sa.Boolean, nullable=False),
        sa.Column("related_record_id", sa.BigInteger, nullable=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("reasoning", sa.Text, nullable=False),
        sa.Column("reply_method", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("is_evil", sa.Boolean, nullable=False),
        sa.Column("is_llm_generated", sa.Boolean, nullable=False),
        sa.Column("token_stat", sa.JSON, nullable=True),
        sa.Column("file_infos", sa.JSON, nullable=True),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.Column("error_code", sa.Integer, nullable=True),
        sa.Column("error_message", sa.String(1024), nullable=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_records_session_id", "records", ["session_pk", "id"])


def downgrade() -> None:
    op.drop_index("ix_records_session_id", table_name="records")
    op.drop_table("records")
    op.drop_table("sessions")
    op.drop_table("releases")
    op.drop_table("apps")
