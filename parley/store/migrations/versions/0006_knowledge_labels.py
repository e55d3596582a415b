"""Attribute labels as entities: kb_attributes and kb_attribute_labels.

Revision ID: 0006
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_attributes",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("app_id", "key", name="uq_kb_attributes_app_key"),
        sa.UniqueConstraint("app_id", "name", name="uq_kb_attributes_app_name"),
    )
    op.create_table(
        "kb_attribute_labels",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("attr_id", sa.BigInteger, nullable=False),
        sa.Column("app_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("similar", sa.JSON, nullable=False),
        sa.UniqueConstraint("attr_id", "name", name="uq_kb_attribute_labels_attr_name"),
    )
    op.create_index("ix_kb_attribute_labels_app", "kb_attribute_labels", ["app_id"])


def downgrade() -> None:
    op.drop_index("ix_kb_attribute_labels_app", table_name="kb_attribute_labels")
    op.drop_table("kb_attribute_labels")
    op.drop_table("kb_attributes")
