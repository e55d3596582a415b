"""CloudBase AI bot channel: bots, API keys, conversations and feedback.

Revision ID: 0005
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cloudbase_bots",
        sa.Column("bot_id", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False, unique=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("search_enable", sa.Boolean, nullable=False),
        sa.Column("multi_conversation", sa.Boolean, nullable=False),
        sa.Column("need_recommend", sa.Boolean, nullable=False),
        sa.Column("background", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "cloudbase_keys",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "cloudbase_conversations",
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("default_for", sa.String(96), nullable=True, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cloudbase_conversations_owner", "cloudbase_conversations", ["app_id", "owner", "updated_at"])
    op.create_table(
        "cloudbase_feedback",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("ai_answer", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("record_id", "sender", name="uq_cloudbase_feedback_record_sender"),
    )
    op.create_index("ix_cloudbase_feedback_app", "cloudbase_feedback", ["app_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_cloudbase_feedback_app", table_name="cloudbase_feedback")
    op.drop_table("cloudbase_feedback")
    op.drop_index("ix_cloudbase_conversations_owner", table_name="cloudbase_conversations")
    op.drop_table("cloudbase_conversations")
    op.drop_table("cloudbase_keys")
    op.drop_table("cloudbase_bots")
