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
            writer.wait_more(100, 30, f"before the {mode} restart")
            faults_postgres.restart(mode=mode)
            writer.wait_more(100, 30, f"after the {mode} restart")
    expected = table_rows(connect(pg_db))
    topic = f"{name}.public.items"
    records = read_topic(kafka.bootstrap, topic, until=converged(expected), timeout=60)
    assert bridge.running(), bridge.log_tail()
    assert_rows(records, expected, bridge.log_tail())
    # Defect 8: the reconnect backoff starts afresh for each outage (it used to keep growing
    # across outages, up to 30 s): each of the two outages begins with attempt 1.
    assert bridge.log().count("(attempt 1)") == 2, bridge.log_tail()
    assert bridge.stop() == 0, bridge.log_tail()


def _invalidate_slot(admin_dsn: str, dsn: str, slot: str) -> None:
    """Make the server drop the WAL the (inactive) slot needs: wal_status becomes 'lost'."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            with connect(dsn) as c:
                for round_ in range(20):
                    c.execute(
                        "INSERT INTO items SELECT g, 'gap' || g FROM generate_series(%s::int, %s::int) g",
                        (10_000 + round_ * 100, 10_000 + round_ * 100 + 99),
                    )
                    c.execute("SELECT pg_switch_wal()")
                    c.execute("CHECKPOINT")
                    row = c.execute(
                        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,),
                    ).fetchone()
                    if row is not None and row[0] == "lost":
                        return
            raise AssertionError(f"slot {slot} was not invalidated (wal_status {row})")
        finally:
            admin.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            admin.execute("SELECT pg_reload_conf()")


def test_invalidated_slot_refuses_with_the_command_then_when_needed_resnapshots(
    pg_db: str,
    faults_postgres: PostgresService,
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """Defect 8: a slot whose WAL was removed (wal_status = lost) cannot stream. Under
    snapshot = "initial" the bridge stops with the recovery command; under "when_needed" it
    takes a new snapshot by itself, as documented."""
    with connect(pg_db) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        c.execute("INSERT INTO items SELECT g, 'pre' || g FROM generate_series(1, 100) g")
    name = f"pgl{time.monotonic_ns() % 10**9}"
    slot = f"cdc_bridge_{name}"
    topic = f"{name}.public.items"
    conf = bridge_config(tmp_path, kafka.bootstrap, sources=[_pg_source(pg_db, name)])
    with connect(pg_db) as c:  # the slot a stopped bridge left behind
        c.execute(f"CREATE PUBLICATION cdc_bridge_{name} FOR TABLE items")
        c.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    _invalidate_slot(faults_postgres.dsn, pg_db, slot)

    refused = bridge_process(conf, name="refused")
    assert refused.wait_exit(60) == 1, refused.log_tail()
    log = refused.log()
    assert f"replication slot {slot!r} was invalidated" in log, log
    assert f"cdc-bridge postgres drop-slot --source {name}" in log, log
    assert 'snapshot = "when_needed"' in log, log

    conf["sources"][0]["snapshot"] = "when_needed"
    healed = bridge_process(conf, name="when_needed")
    healed.wait_ready(60)
    with connect(pg_db) as c:
        c.execute("UPDATE items SET v = 'after' WHERE id IN (1, 10001)")
        c.execute("DELETE FROM items WHERE id = 2")
    expected = table_rows(connect(pg_db))
    records = read_topic(kafka.bootstrap, topic, until=converged(expected))
    assert_rows(records, expected, healed.log_tail())
    assert "taking a new snapshot" in healed.log(), healed.log_tail()
    assert healed.stop() == 0, healed.log_tail()


def _high_watermark(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-watermark"})
    try:
        md = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if md is None or md.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in md.partitions
        )
    finally:
        consumer.close()


def test_bridge_sigkill_inside_a_200k_row_transaction_loses_nothing(
    pg_database: str,
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """The slot advances only at a commit: a bridge killed while a 200,000-row transaction is
    half on Kafka replays the whole transaction after the restart (duplicates, no gaps)."""
    rows = 200_000
    with connect(pg_database) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    name = f"big{time.monotonic_ns() % 10**9}"
    topic = f"{name}.public.items"
    conf = bridge_config(tmp_path, kafka.bootstrap, sources=[_pg_source(pg_database, name)])
    bridge = bridge_process(conf)
    bridge.wait_ready(60)
    with connect(pg_database) as c:
        c.execute(f"INSERT INTO items SELECT g, 'big' || g FROM generate_series(1, {rows}) g")
    seen = 0
    deadline = time.monotonic() + 60
    while seen < rows // 10 and time.monotonic() < deadline:
        seen = _high_watermark(kafka.bootstrap, topic)
        time.sleep(0.02)
    assert rows // 10 <= seen < rows, f"{seen} records on Kafka: not inside the transaction"
    bridge.kill()
    bridge.start()
    bridge.wait_ready(60)
    with connect(pg_database) as c:
        c.execute("UPDATE items SET v = 'after' WHERE id IN (1, 199999)")
        c.execute("INSERT INTO items VALUES (200001, 'after')")
    expected = table_rows(connect(pg_database))
    records = read_topic(kafka.bootstrap, topic, until=converged(expected), timeout=90)
    assert_rows(records, expected, bridge.log_tail())
    assert len(records) > rows, "the killed transaction was not replayed"
    assert bridge.stop() == 0, bridge.log_tail()
