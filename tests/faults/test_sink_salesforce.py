"""The Salesforce sink under network faults (the only emulated server): TLS handshakes cut by
a reset or an EOF are retried (not reported as a certificate problem), a real certificate
verification failure is a configuration error, and connection cuts, 503 bursts and expiring
sessions together still end with every record in Salesforce, value for value."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import certifi
import pytest

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.errors import ConfigError
from cdc_bridge.routes import RouteWorker, compile_route
from cdc_bridge.sinks.base import SinkContext
from cdc_bridge.sinks.salesforce.sink import SalesforceSink
from cdc_bridge.testing.salesforce import FaultConfig, SalesforceEmulator
from tests.faults._routes import produce_records
from tests.routes_support import create_topic
from tests.sinks.salesforce.sf_sink_helpers import (
    CUSTOMERS,
    accounts,
    ev,
    route_config,
    sink_config,
)


def _customers(prefix: str, n: int) -> tuple[str, list[Any], dict[str, dict[str, Any]]]:
    table = type(CUSTOMERS)(
        CUSTOMERS.connector, prefix, "shop", "public", "customers", CUSTOMERS.columns, ("id",)
    )
    events, expected = [], {}
    for version in range(2):
        for i in range(n):
            row = {"id": i, "name": f"Customer {i} v{version}", "city": "Gent", "employees": i}
            events.append(ev(table, "c" if version == 0 else "u", row))
            expected[str(i)] = {"Name": row["name"], "BillingCity": "Gent", "NumberOfEmployees": i}
    return table.topic, events, expected


def _run_route(emu: SalesforceEmulator, bootstrap: str, topic: str, rows: int) -> RouteWorker:
    cfg = route_config(**{"name": f"r{uuid.uuid4().hex[:6]}", "from": topic, "batch_size": 50})
    compiled = compile_route(cfg, "faults")
    sink = SalesforceSink(
        sink_config(emu), cfg, SinkContext("faults", compiled.name, compiled.group_id)
    )
    worker = RouteWorker(
        compiled,
        sink,
        bridge="faults",
        bootstrap_servers=bootstrap,
        consumer_config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 300},
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
        waited = 0.0
        while worker.applied < rows and waited < 90 and not errors:
            stop.wait(0.2)
            waited += 0.2
        assert not errors, errors
    finally:
        stop.set()
        t.join(30)
        worker.close()
    return worker


def test_tls_handshake_cuts_connection_resets_and_session_expiry_are_retried(
    kafka: Any, salesforce_emulator: SalesforceEmulator, topic_name: Any
) -> None:
    emu = salesforce_emulator
    topic, events, expected = _customers(topic_name("sf"), 120)
    create_topic(kafka.bootstrap, topic)
    produce_records(kafka.bootstrap, topic, EnvelopeEncoder().encode(events))
    # The first connections are cut mid-handshake (reset, EOF, reset, EOF); later a 503
    # burst, and sessions die every 7 calls (401 -> log in again on a new connection).
    emu.set_faults(
        FaultConfig(
            handshake_resets=4, unavailable_every=5, unavailable_burst=2, session_expire_after=7
        )
    )
    worker = _run_route(emu, kafka.bootstrap, topic, len(events))
    assert worker.applied == len(events) and worker.dead == 0
    got = {
        k: {c: r.get(c) for c in ("Name", "BillingCity", "NumberOfEmployees")}
        for k, r in accounts(emu).items()
    }
    assert got == expected
    assert emu.faults.handshake_reset() is None  # every injected cut happened


def test_a_real_certificate_verification_failure_is_a_config_error(
    salesforce_emulator: SalesforceEmulator,
) -> None:
    cfg = route_config()
    sink = SalesforceSink(
        sink_config(salesforce_emulator, ca_bundle=certifi.where()),  # not the emulator's CA
        cfg,
        SinkContext("faults", "r", "faults.r"),
    )
    with pytest.raises(ConfigError, match="ca_bundle"):
        sink.open()
    sink.close()
