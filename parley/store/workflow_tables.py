"""Workflow runs: each run's state (while it waits for the user) and its trace (every node's
input, output, timing and failure), for resuming and for the operator to debug from."""

from __future__ import annotations

import sqlalchemy as sa

from parley.store.tables import metadata

workflow_runs = sa.Table(
    "workflow_runs",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    sa.Column("release_version", sa.Integer, nullable=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("record_id", sa.BigInteger, nullable=True),  # the bot record of the run's latest turn
    sa.Column("workflow_name", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("error", sa.String(1024), nullable=False, default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
sa.Index("ix_workflow_runs_session", workflow_runs.c.app_id, workflow_runs.c.session_id, workflow_runs.c.status)
