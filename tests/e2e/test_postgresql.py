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


def test_a_second_instance_starting_leaves_the_first_ones_answers_in_progress_alone(
    parley_on_postgresql, postgres, scripted_model, tmp_path
):
    """On a shared database an answer in progress may belong to a live instance: start-up closes
    unfinished answers only where this process is the database's only writer (SQLite)."""
    import threading

    import httpx

    database = parley_on_postgresql.database_url.rsplit("/", 1)[1]
    app = parley_on_postgresql.create_app("pg-two-instances")
    # The model is silent for a while, so no checkpoint of the answer can hide a wrong close.
    scripted_model.script("a slow shared story", content=["once ", "upon ", "a time"], ttft=8)
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": "s-shared", "content": "a slow shared story"}
    answer = threading.Thread(target=lambda: httpx.post(f"{parley_on_postgresql.url}/v1/qbot/chat/sse", json=body, timeout=60))
    answer.start()
    in_progress = "SELECT count(*) FROM records WHERE status = 'streaming'"
    for _ in range(100):  # until the first instance has stored the answer in progress
        if postgres.psql(database, in_progress).strip() == "1":
            break
        answer.join(0.05)
    assert postgres.psql(database, in_progress).strip() == "1"
    second = start_parley(tmp_path, default_config(scripted_model),
                          ["--no-demo", "--database-url", parley_on_postgresql.database_url])
    try:
        assert postgres.psql(database, "SELECT count(*) FROM records WHERE status = 'interrupted'").strip() == "0"
    finally:
        second.close()
    answer.join(60)
    records = parley_on_postgresql.records("pg-two-instances", "s-shared")
    assert [(r["is_from_self"], r["status"]) for r in records] == [(True, "success"), (False, "success")], records


def test_a_pg_dump_restored_into_an_empty_database_serves_as_before(parley_on_postgresql, postgres, scripted_model, tmp_path):
    """docs/configuration.md's backup and restore, as written there: pg_dump --format=custom while
    Parley runs; an empty database with the extension; pg_restore --no-owner; Parley on it."""
    from tests.support.sse import post_chat

    app = parley_on_postgresql.create_app("pg-backup")
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v", "session_id": "s-backup", "content": "before the backup"}
    assert post_chat(parley_on_postgresql.url, body).status == 200
    dump = postgres.folder / f"backup-{tmp_path.name}.dump"
    postgres.client("pg_dump", "--format=custom", "--file", str(dump), parley_on_postgresql.database_url.rsplit("/", 1)[1])
    restored_url = postgres.new_database()
    postgres.client("pg_restore", "--no-owner", "--dbname", restored_url.rsplit("/", 1)[1], str(dump))

    restored = start_parley(tmp_path, default_config(scripted_model), ["--no-demo", "--database-url", restored_url])
    try:
        before = restored.records("pg-backup", "s-backup")
        assert [(r["is_from_self"], r["content"], r["status"]) for r in before] == [
            (True, "before the backup", "success"), (False, "Echo: before the backup", "success")]
        again = post_chat(restored.url, {**body, "content": "after the restore"})
        assert again.status == 200 and again.answer_replies[-1]["content"] == "Echo: after the restore"
        assert [r["content"] for r in restored.records("pg-backup", "s-backup")][2:] == [
            "after the restore", "Echo: after the restore"]
    finally:
        restored.close()
