"""The cloud API's attribute-label calls: CreateAttributeLabel, ListAttributeLabel,
DescribeAttributeLabel, ModifyAttributeLabel, DeleteAttributeLabel, mapped onto the
knowledge service (the admin API's /kb/attribute-labels use the same methods).

An attribute (AttrBizId, AttrKey, AttrName) has labels (LabelBizId, LabelName,
SimilarLabels). Documents and Q&A pairs name them in AttrLabels by id; chat requests scope
by label name through the application's custom_variables bindings to the AttrKey.
"""

from __future__ import annotations

from typing import Any

from parley.faces.adp.cloud_knowledge import knowledge_for, page_of
from parley.faces.adp.cloud_params import CloudApiError, Params, biz_id, invalid_value
from parley.knowledge.attributes import AttributeEntity, LabelEntity, LabelError, LabelInput, LabelNotFound
from parley.services import Services

RELEASED = (3, "已发布")
"""ListAttributeLabel's Status: Parley's labels take effect at once, as if released."""
LIMIT_MAX = 1000


def _label_json(label: LabelEntity) -> dict[str, Any]:
    return {"LabelBizId": str(label.id), "LabelName": label.name, "SimilarLabels": list(label.similar)}


def _label_inputs(params: Params, *, with_ids: bool) -> list[LabelInput]:
    labels = []
    for item in params.objects("Labels"):
        label_id = None
        if with_ids and item.string("LabelBizId"):
            label_id = biz_id(item.string("LabelBizId"), "Labels.LabelBizId")
        name = item.string("LabelName", required=True, max_len=128)
        labels.append(LabelInput(name, tuple(item.strings("SimilarLabels", max_items=100)), label_id))
    return labels


def _refused(exc: LabelError) -> CloudApiError:
    if isinstance(exc, LabelNotFound):
        return CloudApiError("ResourceNotFound", f"{exc}.")
    return CloudApiError("InvalidParameterValue", f"{exc}.")


def _attribute_id(params: Params, name: str = "AttributeBizId") -> int:
    value = params.biz_id(name)
    assert value is not None
    return value


async def create_attribute_label(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    name = params.string("AttrName", required=True, max_len=128)
    key = params.string("AttrKey", max_len=64)
    labels = _label_inputs(params, with_ids=False)
    try:
        attribute = await knowledge.create_attribute(app_id, name, labels, key)
    except LabelError as exc:
        raise _refused(exc) from None
    return {"AttrBizId": str(attribute.id), "Labels": [_label_json(label) for label in attribute.labels]}


def _matches(attribute: AttributeEntity, query: str) -> bool:
    return not query or query in attribute.name or any(query in label.name for label in attribute.labels)


async def list_attribute_label(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    query = params.string("Query", max_len=128)
    label_size = params.integer("LabelSize", minimum=1, maximum=LIMIT_MAX)
    attributes = [a for a in await knowledge.list_attributes(app_id) if _matches(a, query)]
    total, page = page_of(params, attributes)
    return {
        "Total": str(total),
        "List": [
            {
                "AttrBizId": str(a.id), "AttrKey": a.key, "AttrName": a.name,
                "LabelNames": [label.name for label in a.labels][:label_size],
                "IsUpdating": False, "Status": RELEASED[0], "StatusDesc": RELEASED[1],
                "LabelTotalCount": str(len(a.labels)),
            }
            for a in page
        ],
    }


async def describe_attribute_label(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    attribute_id = _attribute_id(params)
    limit = params.integer("Limit", default=LIMIT_MAX, minimum=1, maximum=LIMIT_MAX) or LIMIT_MAX
    query = params.string("Query", max_len=128)
    after = params.biz_id("LastLabelBizId", required=False)
    scope = params.string("QueryScope", max_len=16) or "all"
    if scope not in ("all", "standard", "similar"):
        raise invalid_value("QueryScope", "must be all, standard or similar")
    try:
        attribute = await knowledge.get_attribute(app_id, attribute_id)
    except LabelError as exc:
        raise _refused(exc) from None

    def wanted(label: LabelEntity) -> bool:
        if not query:
            return True
        standard = query in label.name
        similar = any(query in s for s in label.similar)
        return {"all": standard or similar, "standard": standard, "similar": similar}[scope]

    labels = [label for label in attribute.labels if wanted(label)]
    if after is not None:
        position = next((i for i, label in enumerate(labels) if label.id == after), None)
        labels = labels[position + 1 :] if position is not None else [label for label in labels if label.id > after]
    return {
        "AttributeBizId": str(attribute.id), "AttrKey": attribute.key, "AttrName": attribute.name,
        "LabelNumber": str(len(attribute.labels)), "Labels": [_label_json(label) for label in labels[:limit]],
    }


async def modify_attribute_label(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    attribute_id = _attribute_id(params)
    name = params.string("AttrName", max_len=128) if params.has("AttrName") else None
    params.string("AttrKey", max_len=64)  # deprecated: an attribute's key never changes
    deleted = [biz_id(v, "DeleteLabelBizIds") for v in params.strings("DeleteLabelBizIds")]
    labels = _label_inputs(params, with_ids=True)
    try:
        attribute = await knowledge.modify_attribute(
            app_id, attribute_id, name=name, delete_label_ids=deleted, labels=labels
        )
    except LabelError as exc:
        raise _refused(exc) from None
    return {"TaskId": "", "Labels": [_label_json(label) for label in attribute.labels]}


async def delete_attribute_label(params: Params, services: Services) -> dict[str, Any]:
    app_id, knowledge = await knowledge_for(params, services)
    values = params.strings("AttributeBizIds", max_items=100)
    if not values:
        raise CloudApiError("MissingParameter", "The request is missing a required parameter `AttributeBizIds`.")
    try:
        await knowledge.delete_attributes(app_id, [biz_id(v, "AttributeBizIds") for v in values])
    except LabelError as exc:
        raise _refused(exc) from None
    return {}


ACTIONS = {
    "CreateAttributeLabel": create_attribute_label,
    "ListAttributeLabel": list_attribute_label,
    "DescribeAttributeLabel": describe_attribute_label,
    "ModifyAttributeLabel": modify_attribute_label,
    "DeleteAttributeLabel": delete_attribute_label,
}
