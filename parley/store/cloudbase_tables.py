"""Tables of the CloudBase AI bot channel: bots, API keys, conversations, feedback.

A CloudBase bot is a Parley application published for the CloudBase face; its
conversations are Parley sessions (the conversation id is the session id), so the
messages themselves stay in `records`.
"""

from __future__ import annotations

import sqlalchemy as sa

from parley.store.tables import metadata

cloudbase_bots = sa.Table(
    "cloudbase_bots",
    metadata,
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

cloudbase_keys = sa.Table(
    "cloudbase_keys",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # api | publishable
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex; the key itself is never stored
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

cloudbase_conversations = sa.Table(
    "cloudbase_conversations",
    metadata,
    sa.Column("conversation_id", sa.String(64), primary_key=True),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False),
    # `app_id:owner` on a default conversation, NULL otherwise: one default per visitor and bot.
    sa.Column("default_for", sa.String(96), nullable=True, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
sa.Index("ix_cloudbase_conversations_owner", cloudbase_conversations.c.app_id, cloudbase_conversations.c.owner,
         cloudbase_conversations.c.updated_at)

cloudbase_feedback = sa.Table(
    "cloudbase_feedback",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    sa.Column("record_id", sa.BigInteger, nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),  # upvote | downvote
    sa.Column("rating", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("ai_answer", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("record_id", "sender", name="uq_cloudbase_feedback_record_sender"),
)
sa.Index("ix_cloudbase_feedback_app", cloudbase_feedback.c.app_id, cloudbase_feedback.c.created_at)
