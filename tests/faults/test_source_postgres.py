"""Fault tests of the Postgres source under the real ``cdc-bridge start`` process: the source
database restarting (fast and immediate shutdowns, one after the other) while a writer
commits; every committed row must reach Kafka with its committed values."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cdc_bridge.testing.services import KafkaService, PostgresService
from tests.faults.support import (
    BridgeProcess,
    Writer,
    assert_rows,
    bridge_config,
    converged,
    read_topic,
    table_rows,
)


@pytest.fixture
def pg_db(faults_postgres: PostgresService) -> Any:
    """A fresh database on the breakable Postgres (dropped with its slots after)."""
    name = f"pgf_{time.monotonic_ns() % 10**12}"
    dsn = faults_postgres.create_database(name)
    yield dsn
    faults_postgres.drop_database(name)


def _pg_source(dsn: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "postgres",
        "dsn": dsn,
        "tables": ["public.items"],
        "status_interval_ms": 100,
        "heartbeat_interval_ms": 500,
        **extra,
    }


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=2)


def test_fast_and_immediate_restarts_lose_nothing(
    pg_db: str,
    faults_postgres: PostgresService,
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        c.execute("INSERT INTO items SELECT g, 'pre' || g FROM generate_series(1, 200) g")
    name = f"pgr{time.monotonic_ns() % 10**9}"
    conf = bridge_config(tmp_path, kafka.bootstrap, sources=[_pg_source(pg_db, name)])
    bridge = bridge_process(conf)
    bridge.wait_ready(60)
    with Writer(lambda: connect(pg_db), (psycopg.Error,)) as writer:
        for mode in ("fast", "immediate"):
            writer.wait_more(200, 30, f"before the {mode} restart")
            faults_postgres.restart(mode=mode)
            writer.wait_more(200, 30, f"after the {mode} restart")
    expected = table_rows(connect(pg_db))
    topic = f"{name}.public.items"
    records = read_topic(kafka.bootstrap, topic, until=converged(expected), timeout=60)
    assert bridge.running(), bridge.log_tail()
    assert_rows(records, expected, bridge.log_tail())
    # Defect 8: the reconnect backoff starts afresh for each outage (it used to keep growing
    # across outages, up to 30 s): each of the two outages begins with attempt 1.
    assert bridge.log().count("(attempt 1)") == 2, bridge.log_tail()
    assert bridge.stop() == 0, bridge.log_tail()
