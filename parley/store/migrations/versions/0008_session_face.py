"""Each session belongs to a face: sessions are named by (app_id, face, session_id).

Before, a session was named by (app_id, session_id) alone, so an ADP client choosing a
CloudBase conversation id (or an IM robot conversation's id) as its `session_id`, and the
matching visitor id, wrote into that conversation and had the model read its history.

Existing sessions are given the face that made them: a CloudBase conversation's session
(same application, id and owner) is `cloudbase`, an IM robot session (`im-` id, `im:`
visitor) is `im`, every other one `adp`.

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"  # reads cloudbase_conversations
branch_labels = None
depends_on = None

FACE_OF_EXISTING = """
    CASE
        WHEN EXISTS (
            SELECT 1 FROM cloudbase_conversations c
            WHERE c.conversation_id = s.session_id AND c.app_id = s.app_id AND c.owner = s.visitor_biz_id
        ) THEN 'cloudbase'
        WHEN s.session_id LIKE 'im-%' AND s.visitor_biz_id LIKE 'im:%' THEN 'im'
        ELSE 'adp'
    END
"""


def _sessions_table(*, with_face: bool) -> None:
    columns = [
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("app_id", sa.BigInteger, sa.ForeignKey("apps.id"), nullable=False),
    ]
    if with_face:
        columns.append(sa.Column("face", sa.String(16), nullable=False))
    columns += [
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("visitor_biz_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    ]
    if with_face:
        unique = sa.UniqueConstraint("app_id", "face", "session_id", name="uq_sessions_app_face_session")
    else:
        unique = sa.UniqueConstraint("app_id", "session_id", name="uq_sessions_app_session")
    op.create_table("sessions", *columns, unique)


def _rebuild_on_sqlite(*, with_face: bool, face: str) -> None:
    """SQLite cannot drop a table's unique constraint: the table is made again.

    `records` refers to `sessions`; with foreign keys deferred to the end of the
    transaction, dropping the table leaves its records' references pending, and inserting
    the same ids into the new table settles them (the commit fails if any is left
    unsettled). Python's sqlite3 opens no transaction before DDL, so the savepoint opens
    one (or nests in the one already open) for the pragma to hold in.
    """
    op.execute("SAVEPOINT session_face")
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE _sessions_0008 AS SELECT * FROM sessions")
    op.drop_table("sessions")
    _sessions_table(with_face=with_face)
    face_column = "face, " if with_face else ""
    face_value = f"{face}, " if with_face else ""
    op.execute(
        f"INSERT INTO sessions (id, app_id, {face_column}session_id, visitor_biz_id, created_at) "
        f"SELECT s.id, s.app_id, {face_value}s.session_id, s.visitor_biz_id, s.created_at FROM _sessions_0008 s"
    )
    op.execute("DROP TABLE _sessions_0008")
    op.execute("RELEASE session_face")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(with_face=True, face=FACE_OF_EXISTING)
        return
    op.add_column("sessions", sa.Column("face", sa.String(16), nullable=True))
    op.execute(f"UPDATE sessions AS s SET face = {FACE_OF_EXISTING}")
    op.alter_column("sessions", "face", nullable=False)
    op.drop_constraint("uq_sessions_app_session", "sessions", type_="unique")
    op.create_unique_constraint("uq_sessions_app_face_session", "sessions", ["app_id", "face", "session_id"])


def downgrade() -> None:
    """Fails if two faces have a session of the same name in one application."""
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(with_face=False, face="")
        return
    op.drop_constraint("uq_sessions_app_face_session", "sessions", type_="unique")
    op.create_unique_constraint("uq_sessions_app_session", "sessions", ["app_id", "session_id"])
    op.drop_column("sessions", "face")
