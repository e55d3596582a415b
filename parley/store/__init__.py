"""Durable state: the schema, its migrations and one repository per kind of thing.

SQLite (through aiosqlite) is the default; any SQLAlchemy async URL works, PostgreSQL
(asyncpg) being the one to scale out with.
"""

from parley.store.database import Database

__all__ = ["Database"]
