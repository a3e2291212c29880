"""Fault tests of a source when Kafka fails, under the real ``cdc-bridge start`` process:

- the broker frozen for 30 s while the database keeps writing: the slot's confirmed position
  never passes what Kafka confirmed, the records in flight stay bounded, the source is
  reported stalled (/readyz 503, ``cdc-bridge status``) and recovers by itself;
- total Kafka loss (the broker comes back empty): the stall names the lost topic and the
  commands that restore it, and following them brings every row back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from cdc_bridge.sources.postgres.lsn import LSN
from cdc_bridge.testing.services import KafkaService
from tests.faults.support import (
    BridgeProcess,
    Writer,
    assert_rows,
    bridge_config,
    cli,
    converged,
    http_get,
    read_topic,
    table_rows,
    wait_for,
)

MAX_IN_FLIGHT = 1000
MAX_BATCH = 200


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=2)


def _setup(dsn: str, rows: int = 100) -> None:
    with connect(dsn) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        c.execute(f"INSERT INTO items SELECT g, 'pre' || g FROM generate_series(1, {rows}) g")


def _source(dsn: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "postgres",
        "dsn": dsn,
        "tables": ["public.items"],
        "status_interval_ms": 100,
        "heartbeat_interval_ms": 0,  # the slot moves only with captured, confirmed changes
        "max_in_flight_events": MAX_IN_FLIGHT,
        "max_batch_events": MAX_BATCH,
    }


def slot_lsn(dsn: str, slot: str) -> LSN:
    with connect(dsn) as c:
        row = c.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
    assert row is not None and row[0] is not None
    return LSN.parse(row[0])


def in_flight(bridge: BridgeProcess, source: str) -> float:
    code, text = http_get(bridge.metrics + "/metrics")
    assert code == 200, text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "cdc_bridge_source_events_in_flight" and s.labels["source"] == source:
                return float(s.value)
    raise AssertionError("no cdc_bridge_source_events_in_flight sample")


def stalled(name: str) -> Callable[[int, dict[str, Any]], bool]:
    return lambda code, body: code == 503 and body["sources"][name]["state"] == "stalled"


def test_broker_frozen_30s_holds_the_slot_and_recovers(
    pg_database: str,
    faults_kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    _setup(pg_database)
    name = f"frz{time.monotonic_ns() % 10**9}"
    conf = bridge_config(
        tmp_path,
        faults_kafka.bootstrap,
        sources=[_source(pg_database, name)],
        kafka={"stall_timeout_s": 5},
    )
    bridge = bridge_process(conf)
    bridge.wait_ready(60)
    slot = f"cdc_bridge_{name}"
    with Writer(lambda: connect(pg_database), (psycopg.Error,)) as writer:
        writer.wait_more(100, 30, "before the freeze")
        faults_kafka.pause()
        frozen_at = time.monotonic()
        try:
            # Confirmations already on their way arrive within a moment; after that Kafka
            # confirms nothing, so the slot must not move while the database keeps writing.
            time.sleep(3)
            held = slot_lsn(pg_database, slot)
            body = bridge.wait_readyz(stalled(name), 20, "the source stalled")
            detail = body["sources"][name]["detail"]
            assert "stall_timeout_s" in detail and faults_kafka.bootstrap in detail, detail
            code, status = bridge.status()
            assert code == 1 and status["running"]["ready"] is False, status
            assert status["sources"][0]["bridge_state"] == "stalled", status
            peak = 0.0
            while time.monotonic() - frozen_at < 30:
                assert slot_lsn(pg_database, slot) == held, "the slot passed what Kafka confirmed"
                peak = max(peak, in_flight(bridge, name))
                time.sleep(1)
            assert writer.committed > 1000, "the database was not written during the freeze"
            assert 0 < peak <= MAX_IN_FLIGHT + MAX_BATCH, f"in flight: {peak}"
        finally:
            faults_kafka.resume()
        bridge.wait_ready(30)
        writer.wait_more(100, 30, "after the freeze")
    assert "ERROR" in bridge.log() and "confirms the records of source" in bridge.log()
    expected = table_rows(connect(pg_database))
    records = read_topic(faults_kafka.bootstrap, f"{name}.public.items", until=converged(expected))
    assert_rows(records, expected, bridge.log_tail())
    assert slot_lsn(pg_database, slot) > held
    assert bridge.stop() == 0, bridge.log_tail()


def test_total_kafka_loss_is_reported_and_the_runbook_restores_every_row(
    pg_database: str,
    faults_kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    _setup(pg_database)
    name = f"kls{time.monotonic_ns() % 10**9}"
    topic = f"{name}.public.items"
    conf = bridge_config(
        tmp_path,
        faults_kafka.bootstrap,
        sources=[_source(pg_database, name)],
        kafka={"stall_timeout_s": 3},
    )
    bridge = bridge_process(conf)
    bridge.wait_ready(60)
    before = table_rows(connect(pg_database))
    read_topic(faults_kafka.bootstrap, topic, until=converged(before))
    faults_kafka.restart()  # the broker comes back empty: every topic and record is gone
    with connect(pg_database) as c:
        c.execute("INSERT INTO items SELECT g, 'post' || g FROM generate_series(101, 150) g")
    body = bridge.wait_readyz(stalled(name), 30, "the source stalled on the lost topic")
    detail = body["sources"][name]["detail"]
    assert topic in detail and "no longer exist" in detail, detail
    assert f"cdc-bridge resnapshot --source {name}" in detail, detail
    code, status = bridge.status()
    assert code == 1 and topic in status["sources"][0]["bridge_detail"], status
    # The runbook: stop (here the worst way: a crash), resnapshot (Postgres: a new slot),
    # start again.
    bridge.kill()
    done = cli("resnapshot", "--source", name, "--config", str(bridge.config_path), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    bridge.start()
    bridge.wait_ready(60)
    with connect(pg_database) as c:
        c.execute("INSERT INTO items SELECT g, 'new' || g FROM generate_series(151, 200) g")
        c.execute("UPDATE items SET v = 'changed' WHERE id IN (1, 120)")
    expected = table_rows(connect(pg_database))
    assert len(expected) == 200
    records = read_topic(faults_kafka.bootstrap, topic, until=converged(expected))
    assert_rows(records, expected, bridge.log_tail())
    wait_for(lambda: bridge.readyz()[0] == 200, 10, "ready after the new snapshot")
    assert bridge.stop() == 0, bridge.log_tail()
