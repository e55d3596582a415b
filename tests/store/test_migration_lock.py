"""Several processes starting at once on one empty PostgreSQL database migrate it once, not racing.

Instances (or `parley serve --workers N`'s workers, started while a new release's migrations are
pending) all run the migrations on start; a transaction-level advisory lock makes the second wait
for the first and then find nothing left to do.
"""

from __future__ import annotations

import asyncio

from alembic.config import Config
from alembic.script import ScriptDirectory

from parley.store.database import MIGRATIONS, Database
from tests.support.schema import migrated_schema, schema_of


async def test_concurrent_migrations_of_an_empty_database_run_once(postgres):
    url = postgres.new_database()
    databases = [Database(url) for _ in range(3)]
    try:
        # None of them fails (without the lock they got stuck on each other's tables for good).
        await asyncio.wait_for(asyncio.gather(*(database.migrate() for database in databases)), 120)
        async with databases[0].engine.connect() as conn:
            schema = await conn.run_sync(schema_of)
            versions = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalars().all()
        assert schema == await migrated_schema(postgres.new_database())
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        assert sorted(versions) == sorted(ScriptDirectory.from_config(config).get_heads())
    finally:
        for database in databases:
            await database.close()
