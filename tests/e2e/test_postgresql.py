"""`parley serve --database-url postgresql+asyncpg://...`: an empty database is migrated on start,
an existing one is opened as it is, and what Parley stores goes there (not to SQLite)."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from parley.store.database import MIGRATIONS
from tests.support.processes import default_config, start_parley


def _heads() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())


def test_an_empty_database_is_migrated_and_holds_what_parley_stores(parley_on_postgresql, postgres, scripted_model, tmp_path):
    database = parley_on_postgresql.database_url.rsplit("/", 1)[1]
    assert set(postgres.psql(database, "SELECT version_num FROM alembic_version").split()) == _heads()
    assert not (parley_on_postgresql.data_dir / "parley.db").exists()

    parley_on_postgresql.create_app("on-postgresql")
    assert postgres.psql(database, "SELECT count(*) FROM apps WHERE name = 'on-postgresql'").strip() == "1"

    # A second process started on the same, already migrated, database finds the application.
    second = start_parley(tmp_path, default_config(scripted_model),
                          ["--no-demo", "--database-url", parley_on_postgresql.database_url])
    try:
        response = second.admin("GET", "/admin/apps/on-postgresql")
        assert response.status_code == 200, response.text
    finally:
        second.close()
    assert set(postgres.psql(database, "SELECT version_num FROM alembic_version").split()) == _heads()
