"""Durable attribute labels (parley.knowledge.attributes): attributes, their labels, and
renaming a label on the items that carry it. The entities are defined here, with the
repository that reads and writes them; the knowledge domain re-exports them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.ids import new_id
from parley.store.knowledge_labels_tables import kb_attribute_labels, kb_attributes
from parley.store.knowledge_tables import kb_labels


@dataclass(frozen=True, slots=True)
class LabelEntity:
    id: int
    name: str
    similar: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttributeEntity:
    id: int
    app_id: int
    key: str
    name: str
    labels: tuple[LabelEntity, ...] = ()
    created_at: int = 0
    updated_at: int = 0

    def label(self, label_id: int) -> LabelEntity | None:
        return next((label for label in self.labels if label.id == label_id), None)


@dataclass(frozen=True, slots=True)
class LabelInput:
    """A label to create (`id` None) or to change (rename, new similar labels)."""

    name: str
    similar: tuple[str, ...] = ()
    id: int | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class AttributeRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _load(self, conn: Any, condition: Any) -> list[AttributeEntity]:
        rows = (await conn.execute(kb_attributes.select().where(condition).order_by(kb_attributes.c.id))).all()
        labels: dict[int, list[LabelEntity]] = {r.id: [] for r in rows}
        if rows:
            label_rows = await conn.execute(
                kb_attribute_labels.select()
                .where(kb_attribute_labels.c.attr_id.in_(list(labels)))
                .order_by(kb_attribute_labels.c.id)
            )
            for label in label_rows:
                labels[label.attr_id].append(LabelEntity(label.id, label.name, tuple(label.similar or ())))
        return [
            AttributeEntity(r.id, r.app_id, r.key, r.name, tuple(labels[r.id]), r.created_at, r.updated_at)
            for r in rows
        ]

    async def list(self, app_id: int) -> list[AttributeEntity]:
        async with self._engine.connect() as conn:
            return await self._load(conn, kb_attributes.c.app_id == app_id)

    async def get(self, app_id: int, attribute_id: int) -> AttributeEntity | None:
        async with self._engine.connect() as conn:
            found = await self._load(conn, (kb_attributes.c.app_id == app_id) & (kb_attributes.c.id == attribute_id))
        return found[0] if found else None

    async def create(
        self, app_id: int, attribute_id: int, key: str, name: str, labels: Sequence[LabelInput]
    ) -> AttributeEntity:
        now = _now_ms()
        async with self._engine.begin() as conn:
            await conn.execute(
                kb_attributes.insert().values(
                    id=attribute_id, app_id=app_id, key=key, name=name, created_at=now, updated_at=now
                )
            )
            if labels:
                await conn.execute(
                    kb_attribute_labels.insert(),
                    [
                        {"id": new_id(), "attr_id": attribute_id, "app_id": app_id, "name": label.name,
                         "similar": list(label.similar)}
                        for label in labels
                    ],
                )
            return (await self._load(conn, kb_attributes.c.id == attribute_id))[0]

    async def modify(
        self,
        attribute: AttributeEntity,
        name: str,
        delete_ids: Sequence[int],
        changes: Sequence[LabelInput],
    ) -> AttributeEntity:
        """Renames the attribute, deletes, changes and adds labels in one transaction.

        A renamed label is renamed on the documents and Q&A pairs that carry it, so chat
        scoping keeps matching them. Deleted labels stay on items as plain labels.
        """
        a, lab = kb_attributes.c, kb_attribute_labels.c
        async with self._engine.begin() as conn:
            await conn.execute(
                kb_attributes.update().where(a.id == attribute.id).values(name=name, updated_at=_now_ms())
            )
            if delete_ids:
                await conn.execute(
                    kb_attribute_labels.delete().where((lab.attr_id == attribute.id) & lab.id.in_(list(delete_ids)))
                )
            # Free the names renamed away from first, so that swapping two names does not collide.
            renamed = [c for c in changes if c.id is not None and (old := attribute.label(c.id)) and old.name != c.name]
            for change in renamed:
                await conn.execute(
                    kb_attribute_labels.update().where(lab.id == change.id).values(name=_placeholder(change))
                )
            for change in changes:
                if change.id is None:
                    await conn.execute(
                        kb_attribute_labels.insert().values(
                            id=new_id(), attr_id=attribute.id, app_id=attribute.app_id, name=change.name,
                            similar=list(change.similar),
                        )
                    )
                else:
                    await conn.execute(
                        kb_attribute_labels.update()
                        .where(lab.id == change.id)
                        .values(name=change.name, similar=list(change.similar))
                    )
            # On items too, through placeholders: renaming hr->it and it->hr must not merge them.
            for change in renamed:
                old = attribute.label(change.id)  # type: ignore[arg-type]
                assert old is not None
                await _rename_value(conn, attribute.app_id, attribute.key, old.name, _placeholder(change))
            for change in renamed:
                await _rename_value(conn, attribute.app_id, attribute.key, _placeholder(change), change.name)
            return (await self._load(conn, a.id == attribute.id))[0]

    async def delete(self, app_id: int, attribute_ids: Sequence[int]) -> None:
        """Deletes the attributes and their labels; items keep their labels as plain labels."""
        async with self._engine.begin() as conn:
            await conn.execute(
                kb_attribute_labels.delete().where(
                    (kb_attribute_labels.c.app_id == app_id) & kb_attribute_labels.c.attr_id.in_(list(attribute_ids))
                )
            )
            await conn.execute(
                kb_attributes.delete().where((kb_attributes.c.app_id == app_id) & kb_attributes.c.id.in_(list(attribute_ids)))
            )


def _placeholder(change: LabelInput) -> str:
    """A name no label can have ("|" is never in one), held while names are swapped."""
    return f"|renaming|{change.id}"


async def _rename_value(conn: Any, app_id: int, key: str, old: str, new: str) -> None:
    """Items labelled `key: old` become `key: new` (items that already carry `new` just lose `old`)."""
    label = kb_labels.c
    other = kb_labels.alias("other")
    of_old = (label.app_id == app_id) & (label.attribute == key) & (label.value == old)
    already = sa.exists().where(
        (other.c.item_id == label.item_id) & (other.c.attribute == key) & (other.c.value == new)
    )
    await conn.execute(kb_labels.delete().where(of_old & already))
    await conn.execute(kb_labels.update().where(of_old).values(value=new))
