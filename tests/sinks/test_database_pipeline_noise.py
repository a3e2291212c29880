"""A failing executemany on PostgreSQL raises its error once: psycopg's "error ignored
terminating <Pipeline>: pipeline aborted" warning is not printed for every failing batch."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

import cdc_bridge.sinks.database  # noqa: F401  (installs the filter, as the sink does)


def test_failing_batch_raises_without_pipeline_warning(
    pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, v int CHECK (v > 0))"))
        rows = [{"id": 1, "v": 1}, {"id": 2, "v": -1}, {"id": 3, "v": 3}]
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                with (
                    pytest.raises(sa.exc.IntegrityError, match="check constraint"),
                    engine.begin() as conn,
                ):
                    conn.execute(sa.text("INSERT INTO t VALUES (:id, :v)"), rows)
        assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
        # Other psycopg warnings still pass the filter.
        logging.getLogger("psycopg").warning("query cancellation failed: %s", "boom")
        assert "query cancellation failed: boom" in caplog.text
    finally:
        engine.dispose()
