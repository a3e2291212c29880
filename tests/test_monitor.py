"""The monitor against real servers: /readyz flips when a source's database goes away and
comes back; route consumer lag rises while nothing consumes and returns to zero after."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import psycopg
import pytest
from confluent_kafka import Consumer, Producer

from cdc_bridge import metrics
from cdc_bridge.kafka import TopicAdmin, TopicSettings
from cdc_bridge.metrics import Health, MetricsServer
from cdc_bridge.monitor import Monitor
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.testing import services
from cdc_bridge.testing.services import KafkaService, PostgresService


def readyz(server: MetricsServer) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def gauge(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


@pytest.fixture
def private_postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresService]:
    """A Postgres of this test alone (it gets killed), whatever the suite's settings."""
    monkeypatch.delenv(services.ENV_POSTGRES, raising=False)
    monkeypatch.delenv(services.ENV_TESTCONTAINERS, raising=False)
    with services.start_postgres() as pg:
        yield pg


def test_readyz_flips_when_a_source_loses_its_database(
    private_postgres: PostgresService,
) -> None:
    dsn = private_postgres.create_database("shop")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('cdc_bridge_mon', 'pgoutput')")
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
    cfg = PostgresSourceConfig(name="mon", kind="postgres", dsn=dsn)
    ctx = SimpleNamespace(safe_offset=lambda: None)  # a source that has confirmed nothing yet
    health = Health()
    monitor = Monitor(health, interval=3600)
    monitor.watch_source(cfg, ctx)
    health.source("mon", "streaming")
    with MetricsServer("127.0.0.1:0", health) as server:
        try:
            monitor.probe_once()
            assert readyz(server)[0] == 200
            lag = gauge("cdc_bridge_source_lag_bytes", source="mon")
            assert lag is not None and lag > 0
            assert gauge("cdc_bridge_source_retained_bytes", source="mon") >= lag  # type: ignore[operator]

            private_postgres.kill()
            monitor.probe_once()
            code, body = readyz(server)
            assert code == 503 and "database unreachable" in body
            assert gauge("cdc_bridge_source_up", source="mon") == 0

            private_postgres.restart()
            monitor.probe_once()
            assert readyz(server)[0] == 200
            assert gauge("cdc_bridge_source_up", source="mon") == 1
        finally:
            monitor.stop()
            metrics.forget("source", "mon")


def test_route_lag_rises_while_nothing_consumes_and_returns_to_zero(
    kafka: KafkaService, topic_name: Callable[..., str]
) -> None:
    topic = topic_name("lag")
    group = topic_name("grp")
    TopicAdmin({"bootstrap.servers": kafka.bootstrap}, TopicSettings(partitions=2)).ensure([topic])
    worker = SimpleNamespace(
        name=group, route=SimpleNamespace(group_id=group, config=SimpleNamespace(from_=topic))
    )
    health = Health()
    monitor = Monitor(health, bootstrap_servers=kafka.bootstrap, interval=3600)
    monitor.watch_route(worker)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    try:
        for i in range(6):
            producer.produce(topic, b"x", partition=i % 2)
            assert producer.flush(30) == 0  # one record per request (see test_status)
        monitor.probe_once()
        lags = [
            gauge(
                "cdc_bridge_route_consumer_lag_records", route=group, topic=topic, partition=str(p)
            )
            for p in (0, 1)
        ]
        assert lags == [3, 3]

        consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 2000,
            }
        )
        consumer.subscribe([topic])
        got = 0
        for _ in range(40):
            msgs = consumer.consume(10, timeout=0.5)
            got += len(msgs)
            if got >= 6:
                break
        assert got == 6
        consumer.commit(asynchronous=False)
        consumer.close()
        monitor.probe_once()
        lags = [
            gauge(
                "cdc_bridge_route_consumer_lag_records", route=group, topic=topic, partition=str(p)
            )
            for p in (0, 1)
        ]
        assert lags == [0, 0]
        monitor.refresh_routes()
        assert health.snapshot()["routes"][group]["ready"]  # a worker without `joined`
    finally:
        monitor.stop()
        metrics.forget("route", group)
