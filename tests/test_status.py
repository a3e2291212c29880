"""Status probes against real servers: Postgres slot lag and WAL retention, MySQL/MariaDB
binlog lag and purge risk, route consumer lag and dead-letter counts from Kafka, rendering."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable
from types import SimpleNamespace

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console

from cdc_bridge import status
from cdc_bridge.kafka import TopicAdmin, TopicSettings
from cdc_bridge.sources.mysql.config import MySqlSourceConfig
from cdc_bridge.sources.mysql.status import binlog_lag
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.status import BridgeStatus, RouteStatus, StateStatus
from cdc_bridge.testing.services import KafkaService, MariaDBService, MySQLDatabase


def pg_source(name: str, dsn: str) -> PostgresSourceConfig:
    return PostgresSourceConfig(name=name, kind="postgres", dsn=dsn)


def test_postgres_slot_lag_retention_and_risk(pg_database: str) -> None:
    slot = "cdc_bridge_stat"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
    src = pg_source("stat", pg_database)

    st = status.probe_source(src, {"lsn": "0/1", "snapshot_done": True})
    assert st.state == status.INACTIVE, st
    assert "inactive" in st.detail
    assert st.lag_bytes is not None and st.lag_bytes > 400_000  # 2000 rows of 200 bytes
    assert st.retained_bytes is not None and st.retained_bytes >= st.lag_bytes
    assert st.snapshot == "done" and st.saved_position == "0/1"

    flagged = status.probe_source(src, None, warn_bytes=100_000)
    assert flagged.state == status.AT_RISK
    assert flagged.risk and f"slot {slot} holds" in flagged.risk
    assert flagged.snapshot == "not started"

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("SELECT pg_replication_slot_advance(%s, pg_current_wal_lsn())", (slot,))
    caught_up = status.probe_source(src, None)
    assert caught_up.lag_bytes == 0
    assert caught_up.position == caught_up.head


def test_postgres_without_slot_and_unreachable(pg_database: str) -> None:
    st = status.probe_source(pg_source("noslot", pg_database), None)
    assert st.state == status.INACTIVE and "no replication slot" in st.detail

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = status.probe_source(
        pg_source("down", f"postgresql://cdc:s3cret@127.0.0.1:{port}/x"), None
    )
    assert down.state == status.UNREACHABLE
    assert "OperationalError" in down.detail and "s3cret" not in down.detail


def test_binlog_lag_arithmetic() -> None:
    logs = [("b.000001", 1000), ("b.000002", 500), ("b.000003", 300)]
    assert binlog_lag(logs, "b.000003", 100, ("b.000003", 300)) == 200
    assert binlog_lag(logs, "b.000001", 400, ("b.000003", 300)) == 600 + 500 + 300
    assert binlog_lag(logs, "b.000000", 4, ("b.000003", 300)) is None


def test_mysql_binlog_lag_and_purge_risk(
    mariadb: MariaDBService, mariadb_database: MySQLDatabase
) -> None:
    src = MySqlSourceConfig(name="inv", kind="mysql", dsn=mariadb.dsn_for(mariadb_database.name))
    conn = mariadb.connect(mariadb_database.name)
    try:
        cur = conn.cursor()
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        here = status.probe_source(src, {"file": file, "pos": pos})
        assert here.lag_bytes == 0 and here.state in (status.OK, status.AT_RISK), here
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        cur.execute(
            "INSERT INTO t VALUES " + ",".join(f"({i}, REPEAT('x', 100))" for i in range(500))
        )
        behind = status.probe_source(src, {"file": file, "pos": pos, "snapshot": True})
        assert behind.lag_bytes is not None and behind.lag_bytes > 50_000
        assert behind.snapshot == "running"
        assert behind.head and behind.head.split(":")[0].startswith(file.rsplit(".", 1)[0])

        lost = status.probe_source(src, {"file": "nope-bin.000001", "pos": 4})
        assert lost.state == status.LOST and "purged" in (lost.risk or "")

        cur.execute("SHOW BINARY LOGS")
        oldest = cur.fetchone()[0]
        cur.execute("FLUSH BINARY LOGS")
        risky = status.probe_source(src, {"file": oldest, "pos": 4})
        assert risky.state == status.AT_RISK and "oldest binlog" in (risky.risk or "")
    finally:
        conn.close()


def test_route_lag_and_dead_letters_from_kafka(
    kafka: KafkaService, topic_name: Callable[..., str]
) -> None:
    topic = topic_name("orders")
    bridge = topic_name("br")
    dlq = f"{bridge}.dlq.orders-to-x"
    admin = TopicAdmin({"bootstrap.servers": kafka.bootstrap}, TopicSettings(partitions=2))
    admin.ensure([topic, dlq])
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    # One record per produce request: the test broker (tansu) moves a partition's high
    # watermark by one per *batch*, so multi-record batches would make the numbers broker-specific.
    for i in range(10):
        producer.produce(topic, b"v", partition=i % 2)
        assert producer.flush(30) == 0
    for _ in range(3):
        producer.produce(dlq, b"dead", partition=0)
        assert producer.flush(30) == 0

    group = f"{bridge}.orders-to-x"
    committer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    committer.close()

    route = SimpleNamespace(
        name="orders-to-x", from_=topic_name("nomatch") + "*", to="x", group_id=None
    )
    route.from_ = [topic[:-3] + "*"]  # a glob that matches the topic
    cfg = SimpleNamespace(
        bridge=SimpleNamespace(name=bridge, state="sqlite:////nonexistent/dir/state.db"),
        kafka=SimpleNamespace(bootstrap_servers=kafka.bootstrap, consumer={}),
        sources=[],
        routes=[route],
    )
    result = status.collect(cfg, timeout=10)
    (rs,) = result.routes
    assert rs.error is None, rs.error
    assert rs.group_id == group
    by_part = {p.partition: p for p in rs.partitions if p.topic == topic}
    assert by_part[0].committed == 4 and by_part[0].lag == 1  # 5 records, 4 committed
    assert by_part[1].committed is None and by_part[1].lag == 5
    assert rs.dlq_records == 3
    assert result.state.error and "state store" in result.state.error
    assert not result.healthy

    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["routes"][0]["lag"] == rs.lag >= 6
    out = io.StringIO()
    status.render(result, Console(file=out, width=160, force_terminal=False))
    text = out.getvalue()
    assert "orders-to-x" in text and group in text and "state store" in text


def test_render_shows_risk_and_lag() -> None:
    st = status.SourceStatus(
        "shop",
        "postgres",
        state=status.AT_RISK,
        position="0/16B3748",
        lag_bytes=3 * 1024**3,
        retained_bytes=12 * 1024**3,
        snapshot="done",
        risk="slot cdc_bridge_shop holds 12.0 GiB of WAL (> 10.0 GiB)",
    )
    result = BridgeStatus(
        "acme",
        [st],
        [RouteStatus("to-crm", "acme.to-crm", "crm", dlq_records=2, dlq_pending=1)],
        StateStatus("sqlite:///state.db", revision="0001", head_revision="0001"),
    )
    out = io.StringIO()
    status.render(result, Console(file=out, width=200, force_terminal=False))
    text = out.getvalue()
    for expected in ("at_risk", "3.0 GiB", "12.0 GiB", "holds 12.0 GiB", "2 (1 not replayed)"):
        assert expected in text, text
    assert not result.healthy
