"""The retrieval benchmark's bulk loader writes what the pipeline writes, as search reads it.

bench/retrieval/bulk.py fills PostgreSQL by COPY so the 1M-segment figures need not wait hours
for learning; they only stand for Parley's if the rows are the pipeline's. Two documents are
loaded both ways (bench/retrieval/check_bulk.py does the same at 5,000 segments).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.retrieval.check_bulk import MUST_BE_EQUAL, load
from tests.support.postgres import Postgres


def test_bulk_loaded_rows_are_the_pipelines(postgres: Postgres, tmp_path: Path) -> None:
    pipeline = asyncio.run(load(postgres.new_database(), 200, tmp_path / "pipeline", bulk=False, asked=5))
    bulk = asyncio.run(load(postgres.new_database(), 200, tmp_path / "bulk", bulk=True, asked=5))
    assert len(bulk["segments"]) == 200 and len(bulk["search rows"]) == 200
    assert all(bulk["keyword results"]) and all(bulk["exact nearest"])
    for key in MUST_BE_EQUAL:
        assert pipeline[key] == bulk[key], key
