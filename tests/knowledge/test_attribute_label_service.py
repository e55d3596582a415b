"""Attribute labels in the knowledge service, against a real SQLite database: renames reach the
items that carry a label, failed changes change nothing, plain labels and attribute labels meet."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from parley.config import KnowledgeServerSettings
from parley.knowledge.attributes import LabelError, LabelInput, LabelNotFound, LabelRef
from parley.knowledge.service import KnowledgeService
from parley.knowledge.settings import KnowledgeSettings
from parley.models.embedders import build_embedder
from parley.store.database import Database

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = 2002
SETTINGS = KnowledgeSettings(variable_bindings={"department": "dept"})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kb(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KnowledgeService]:
    directory = tmp_path_factory.mktemp("labels")
    database = Database(f"sqlite+aiosqlite:///{directory / 'parley.db'}")
    await database.migrate()
    settings = KnowledgeServerSettings()
    service = KnowledgeService(database.engine, settings, directory, build_embedder(settings.embedder))
    yield service
    await service.aclose()
    await database.close()


async def labels_of(kb: KnowledgeService, qa_id: int) -> dict[str, list[str]]:
    pair = await kb.get_qa(APP, qa_id)
    assert pair is not None
    return dict(pair.labels)


async def test_plain_labels_and_attribute_labels_meet_and_renames_reach_items(kb):
    plain = await kb.add_qa(APP, "Who approves leave?", "Your manager.", labels={"dept": ["hr", "people"]})
    attribute = await kb.create_attribute(APP, "dept", [LabelInput("hr"), LabelInput("it")])
    assert attribute.key == "dept"  # the plain attribute of the same name is now this attribute label
    hr, it = attribute.labels
    resolved = await kb.resolve_label_refs(APP, [LabelRef(attribute.id, (it.id,))])
    tagged = await kb.add_qa(APP, "Who fixes laptops?", "The IT desk.", labels=resolved)
    assert await labels_of(kb, tagged.id) == {"dept": ["it"]}

    # swapping two names in one change, and renaming onto a plain value an item already has
    await kb.modify_attribute(APP, attribute.id, labels=[LabelInput("it", (), hr.id), LabelInput("hr", (), it.id)])
    assert await labels_of(kb, plain.id) == {"dept": ["it", "people"]}
    assert await labels_of(kb, tagged.id) == {"dept": ["hr"]}
    await kb.modify_attribute(APP, attribute.id, labels=[LabelInput("people", (), hr.id)])
    assert await labels_of(kb, plain.id) == {"dept": ["people"]}


async def test_a_refused_change_changes_nothing(kb):
    attribute = await kb.create_attribute(APP, "Region", [LabelInput("north"), LabelInput("south")])
    north, south = attribute.labels
    for change in (
        {"labels": [LabelInput("south", (), north.id)]},  # a duplicate name
        {"labels": [LabelInput("east", (), 12345)]},  # an unknown label id
        {"delete_label_ids": [north.id], "labels": [LabelInput("x", (), north.id)]},
        {"name": "Region", "labels": [LabelInput("bad|name")]},
    ):
        with pytest.raises(LabelError):
            await kb.modify_attribute(APP, attribute.id, **change)
        assert await kb.get_attribute(APP, attribute.id) == attribute
    with pytest.raises(LabelNotFound):
        await kb.delete_attributes(APP, [attribute.id, 999])
    assert await kb.get_attribute(APP, attribute.id) == attribute
    with pytest.raises(LabelError):
        await kb.create_attribute(APP, "Region", [])


async def test_deleting_an_attribute_keeps_the_items_plain_labels_and_their_scope(kb):
    attribute = await kb.create_attribute(APP, "tier", [LabelInput("gold", ("vip",))])
    pair = await kb.add_qa(APP, "What is the gold discount?", "Twenty percent.",
                           labels=await kb.resolve_label_refs(APP, [LabelRef(attribute.id, (attribute.labels[0].id,))]))
    scoped = KnowledgeSettings(variable_bindings={"level": "tier"})
    by_similar = await kb.resolve(APP, "What is the gold discount?", kb.scope({"level": "vip"}, None, scoped), scoped)
    assert by_similar.kind == "qa" and by_similar.qa is not None and by_similar.qa.qa_id == pair.id
    await kb.delete_attributes(APP, [attribute.id])
    assert await labels_of(kb, pair.id) == {"tier": ["gold"]}
    by_name = await kb.resolve(APP, "What is the gold discount?", kb.scope({"level": "gold"}, None, scoped), scoped)
    assert by_name.kind == "qa"
    with pytest.raises(LabelError):
        await kb.resolve_label_refs(APP, [LabelRef(attribute.id, (attribute.labels[0].id,))])
