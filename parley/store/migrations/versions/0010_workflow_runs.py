"""Workflow runs: a run's state while it waits for the user, and its trace.

Revision ID: 0010
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("release_version", sa.Integer, nullable=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=True),
        sa.Column("workflow_name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("error", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_workflow_runs_session", "workflow_runs", ["app_id", "session_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_session", table_name="workflow_runs")
    op.drop_table("workflow_runs")
