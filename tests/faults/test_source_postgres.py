"""Fault tests of the Postgres source under the real ``cdc-bridge start`` process: the source
database restarting (fast and immediate shutdowns, one after the other) while a writer
commits; every committed row must reach Kafka with its committed values."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cdc_bridge.testing.services import KafkaService, PostgresService
from tests.faults.support import (
    BridgeProcess,
    assert_rows,
    bridge_config,
    converged,
    read_topic,
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


class Writer:
    """Commits one row per transaction until stopped, riding out server restarts; the source
    table is the truth the topic is compared with at the end."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.stop = threading.Event()
        self.committed = 0
        self.failures = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_id = 1000
        conn: psycopg.Connection | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                conn.execute(
                    "INSERT INTO items VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                    (next_id, f"v{next_id}"),
                )
                self.committed += 1
                next_id += 1
                if next_id % 7 == 0:
                    conn.execute("UPDATE items SET v = v || '+' WHERE id = %s", (next_id - 3,))
                time.sleep(0.003)
            except psycopg.Error:
                self.failures += 1
                next_id += 1  # the outcome of an interrupted commit is unknown: use a new id
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def table_rows(dsn: str) -> dict[Any, dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        return {r[0]: {"id": r[0], "v": r[1]} for r in conn.execute("SELECT id, v FROM items")}


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
    with Writer(pg_db) as writer:
        for mode in ("fast", "immediate"):
            before = writer.committed
            time.sleep(1.0)
            faults_postgres.restart(mode=mode)
            # The writer must get rows in after the restart, and the bridge must capture them.
            deadline = time.monotonic() + 30
            while writer.committed < before + 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert writer.committed >= before + 200, f"writer stalled after the {mode} restart"
    expected = table_rows(pg_db)
    topic = f"{name}.public.items"
    records = read_topic(kafka.bootstrap, topic, until=converged(expected), timeout=60)
    assert bridge.running(), bridge.log_tail()
    assert_rows(records, expected, bridge.log_tail())
    assert bridge.stop() == 0, bridge.log_tail()
