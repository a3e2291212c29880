"""The metrics endpoint: /metrics, /healthz, /readyz, and the per-batch source counters
against a real broker."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cdc_bridge import metrics
from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.errors import ConfigError
from cdc_bridge.kafka import EventProducer
from cdc_bridge.metrics import Health, MetricsServer, parse_address
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.testing.services import KafkaService
from tests.test_envelope import pg_event


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, parsed with prometheus-client's own parser."""
    code, text = get(server.url + "/metrics")
    assert code == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address(":9464") == ("0.0.0.0", 9464)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("9464", "localhost:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_address(bad)


def test_health_endpoints_follow_components() -> None:
    health = Health()
    with MetricsServer("127.0.0.1:0", health) as server:
        assert get(server.url + "/healthz") == (200, "ok\n")
        assert get(server.url + "/readyz")[0] == 200  # nothing configured: ready

        health.source("orders", "starting")
        health.route("to-crm", "starting")
        code, body = get(server.url + "/readyz")
        assert code == 503 and '"starting"' in body

        health.source("orders", "streaming")
        health.route("to-crm", "assigned")
        assert get(server.url + "/readyz")[0] == 200
        assert value(scrape(server), "cdc_bridge_source_up", source="orders") == 1

        # The database stops answering the monitor while the source retries inside run().
        health.source_reachable("orders", False, "connection refused")
        code, body = get(server.url + "/readyz")
        assert code == 503 and "connection refused" in body
        assert value(scrape(server), "cdc_bridge_source_up", source="orders") == 0
        assert value(scrape(server), "cdc_bridge_ready") == 0

        health.source_reachable("orders", True)
        assert get(server.url + "/readyz")[0] == 200

        health.fatal("route to-crm: sink rejected the configuration")
        code, body = get(server.url + "/readyz")
        assert code == 503 and "sink rejected" in body
        assert get(server.url + "/healthz")[0] == 200  # alive, not ready
        assert get(server.url + "/nope")[0] == 404
    metrics.forget("source", "orders")


def test_address_in_use_is_one_clear_error() -> None:
    first = MetricsServer("127.0.0.1:0").start()
    try:
        with pytest.raises(ConfigError, match=r"bridge\.metrics: cannot listen on 127\.0\.0\.1"):
            MetricsServer(f"127.0.0.1:{first.port}").start()
    finally:
        first.stop()


def test_source_counters_match_events_produced(
    kafka: KafkaService, topic_name: Callable[..., str]
) -> None:
    name = topic_name("msrc")
    producer = EventProducer(kafka.bootstrap, {"linger.ms": 5}, client_id=name)
    ctx = SourceContext(name, producer, EnvelopeEncoder())
    try:
        with MetricsServer("127.0.0.1:0") as server:
            before = scrape(server)
            assert value(before, "cdc_bridge_source_events_total", source=name, op="c") == 0
            row = {"id": 1, "customer": "a", "amount": None}
            snapshot = [pg_event("r", None, row, snapshot="true") for _ in range(7)]
            ctx.emit(snapshot)
            s = scrape(server)
            assert value(s, "cdc_bridge_source_snapshot_running", source=name) == 1
            batch = (
                [pg_event("c", None, row) for _ in range(30)]
                + [pg_event("u", row, row) for _ in range(12)]
                + [pg_event("d", row, None) for _ in range(5)]
            )
            for i in range(0, len(batch), 10):
                ctx.emit(batch[i : i + 10])
            assert producer.flush(30)
            deadline = time.monotonic() + 10
            while ctx.checkpoint() is None and producer.in_flight() and time.monotonic() < deadline:
                time.sleep(0.05)
            s = scrape(server)
            got = {
                op: value(s, "cdc_bridge_source_events_total", source=name, op=op) for op in "rcud"
            }
            assert got == {"r": 7, "c": 30, "u": 12, "d": 5}
            assert value(s, "cdc_bridge_source_snapshot_running", source=name) == 0
            assert value(s, "cdc_bridge_source_events_in_flight", source=name) == 0
            assert value(s, "cdc_bridge_source_ack_age_seconds", source=name) == 0
            assert value(
                s, "cdc_bridge_source_last_event_timestamp_seconds", source=name
            ) == pytest.approx(batch[-1].ts_us / 1e6)
            assert (
                value(s, "cdc_bridge_kafka_delivery_errors_total", client=name) == 0
            )  # no series until an error; absent reads 0
            assert ("cdc_bridge_kafka_producer_queue_messages", (("client", name),)) in s
    finally:
        producer.close()
        metrics.forget("source", name)
        metrics.forget("client", name)


def test_forget_drops_series() -> None:
    metrics.route_records_applied.labels(route="gone").inc(3)
    metrics.route_consumer_lag.labels(route="gone", topic="t", partition="0").set(5)
    metrics.route_records_applied.labels(route="kept").inc(1)
    metrics.forget("route", "gone")
    text = metrics.generate_latest(metrics.REGISTRY).decode()
    assert 'route="gone"' not in text
    assert 'cdc_bridge_route_records_applied_total{route="kept"} 1.0' in text
    metrics.forget("route", "kept")
