"""API economy through the whole route: Debezium envelopes on Kafka -> route engine -> sink ->
emulator, calls counted from the emulator's call log."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

pytest.importorskip("cdc_bridge.routes", reason="needs the route engine (cdc_bridge.routes)")

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer, TopicSettings
from cdc_bridge.routes import RouteWorker, compile_route
from cdc_bridge.sinks.base import SinkContext
from cdc_bridge.sinks.salesforce.sink import SalesforceSink
from cdc_bridge.testing.salesforce import SalesforceEmulator

from .sf_sink_helpers import CUSTOMERS, accounts, ev, route_config, sink_config


def fill(bootstrap: str, events: list[Any]) -> None:
    producer = EventProducer(bootstrap, topics=TopicSettings(partitions=3))
    encoder = EnvelopeEncoder()
    for start in range(0, len(events), 5000):
        producer.send(encoder.encode(events[start : start + 5000]))
    assert producer.close(60)


def drain(
    emu: SalesforceEmulator, bootstrap: str, topic: str, rows: int, **route: Any
) -> SalesforceSink:
    cfg = route_config(**{"name": f"r{uuid.uuid4().hex[:6]}", "from": topic, **route})
    compiled = compile_route(cfg, "t")
    sink = SalesforceSink(sink_config(emu), cfg, SinkContext("t", compiled.name, compiled.group_id))
    worker = RouteWorker(
        compiled,
        sink,
        bridge="t",
        bootstrap_servers=bootstrap,
        consumer_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        deadline = 120.0
        waited = 0.0
        while len(accounts(emu)) < rows and waited < deadline and not errors:
            stop.wait(0.2)
            waited += 0.2
        assert not errors, errors
    finally:
        stop.set()
        t.join(30)
        worker.close()
    assert len(accounts(emu)) == rows and worker.dead == 0
    return sink


def customers(n: int, prefix: str, changes: int = 1) -> list[Any]:
    table = type(CUSTOMERS)(
        CUSTOMERS.connector, prefix, "shop", "public", "customers", CUSTOMERS.columns, ("id",)
    )
    out = []
    for version in range(changes):
        for i in range(n):
            row = {"id": i, "name": f"Customer {i} v{version}", "city": "Gent", "employees": i}
            out.append(ev(table, "c" if version == 0 else "u", row))
    return out


def test_10k_changed_rows_cost_at_most_55_collections_calls(
    kafka: Any, salesforce_emulator: SalesforceEmulator
) -> None:
    emu = salesforce_emulator
    prefix = "e" + uuid.uuid4().hex[:8]
    fill(kafka.bootstrap, customers(10_000, prefix))
    emu.reset_counters()
    sink = drain(emu, kafka.bootstrap, f"{prefix}.public.customers", 10_000, mode="collections")
    assert emu.calls("data") <= 55, emu.calls("data")
    assert all(r["Name"].endswith("v0") for r in accounts(emu).values())
    assert sink.stats["bulk_jobs"] == 0


@pytest.mark.slow
def test_100k_backlog_goes_through_bulk_jobs(
    kafka: Any, salesforce_emulator: SalesforceEmulator
) -> None:
    emu = salesforce_emulator
    prefix = "b" + uuid.uuid4().hex[:8]
    fill(kafka.bootstrap, customers(100_000, prefix))
    emu.reset_counters()
    sink = drain(emu, kafka.bootstrap, f"{prefix}.public.customers", 100_000, bulk_poll_s=0.1)
    jobs = sink.stats["bulk_jobs"]
    assert 1 <= jobs <= 20
    assert emu.calls("bulk") <= jobs * 12  # create, upload, close, results + polling
    assert emu.calls("data") <= 10  # at most a small remainder through Collections
