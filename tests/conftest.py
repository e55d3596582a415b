from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import Postgres
from tests.support.redis import RedisServer
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley


@pytest.fixture(scope="session")
def scripted_model() -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    yield model
    model.close()


@pytest.fixture(scope="session")
def parley_on_sqlite(scripted_model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """One Parley process for the session, configured against the scripted model, on SQLite."""
    server = start_parley(tmp_path_factory.mktemp("parley"), default_config(scripted_model))
    yield server
    server.close()


@pytest.fixture(scope="session")
def parley(parley_on_sqlite: ParleyServer) -> ParleyServer:
    """The session's Parley (a module runs on both databases by overriding this with `parley_on_*`)."""
    return parley_on_sqlite


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The run's own PostgreSQL server (with pgvector), started on first use."""
    server = Postgres()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The run's own Redis server, started on first use."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def bus_url(redis_server: RedisServer) -> str:
    """An empty Redis database of the run's own server, for one test."""
    return redis_server.new_url()


@pytest.fixture(scope="session")
def parley_on_postgresql(scripted_model: ScriptedModel, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """The same Parley as `parley`, on an empty PostgreSQL database (which it migrates on start)."""
    server = start_parley(tmp_path_factory.mktemp("parley-pg"), default_config(scripted_model),
                          ["--no-demo", "--database-url", postgres.new_database()])
    yield server
    server.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def parley_on_each_database(request: pytest.FixtureRequest) -> ParleyServer:
    """The session's Parley on SQLite, then the one on PostgreSQL: a module whose tests use the
    shared server runs on both by defining `parley` from this."""
    return request.getfixturevalue(f"parley_on_{request.param}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_args(request: pytest.FixtureRequest) -> list[str]:
    """`parley serve` arguments for a module's own server, once per database: SQLite in the data
    directory, then an empty PostgreSQL database."""
    if request.param == "sqlite":
        return ["--no-demo"]
    return ["--no-demo", "--database-url", request.getfixturevalue("postgres").new_database()]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each engine Parley supports: SQLite in a file, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def model(scripted_model: ScriptedModel) -> ScriptedModel:
    """The scripted model with no rules and fresh statistics."""
    scripted_model.reset()
    return scripted_model


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
