"""Answers in progress: a partial index over records still being written, for start-up recovery.

Revision ID: 0007_answers_in_progress
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_records_in_progress",
        "records",
        ["status"],
        sqlite_where=sa.text("status = 'streaming'"),
        postgresql_where=sa.text("status = 'streaming'"),
    )


def downgrade() -> None:
    op.drop_index("ix_records_in_progress", table_name="records")
