"""The operations surface end to end, under the real runtime: a bridge runs a workload and the
test reads its metrics endpoint -- counters match the events produced; /readyz flips when a
source loses its database and comes back with it."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cdc_bridge.config import load_config
from cdc_bridge.runtime import Bridge
from cdc_bridge.testing import services
from cdc_bridge.testing.services import (
    KafkaService,
    MariaDBService,
    MySQLDatabase,
    PostgresService,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, text = get(base + "/metrics")
    assert code == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of ``name`` over the series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    assert predicate(), f"timed out waiting for {what}"


class Running:
    """A Bridge in a thread; ``stop()`` returns its exit code."""

    def __init__(self, config: Path, **kw: float) -> None:
        self.bridge = Bridge(load_config(config), **kw)  # type: ignore[arg-type]
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.bridge.run()), daemon=True
        )
        self.thread.start()

    def stop(self) -> list[int]:
        self.bridge.stop()
        self.thread.join(60)
        return self.result


@pytest.fixture
def private_postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresService]:
    """A Postgres of this test alone (it gets killed), whatever the suite's settings."""
    monkeypatch.delenv(services.ENV_POSTGRES, raising=False)
    monkeypatch.delenv(services.ENV_TESTCONTAINERS, raising=False)
    with services.start_postgres() as pg:
        yield pg


def source_config(tmp_path: Path, dsn: str, kafka: KafkaService, name: str, port: int) -> Path:
    path = tmp_path / "capture.toml"
    path.write_text(
        f"""
[bridge]
name = "{name}"
state = "sqlite:///{tmp_path}/capture.db"
metrics = "127.0.0.1:{port}"

[kafka]
bootstrap_servers = "{kafka.bootstrap}"
topic_partitions = 2

[[sources]]
name = "{name}"
kind = "postgres"
dsn = "{dsn}"
tables = ["public.customers"]
"""
    )
    return path


def test_source_counters_and_readiness_follow_the_database(
    private_postgres: PostgresService,
    kafka: KafkaService,
    topic_name: Callable[..., str],
    tmp_path: Path,
) -> None:
    name = topic_name("cap").replace("-", "_")
    dsn = private_postgres.create_database("shop")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO customers SELECT g, 'snap ' || g FROM generate_series(1, 20) g")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run = Running(source_config(tmp_path, dsn, kafka, name, port), monitor_interval=0.3)
    try:
        # Ready once the monitor sees the slot streaming; the snapshot is taken by then.
        wait_for(lambda: get(base + "/readyz")[0] == 200, 60, "/readyz to answer 200")
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(21, 51):
                conn.execute("INSERT INTO customers VALUES (%s, %s)", (i, f"new {i}"))
            conn.execute("UPDATE customers SET name = name || '!' WHERE id <= 10")
            conn.execute("DELETE FROM customers WHERE id > 45")

        def captured() -> dict[str, float]:
            s = scrape(base)
            return {
                op: total(s, "cdc_bridge_source_events_total", source=name, op=op) for op in "rcud"
            }

        wait_for(lambda: captured() == {"r": 20, "c": 30, "u": 10, "d": 5}, 60, "the counters")
        wait_for(
            lambda: total(scrape(base), "cdc_bridge_source_lag_bytes", source=name) == 0,
            30,
            "the slot to confirm everything",
        )
        s = scrape(base)
        assert total(s, "cdc_bridge_source_events_in_flight", source=name) == 0
        assert total(s, "cdc_bridge_source_retained_bytes", source=name) >= 0
        assert total(s, "cdc_bridge_source_up", source=name) == 1
        assert total(s, "cdc_bridge_source_snapshot_running", source=name) == 0
        assert total(s, "cdc_bridge_source_last_event_timestamp_seconds", source=name) > 0
        assert total(s, "cdc_bridge_kafka_delivery_errors_total", client=f"{name}.{name}") == 0
        assert ("cdc_bridge_kafka_producer_queue_messages", (("client", f"{name}.{name}"),)) in s

        private_postgres.kill()
        wait_for(lambda: get(base + "/readyz")[0] == 503, 30, "/readyz to turn 503")
        code, body = get(base + "/readyz")
        assert "database unreachable" in body and name in body
        assert get(base + "/healthz")[0] == 200  # alive: the source retries
        assert total(scrape(base), "cdc_bridge_source_up", source=name) == 0

        private_postgres.restart()
        wait_for(lambda: get(base + "/readyz")[0] == 200, 60, "/readyz to return to 200")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO customers VALUES (1000, 'after the outage')")
        wait_for(lambda: captured()["c"] >= 31, 60, "the insert after the outage")
    finally:
        code = run.stop()
    assert code == [0]
    assert get(base + "/healthz")[0] == 0  # the endpoint goes with the bridge


def test_mysql_source_counters_and_binlog_lag(
    mariadb: MariaDBService,
    mariadb_database: MySQLDatabase,
    kafka: KafkaService,
    topic_name: Callable[..., str],
    tmp_path: Path,
) -> None:
    name = topic_name("mys").replace("-", "_")
    conn = mariadb.connect(mariadb_database.name)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        path = tmp_path / "mysql.toml"
        path.write_text(
            f"""
[bridge]
name = "{name}"
state = "sqlite:///{tmp_path}/mysql.db"
metrics = "127.0.0.1:{port}"

[kafka]
bootstrap_servers = "{kafka.bootstrap}"

[[sources]]
name = "{name}"
kind = "mysql"
dsn = "{mariadb.dsn}"
server_id = {5000 + port % 1000}
tables = ["{mariadb_database.name}.t"]
"""
        )
        run = Running(path, monitor_interval=0.3)
        try:
            wait_for(lambda: get(base + "/readyz")[0] == 200, 60, "/readyz to answer 200")
            for i in range(25):
                cur.execute("INSERT INTO t VALUES (%s, 'x')", (i,))
            cur.execute("UPDATE t SET v = 'y' WHERE id < 5")
            wait_for(
                lambda: total(scrape(base), "cdc_bridge_source_events_total", source=name) == 30,
                60,
                "30 events counted",
            )
            s = scrape(base)
            assert total(s, "cdc_bridge_source_events_total", source=name, op="c") == 25
            assert total(s, "cdc_bridge_source_events_total", source=name, op="u") == 5
            wait_for(
                lambda: total(scrape(base), "cdc_bridge_source_lag_bytes", source=name) == 0,
                30,
                "the binlog lag to reach 0",
            )
            assert total(scrape(base), "cdc_bridge_source_retained_bytes", source=name) > 0
        finally:
            code = run.stop()
        assert code == [0]
    finally:
        conn.close()
