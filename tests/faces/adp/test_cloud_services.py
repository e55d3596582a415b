"""The table of cloud services: each action under the service and version that own it."""

import pytest

from parley.faces.adp.cloud_params import CloudApiError
from parley.faces.adp.cloud_services import CloudServices, changes_state


async def lke_action(params, services):
    return {"From": "lke"}


async def adp_action(params, services):
    return {"From": "adp"}


@pytest.fixture
def table() -> CloudServices:
    table = CloudServices()
    table.register("lke", "2023-11-30", {"GetMsgRecord": lke_action, "DescribeApp": lke_action})
    table.register("adp", "2026-05-20", {"DescribeApp": adp_action})
    table.register("lkeap", "2024-05-22", {"ChatCompletions": adp_action})
    return table


def code(table: CloudServices, action: str, version: str, service: str | None) -> str:
    with pytest.raises(CloudApiError) as info:
        table.resolve(action, version, service)
    return info.value.code


def test_an_action_is_found_under_its_service_and_version(table):
    assert table.resolve("DescribeApp", "2023-11-30", "lke") is lke_action
    assert table.resolve("DescribeApp", "2026-05-20", "adp") is adp_action
    assert table.resolve("ChatCompletions", "2024-05-22", None) is adp_action  # signatures not checked


def test_a_scope_for_another_service_is_refused(table):
    assert code(table, "GetMsgRecord", "2023-11-30", "adp") == "AuthFailure.InvalidAuthorization"
    assert code(table, "DescribeApp", "2026-05-20", "lke") == "AuthFailure.InvalidAuthorization"
    assert code(table, "ChatCompletions", "2024-05-22", "cvm") == "AuthFailure.InvalidAuthorization"


def test_unknown_versions_and_actions(table):
    assert code(table, "GetMsgRecord", "2020-01-01", "lke") == "NoSuchVersion"
    assert code(table, "NoSuchThing", "2023-11-30", "lke") == "InvalidAction"
    assert code(table, "ChatCompletions", "2023-11-30", "lke") == "InvalidAction"


def test_an_action_is_registered_once_per_service_and_version(table):
    with pytest.raises(ValueError):
        table.register("lke", "2023-11-30", {"GetMsgRecord": adp_action})


def test_reads_are_told_from_calls_that_change_something():
    assert not any(map(changes_state, ["DescribeApp", "GetMsgRecord", "ListQA", "DescribeReleaseInfo"]))
    assert all(map(changes_state, ["CreateRelease", "ModifyApp", "DeleteDoc", "RateMsgRecord", "SaveDoc", "ChatCompletions"]))
