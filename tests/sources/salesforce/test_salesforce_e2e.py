"""End to end with the Salesforce source: emulator edits -> Kafka -> Postgres and SQLite
targets value for value; and two-way sync Postgres ``customers`` <-> Salesforce ``Account``
without echo (replication origin on the Postgres side, Sforce-Call-Options on Salesforce's)."""

from __future__ import annotations

import datetime as dt
import os
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from cdc_bridge.config import BridgeSection, KafkaSection
from cdc_bridge.sinks.database.config import DatabaseRouteConfig, DatabaseSinkConfig
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig, SalesforceSinkConfig
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.testing.salesforce import SalesforceEmulator
from cdc_bridge.testing.sources import SourceThread
from tests.routes_support import run_routes, wait_for
from tests.sources.salesforce.sf_harness import Writer, source_config

FIELDS = [
    "Id",
    "Name",
    "AccountNumber",
    "Type",
    "Industry",
    "AnnualRevenue",
    "NumberOfEmployees",
    "Phone",
    "Website",
    "Description",
    "BillingCity",
    "BillingCountry",
    "ParentId",
    "External_Id__c",
    "CreatedDate",
    "LastModifiedDate",
]


def _bridge(kafka: Any, sinks: list[Any], routes: list[Any], name: str) -> SimpleNamespace:
    return SimpleNamespace(
        bridge=BridgeSection(name=name),
        kafka=KafkaSection(
            bootstrap_servers=kafka.bootstrap,
            consumer={"session.timeout.ms": 2000, "heartbeat.interval.ms": 300},
        ),
        sinks=sinks,
        routes=routes,
    )


def _norm(field: str, value: Any) -> Any:
    """One comparable form for emulator values and target column values."""
    if value is None:
        return None
    if field in ("CreatedDate", "LastModifiedDate"):
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(
                value.replace("+0000", "+00:00").replace("Z", "+00:00")
            )
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).replace(microsecond=value.microsecond // 1000 * 1000)
    if field in ("AnnualRevenue",):
        return float(value)
    if field == "NumberOfEmployees":
        return int(value)
    return value


def _emu_rows(emu: SalesforceEmulator) -> dict[str, dict[str, Any]]:
    return {r["Id"]: {f: _norm(f, r.get(f)) for f in FIELDS} for r in emu.records("Account")}


def _target_rows(url: str) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("accounts"):
                return {}
            rows = conn.execute(sa.text("SELECT * FROM accounts")).mappings().all()
    finally:
        engine.dispose()
    return {r["Id"]: {f: _norm(f, r.get(f)) for f in FIELDS} for r in rows}


@pytest.fixture
def targets(postgres: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    name = f"sft_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_dsn = postgres.create_database(name)
    yield {
        "pg": pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1),
        "sqlite": f"sqlite:///{tmp_path / 'target.db'}",
    }
    postgres.drop_database(name)


def test_salesforce_edits_reach_postgres_and_sqlite_value_for_value(
    kafka: Any, targets: dict[str, str], topic_name: Any
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        api = Writer(emu)
        seed = api.create_many(
            "Account",
            [
                {"Name": f"Seed {i}", "BillingCity": "Oslo", "AnnualRevenue": 1000.5 * i}
                for i in range(20)
            ],
        )
        name = topic_name("sfe2e").replace("-", "_")
        src = SourceThread(
            source_config(emu, name=name, snapshot="initial"), kafka.bootstrap
        ).start()
        sinks = [
            DatabaseSinkConfig(name=f"db_{k}", kind="database", url=url)
            for k, url in targets.items()
        ]
        routes = [
            DatabaseRouteConfig.model_validate(
                {
                    "name": f"sf-to-{k}",
                    "from": f"{name}.Account",
                    "to": f"db_{k}",
                    "table": "accounts",
                    "linger_ms": 50,
                    "mapping": {"include": FIELDS},
                }
            )
            for k in targets
        ]
        running = run_routes(_bridge(kafka, sinks, routes, name))
        try:
            time.sleep(2.0)  # snapshot done, subscriptions in place
            new = api.create(
                "Account",
                {
                    "Name": "New Co",
                    "Type": "Partner",
                    "Industry": "Banking",
                    "NumberOfEmployees": 12,
                    "Phone": "+47 1",
                    "Website": "https://new.example",
                    "Description": "line 1\nline 2 ✓",
                    "BillingCity": "Bergen",
                    "BillingCountry": "NO",
                    "ParentId": seed[0],
                    "External_Id__c": "EXT-1",
                },
            )
            api.update("Account", seed[1], {"BillingCity": None, "Phone": None})  # nulled
            api.update("Account", seed[2], {"BillingCountry": "SE", "AnnualRevenue": 0.25})
            emu.ui_update("Account", seed[3], {"Name": "Renamed in the UI"})
            api.delete("Account", seed[4])
            api.delete("Account", seed[5])
            emu.undelete("Account", seed[5])
            Writer(emu).update_many(
                "Account", [{"Id": rid, "NumberOfEmployees": i} for i, rid in enumerate(seed[6:])]
            )
            expected = _emu_rows(emu)
            assert new in expected and seed[4] not in expected and seed[5] in expected
            for key, url in targets.items():
                try:
                    wait_for(lambda url=url: _target_rows(url) == expected, 60, key)
                except AssertionError:
                    got = _target_rows(url)
                    diff = {
                        i: {
                            f: (v, got.get(i, {}).get(f))
                            for f, v in r.items()
                            if got.get(i, {}).get(f) != v
                        }
                        for i, r in expected.items()
                        if got.get(i) != r
                    }
                    raise AssertionError(
                        f"{key}: {diff} extra {set(got) - set(expected)}; {src.error}"
                    ) from None
            assert src.error is None
        finally:
            running.close()
            src.stop()
            api.close()


# -- two-way sync ----------------------------------------------------------------------------


class _Side:
    """The database half of a two-way sync: Postgres (replication origin) or MariaDB (GTID
    domain): its table, a source that skips the sink's marker, a sink that sets it."""

    def __init__(self, kind: str, request: Any, name: str) -> None:
        self.kind = kind
        if kind == "pg":
            postgres = request.getfixturevalue("postgres")
            self._pg = postgres
            self.db = f"tw_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            self.dsn = postgres.create_database(self.db)
            self.execute(
                "CREATE TABLE customers (id text PRIMARY KEY, name text NOT NULL, city text, "
                "employees integer)"
            )
            self.source_cfg: Any = PostgresSourceConfig.model_validate(
                {
                    "name": f"{name}_db",
                    "kind": "postgres",
                    "dsn": self.dsn,
                    "tables": ["public.customers"],
                    "skip_origins": ["cdc_bridge*"],
                }
            )
            self.topic = f"{name}_db.public.customers"
            self.sink = DatabaseSinkConfig(
                name="db",
                kind="database",
                url=self.dsn.replace("postgresql://", "postgresql+psycopg://", 1),
                replication_origin="cdc_bridge",
            )
        else:
            from cdc_bridge.sources.mysql.config import MySqlSourceConfig

            db = request.getfixturevalue("mariadb_database")
            self._maria = db
            self.execute(
                "CREATE TABLE customers (id varchar(20) PRIMARY KEY, name varchar(100) NOT NULL, "
                "city varchar(100), employees int)"
            )
            self.source_cfg = MySqlSourceConfig.model_validate(
                {
                    "name": f"{name}_db",
                    "kind": "mysql",
                    "dsn": f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/",
                    "tables": [f"{db.name}.customers"],
                    "server_id": 6200 + os.getpid() % 500,
                    "skip_gtid_domains": [77],
                }
            )
            self.topic = f"{name}_db.{db.name}.customers"
            self.sink = DatabaseSinkConfig(
                name="db",
                kind="database",
                url=db.dsn.replace("mysql://", "mysql+pymysql://", 1),
                gtid_domain_id=77,
            )

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.kind == "pg":
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql, params)
        else:
            import pymysql

            conn = pymysql.connect(**self._maria.connect_kwargs(), autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, params)
            finally:
                conn.close()

    def upsert(self, rid: str, name: str) -> None:
        if self.kind == "pg":
            self.execute(
                "INSERT INTO customers VALUES (%s, %s, 'Bergen', 1) "
                "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
                (rid, name),
            )
        else:
            self.execute(
                "INSERT INTO customers VALUES (%s, %s, 'Bergen', 1) "
                "ON DUPLICATE KEY UPDATE name = VALUES(name)",
                (rid, name),
            )

    def rows(self) -> dict[str, tuple[Any, ...]]:
        if self.kind == "pg":
            with psycopg.connect(self.dsn) as conn:
                found = conn.execute("SELECT id, name, city, employees FROM customers").fetchall()
        else:
            import pymysql

            conn = pymysql.connect(**self._maria.connect_kwargs())
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT id, name, city, employees FROM customers")
                    found = list(cur.fetchall())
            finally:
                conn.close()
        return {r[0]: (r[1], r[2], r[3]) for r in found}

    def skipped(self, source: Any) -> int:
        if self.kind == "pg":
            return int(source.stats["origin_skipped_transactions"])
        return int(source.domain_skipped_events)

    def close(self) -> None:
        if self.kind == "pg":
            self._pg.drop_database(self.db)


def _sf_rows(emu: SalesforceEmulator) -> dict[str, tuple[Any, ...]]:
    return {
        r["External_Id__c"]: (r["Name"], r["BillingCity"], r["NumberOfEmployees"])
        for r in emu.records("Account")
        if r.get("External_Id__c")
    }


@pytest.mark.parametrize("side", ["pg", "maria"])
def test_two_way_database_customers_and_salesforce_account_without_ping_pong(
    kafka: Any, request: Any, topic_name: Any, side: str
) -> None:
    # the issue asks for 60 s of edits: CDC_TWO_WAY_EDIT_S=60 (CI runs a short edit phase)
    edit_s = float(os.environ.get("CDC_TWO_WAY_EDIT_S", "3"))
    name = topic_name("tw").replace("-", "_")
    db = _Side(side, request, name)
    for i in range(30):
        db.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)", (str(i), f"Customer {i}", "Oslo", i)
        )
    emu = SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5).start()
    db_src = SourceThread(db.source_cfg, kafka.bootstrap).start()
    sf_src = SourceThread(
        source_config(emu, name=f"{name}_sf", snapshot="never"), kafka.bootstrap
    ).start()
    sf_sink = SalesforceSinkConfig.model_validate({"name": "crm", **emu.login_settings()})
    routes = [
        SalesforceRouteConfig.model_validate(
            {
                "name": "db-to-sf",
                "from": db.topic,
                "to": "crm",
                "sobject": "Account",
                "external_id": "External_Id__c",
                "key": "id",
                "fields": {"Name": "name", "BillingCity": "city", "NumberOfEmployees": "employees"},
                "linger_ms": 50,
            }
        ),
        DatabaseRouteConfig.model_validate(
            {
                "name": "sf-to-db",
                "from": f"{name}_sf.Account",
                "to": "db",
                "table": "customers",
                "key": ["id"],
                "schema_evolution": "none",
                "deletes": "ignore",
                "linger_ms": 50,
                "mapping": {
                    "include": ["External_Id__c", "Name", "BillingCity", "NumberOfEmployees"],
                    "rename": {
                        "External_Id__c": "id",
                        "Name": "name",
                        "BillingCity": "city",
                        "NumberOfEmployees": "employees",
                    },
                },
                "filter": "after.External_Id__c != null",
            }
        ),
    ]
    running = run_routes(_bridge(kafka, [sf_sink, db.sink], routes, name))
    rng = random.Random(7)
    try:
        # the initial rows reach Salesforce
        wait_for(lambda: _sf_rows(emu) == db.rows(), 60, "initial sync")
        # mixed edits on both sides: the database edits even ids, reps edit odd ones in the UI
        # (concurrent edits of the same record are not reconciled: last writer per side)
        deadline = time.monotonic() + edit_s
        n = 0
        while time.monotonic() < deadline:
            n += 1
            i = rng.randrange(0, 40)
            if i % 2 == 0:
                if i >= 30 and rng.random() < 0.5:
                    db.upsert(str(i), f"DB new {n}")
                elif rng.random() < 0.1:
                    db.execute("DELETE FROM customers WHERE id = %s", (str(i),))
                else:
                    db.execute(
                        "UPDATE customers SET city = %s, employees = %s WHERE id = %s",
                        (f"City {n}", n, str(i)),
                    )
            else:
                sf = {
                    r["External_Id__c"]: r["Id"]
                    for r in emu.records("Account")
                    if r.get("External_Id__c")
                }
                if str(i) in sf:
                    emu.ui_update(
                        "Account", sf[str(i)], {"Name": f"Rep edit {n}", "NumberOfEmployees": n}
                    )
                elif i >= 30:
                    emu.ui_create(
                        "Account",
                        {"Name": f"Rep new {n}", "External_Id__c": str(i), "BillingCity": "Rome"},
                    )
            time.sleep(0.02)
        # quiet: both sides converge
        wait_for(lambda: _sf_rows(emu) == db.rows(), 90, "two-way convergence")
        # ... and nothing keeps flowing: no ping-pong
        time.sleep(2)
        before = (emu.bus.published, db_src.ctx.events_emitted, sf_src.ctx.events_emitted)
        time.sleep(2.5)
        after = (emu.bus.published, db_src.ctx.events_emitted, sf_src.ctx.events_emitted)
        assert after == before, (before, after)
        assert _sf_rows(emu) == db.rows()
        # the echoes were seen and dropped on both sides
        assert sf_src.source.echo_dropped > 0
        assert db.skipped(db_src.source) > 0
        print(
            f"two-way {side}: {n} edits in {edit_s:.0f}s; echoes dropped: salesforce "
            f"{sf_src.source.echo_dropped}, database {db.skipped(db_src.source)}"
        )
        assert db_src.error is None and sf_src.error is None
    finally:
        running.close()
        sf_src.stop()
        db_src.stop()
        emu.stop()
        db.close()
