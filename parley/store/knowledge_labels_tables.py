"""Attribute labels as entities (ADP's "attribute labels"): an attribute and its labels, with ids.

Documents and Q&A pairs still carry plain `{attribute key: [label names]}` in `kb_labels`;
these tables give those keys and names ids, display names and similar labels, so that the
cloud API can refer to them by AttrBizId and LabelBizId. See migration 0006.
"""

from __future__ import annotations

import sqlalchemy as sa

from parley.store.tables import metadata

kb_attributes = sa.Table(
    "kb_attributes",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("app_id", sa.BigInteger, nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("app_id", "key", name="uq_kb_attributes_app_key"),
    sa.UniqueConstraint("app_id", "name", name="uq_kb_attributes_app_name"),
)

kb_attribute_labels = sa.Table(
    "kb_attribute_labels",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("attr_id", sa.BigInteger, nullable=False),
    sa.Column("app_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("similar", sa.JSON, nullable=False),
    sa.UniqueConstraint("attr_id", "name", name="uq_kb_attribute_labels_attr_name"),
)
sa.Index("ix_kb_attribute_labels_app", kb_attribute_labels.c.app_id)
