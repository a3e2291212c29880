"""End to end: Postgres source -> Kafka -> route engine -> Salesforce sink -> emulator.

Real logical replication, a real broker, the route engine with its DLQ and offsets, and the
emulator over HTTPS. Parent (customers -> Account) and child (contacts -> Contact with a lookup
to Account by external ID) routes run independently, as in production.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

# The route engine and the Postgres source land on main from their own branches.
pytest.importorskip("cdc_bridge.routes", reason="needs the route engine (cdc_bridge.routes)")
pytest.importorskip("cdc_bridge.sources.postgres.source", reason="needs the Postgres source")

from cdc_bridge.dlq import dlq_topic, read_dead_letters
from cdc_bridge.kafka import TopicAdmin
from cdc_bridge.routes import RouteWorker, compile_route
from cdc_bridge.sinks.base import SinkContext
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig
from cdc_bridge.sinks.salesforce.sink import SalesforceSink
from cdc_bridge.testing.salesforce import FaultConfig, SalesforceEmulator
from tests.sources.pg_harness import make_config, run_source, wait_for

from .sf_sink_helpers import sink_config

SCHEMA = """
CREATE TABLE customers (
    id int PRIMARY KEY, name text, city text, employees int, revenue numeric(12,2)
);
CREATE TABLE contacts (
    id int PRIMARY KEY, last_name text, email text, customer_id int, birthdate date
);
"""


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(bulk_delay=0.01) as e:
        yield e


def routes(source: str) -> list[SalesforceRouteConfig]:
    account = SalesforceRouteConfig.model_validate(
        {
            "name": f"{source}-accounts",
            "from": f"{source}.public.customers",
            "to": "crm",
            "sobject": "Account",
            "external_id": "External_Id__c",
            "fields": {
                "Name": "name",
                "BillingCity": "city",
                "NumberOfEmployees": "employees",
                "AnnualRevenue": "revenue",
            },
            "linger_ms": 50,
            "max_retries": 0,
            "transient_retries": 30,
            "retry_backoff_ms": 20,
        }
    )
    contact = SalesforceRouteConfig.model_validate(
        {
            "name": f"{source}-contacts",
            "from": f"{source}.public.contacts",
            "to": "crm",
            "sobject": "Contact",
            "external_id": "External_Id__c",
            "fields": {
                "LastName": "last_name",
                "Email": "email",
                "Birthdate": "birthdate",
                "Account.External_Id__c": "customer_id",
            },
            "linger_ms": 50,
            "max_retries": 0,
            "parent_wait_s": 30,
            "transient_retries": 30,
            "retry_backoff_ms": 20,
        }
    )
    return [account, contact]


@contextmanager
def run_routes(
    emu: SalesforceEmulator, bootstrap: str, source: str, **sink_kw: Any
) -> Iterator[list[RouteWorker]]:
    # Topics exist before the routes subscribe (librdkafka otherwise notices new topics only
    # at its next metadata refresh, minutes later).
    TopicAdmin({"bootstrap.servers": bootstrap}).ensure(
        [f"{source}.public.customers", f"{source}.public.contacts"]
    )
    workers = []
    for route in routes(source):
        compiled = compile_route(route, "t")
        sink = SalesforceSink(
            sink_config(emu, **sink_kw), route, SinkContext("t", compiled.name, compiled.group_id)
        )
        workers.append(
            RouteWorker(
                compiled,
                sink,
                bridge="t",
                bootstrap_servers=bootstrap,
                consumer_config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 300},
            )
        )
    stop = threading.Event()
    errors: list[BaseException] = []

    def target(w: RouteWorker) -> None:
        try:
            w.run(stop)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        yield workers
        assert not errors, errors
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for w in workers:
            w.close()


def sf_state(emu: SalesforceEmulator) -> tuple[dict[str, Any], dict[str, Any]]:
    accounts = {r["External_Id__c"]: r for r in emu.records("Account")}
    by_id = {r["Id"]: k for k, r in accounts.items()}
    acc = {
        k: (r["Name"], r["BillingCity"], r["NumberOfEmployees"], r["AnnualRevenue"])
        for k, r in accounts.items()
    }
    con = {
        r["External_Id__c"]: (r["LastName"], r["Email"], by_id.get(r["AccountId"]), r["Birthdate"])
        for r in emu.records("Contact")
    }
    return acc, con


def pg_state(dsn: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        acc = {
            str(i): (n, c, e, float(r) if r is not None else None)
            for i, n, c, e, r in conn.execute(
                "SELECT id, name, city, employees, revenue FROM customers"
            )
        }
        con = {
            str(i): (ln, em, str(cid) if cid is not None else None, b.isoformat() if b else None)
            for i, ln, em, cid, b in conn.execute(
                "SELECT id, last_name, email, customer_id, birthdate FROM contacts WHERE last_name IS NOT NULL"
            )
        }
    return acc, con


def test_postgres_to_salesforce_end_to_end(
    pg_database: str, kafka: Any, emu: SalesforceEmulator
) -> None:
    source = "pg" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(SCHEMA)
        # Snapshot rows: children reference parents.
        for i in range(1, 51):
            conn.execute(
                "INSERT INTO customers VALUES (%s, %s, %s, %s, %s)",
                (i, f"Customer {i}", "Utrecht", i * 10, f"{i}000.50"),
            )
        for i in range(1, 101):
            conn.execute(
                "INSERT INTO contacts VALUES (%s, %s, %s, %s, %s)",
                (
                    1000 + i,
                    f"Last {i}",
                    f"c{i}@example.com",
                    (i % 50) + 1,
                    f"1990-01-{(i % 28) + 1:02d}",
                ),
            )
    with (
        run_source(kafka.bootstrap, make_config(pg_database, source)),
        run_routes(emu, kafka.bootstrap, source) as workers,
    ):
        assert wait_for(lambda: sf_state(emu) == pg_state(pg_database), 60), (
            sf_state(emu),
            pg_state(pg_database),
        )
        with psycopg.connect(pg_database, autocommit=True) as conn:
            # Streaming: children inserted before their parent in one transaction, updates,
            # deletes, a lookup cleared, and a contact Salesforce refuses (LastName missing).
            with conn.transaction():
                conn.execute(
                    "INSERT INTO contacts VALUES (2001, 'Early', 'early@example.com', 60, NULL)"
                )
                conn.execute("INSERT INTO customers VALUES (60, 'Late parent', 'Delft', 1, 1.25)")
            conn.execute("UPDATE customers SET name = name || ' v2', city = 'Gent' WHERE id <= 10")
            conn.execute("UPDATE contacts SET customer_id = NULL WHERE id = 1001")
            conn.execute("DELETE FROM contacts WHERE id BETWEEN 1090 AND 1100")
            conn.execute("DELETE FROM contacts WHERE customer_id = 50")
            conn.execute("DELETE FROM customers WHERE id = 50")
            conn.execute(
                "INSERT INTO contacts VALUES (3001, NULL, 'nameless@example.com', 1, NULL)"
            )
            conn.execute("UPDATE customers SET revenue = NULL, employees = NULL WHERE id = 11")
        assert wait_for(lambda: sf_state(emu) == pg_state(pg_database), 60), (
            sf_state(emu),
            pg_state(pg_database),
        )
        assert wait_for(lambda: workers[1].dead == 1, 10)
    dead = list(read_dead_letters(kafka.bootstrap, dlq_topic("t", f"{source}-contacts")))
    assert len(dead) == 1
    assert dead[0].code == "REQUIRED_FIELD_MISSING" and "LastName" in dead[0].error
    assert dead[0].topic == f"{source}.public.contacts"
    assert "3001" not in sf_state(emu)[1]


def test_postgres_to_salesforce_fault_run(
    pg_database: str, kafka: Any, emu: SalesforceEmulator
) -> None:
    """20% UNABLE_TO_LOCK_ROW, 503 bursts, session expiry mid-run, quota exhausted then reset."""
    source = "pf" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(SCHEMA)
    emu.set_faults(
        FaultConfig(
            lock_row_probability=0.2,
            unavailable_every=9,
            unavailable_burst=3,
            session_expire_after=7,
            seed=11,
        )
    )
    with (
        run_source(kafka.bootstrap, make_config(pg_database, source)),
        run_routes(emu, kafka.bootstrap, source, quota_pause_s=0.3, quota_slowdown=1.0) as workers,
    ):
        with psycopg.connect(pg_database, autocommit=True) as conn:
            for batch in range(6):
                with conn.transaction():
                    for i in range(batch * 100 + 1, batch * 100 + 101):
                        conn.execute(
                            "INSERT INTO customers VALUES (%s, %s, 'Utrecht', 1, 2.5)", (i, f"C{i}")
                        )
                        conn.execute(
                            "INSERT INTO contacts VALUES (%s, %s, NULL, %s, NULL)",
                            (10_000 + i, f"L{i}", i),
                        )
                conn.execute("UPDATE customers SET name = name || '*' WHERE id % 7 = 0")
                conn.execute("DELETE FROM contacts WHERE id % 11 = 0")
                if batch == 2:
                    # The daily quota runs out mid-run ...
                    emu.reset_quota(daily_limit=emu.api_usage + 5)
        sinks: list[Any] = [w.sink for w in workers]
        # ... the sinks pause (nothing is lost meanwhile) ...
        assert wait_for(lambda: any(s.client and s.client.quota.paused for s in sinks), 60)
        assert sf_state(emu) != pg_state(pg_database)
        emu.reset_quota(daily_limit=1_000_000)  # ... and resume by themselves after the reset.
        assert wait_for(lambda: sf_state(emu) == pg_state(pg_database), 120), "state differs"
        assert all(w.dead == 0 for w in workers)
        assert any(s.client is not None and s.client.quota.pauses for s in sinks)
        assert any(s.client is not None and s.client.refreshes for s in sinks)
        assert sum(s.stats["record_retries"] for s in sinks) > 0
