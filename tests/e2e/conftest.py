from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fuzzing import Credentials, fuzz_config, prepare
from tests.support.postgres import Postgres
from tests.support.processes import ParleyServer, ScriptedModel, start_parley


@pytest.fixture(scope="session")
def fuzz_server_on_sqlite(scripted_model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """One Parley with every face on, shared by schemathesis and the fuzz tests, on SQLite."""
    server = start_parley(tmp_path_factory.mktemp("fuzz"), fuzz_config(scripted_model))
    yield server
    server.close()


@pytest.fixture(scope="session")
def fuzz_server_on_postgresql(
    scripted_model: ScriptedModel, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    """The same, on an empty PostgreSQL database."""
    server = start_parley(tmp_path_factory.mktemp("fuzz-pg"), fuzz_config(scripted_model),
                          ["--no-demo", "--database-url", postgres.new_database()])
    yield server
    server.close()


@pytest.fixture(scope="session")
def fuzz_credentials_on_sqlite(fuzz_server_on_sqlite: ParleyServer) -> Credentials:
    return prepare(fuzz_server_on_sqlite)


@pytest.fixture(scope="session")
def fuzz_credentials_on_postgresql(fuzz_server_on_postgresql: ParleyServer) -> Credentials:
    return prepare(fuzz_server_on_postgresql)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_database(request: pytest.FixtureRequest) -> str:
    """Every module of fuzz tests runs on both databases (examples split between them where the
    module says so: tests.support.fuzzing.examples_shared)."""
    return request.param


@pytest.fixture(scope="module")
def fuzz_server(fuzz_database: str, request: pytest.FixtureRequest) -> ParleyServer:
    return request.getfixturevalue(f"fuzz_server_on_{fuzz_database}")


@pytest.fixture(scope="module")
def fuzz_credentials(fuzz_database: str, request: pytest.FixtureRequest) -> Credentials:
    return request.getfixturevalue(f"fuzz_credentials_on_{fuzz_database}")
