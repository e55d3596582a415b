from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fuzzing import Credentials, fuzz_config, prepare
from tests.support.processes import ParleyServer, ScriptedModel, start_parley


@pytest.fixture(scope="session")
def fuzz_server(scripted_model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """One Parley with every face on, shared by schemathesis and the fuzz tests."""
    server = start_parley(tmp_path_factory.mktemp("fuzz"), fuzz_config(scripted_model))
    yield server
    server.close()


@pytest.fixture(scope="session")
def fuzz_credentials(fuzz_server: ParleyServer) -> Credentials:
    return prepare(fuzz_server)
