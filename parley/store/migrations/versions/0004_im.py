"""Tencent Cloud Chat (IM): accounts, robots and C2C messages.

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "im_accounts",
        sa.Column("sdkappid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("internal_id", sa.BigInteger, nullable=False),
        sa.Column("nick", sa.String(512), nullable=False),
        sa.Column("face_url", sa.String(512), nullable=False),
        sa.Column("self_signature", sa.String(512), nullable=False),
        sa.Column("is_robot", sa.Boolean, nullable=False),
        sa.Column("robot_active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "im_messages",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("sdkappid", sa.BigInteger, nullable=False),
        sa.Column("from_account", sa.String(64), nullable=False),
        sa.Column("to_account", sa.String(64), nullable=False),
        sa.Column("msg_seq", sa.BigInteger, nullable=False),
        sa.Column("msg_random", sa.BigInteger, nullable=False),
        sa.Column("msg_time", sa.BigInteger, nullable=False),
        sa.Column("msg_key", sa.String(96), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("cloud_custom_data", sa.Text, nullable=False),
        sa.Column("sender_sees", sa.Boolean, nullable=False),
        sa.Column("online_only", sa.Boolean, nullable=False),
        sa.Column("stream_state", sa.String(16), nullable=False),
        sa.Column("dedup_key", sa.String(160), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("sdkappid", "msg_key", name="uq_im_messages_key"),
    )
    op.create_index("ix_im_messages_pair_time", "im_messages", ["sdkappid", "from_account", "to_account", "msg_time"])
    op.create_index("ix_im_messages_dedup", "im_messages", ["sdkappid", "dedup_key"])


def downgrade() -> None:
    op.drop_index("ix_im_messages_dedup", table_name="im_messages")
    op.drop_index("ix_im_messages_pair_time", table_name="im_messages")
    op.drop_table("im_messages")
    op.drop_table("im_accounts")
