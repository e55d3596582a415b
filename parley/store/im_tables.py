"""Tables of the Tencent Cloud Chat (IM) domain, on the shared metadata.

Accounts are per SDKAppID; a robot is an account with `is_robot`. Messages are C2C
messages; a streaming message is one row whose body grows in place, as IM clients see it.
"""

from __future__ import annotations

import sqlalchemy as sa

from parley.store.tables import metadata

im_accounts = sa.Table(
    "im_accounts",
    metadata,
    sa.Column("sdkappid", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("internal_id", sa.BigInteger, nullable=False),
    sa.Column("nick", sa.String(512), nullable=False, default=""),
    sa.Column("face_url", sa.String(512), nullable=False, default=""),
    sa.Column("self_signature", sa.String(512), nullable=False, default=""),
    sa.Column("is_robot", sa.Boolean, nullable=False, default=False),
    sa.Column("robot_active", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

im_messages = sa.Table(
    "im_messages",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("sdkappid", sa.BigInteger, nullable=False),
    sa.Column("from_account", sa.String(64), nullable=False),
    sa.Column("to_account", sa.String(64), nullable=False),
    sa.Column("msg_seq", sa.BigInteger, nullable=False),
    sa.Column("msg_random", sa.BigInteger, nullable=False),
    sa.Column("msg_time", sa.BigInteger, nullable=False),
    sa.Column("msg_key", sa.String(96), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("cloud_custom_data", sa.Text, nullable=False, default=""),
    sa.Column("sender_sees", sa.Boolean, nullable=False, default=True),
    sa.Column("online_only", sa.Boolean, nullable=False, default=False),
    sa.Column("stream_state", sa.String(16), nullable=False, default=""),
    sa.Column("dedup_key", sa.String(160), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("sdkappid", "msg_key", name="uq_im_messages_key"),
)
sa.Index("ix_im_messages_pair_time", im_messages.c.sdkappid, im_messages.c.from_account,
         im_messages.c.to_account, im_messages.c.msg_time)
sa.Index("ix_im_messages_dedup", im_messages.c.sdkappid, im_messages.c.dedup_key)
