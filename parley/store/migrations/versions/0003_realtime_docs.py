"""Real-time documents parsed for chat sessions (ADP docParse).

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realtime_docs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("file_type", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("file_url", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("error_message", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_realtime_docs_session", "realtime_docs", ["app_id", "session_id"])


def downgrade() -> None:
    op.drop_index("ix_realtime_docs_session", table_name="realtime_docs")
    op.drop_table("realtime_docs")
