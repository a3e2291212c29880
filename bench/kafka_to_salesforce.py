"""Benchmark: Kafka topic -> route engine -> Salesforce sink -> the local Salesforce emulator.

Fills a topic with Debezium envelopes of a customers table (exactly what the sources write),
then runs one route worker until every row is in the emulator, twice: sObject Collections
(mode = "collections") and Bulk API 2.0 (mode = "auto" with the whole backlog waiting).
Reports records/s and API calls per 10,000 records, counted from the emulator's call log.

    just bench-sf                  # or: .venv/bin/python bench/kafka_to_salesforce.py --rows 20000 --bulk-rows 100000
    just bench-sf --latency 0.15   # every emulator call takes 150 ms longer, like a real org

The emulator answers in-process, so records/s measures the bridge's own cost (decode, map,
collapse, JSON/CSV, HTTPS) plus the emulator's; against a real org, Salesforce's latency
(~100-300 ms per Collections call) dominates and the call counts are what matter.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from typing import Any

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.events import CONNECTOR_POSTGRES, ChangeEvent, Column, TableSchema
from cdc_bridge.kafka import EventProducer, TopicSettings
from cdc_bridge.routes import RouteWorker, compile_route
from cdc_bridge.sinks.base import SinkContext
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig, SalesforceSinkConfig
from cdc_bridge.sinks.salesforce.sink import SalesforceSink
from cdc_bridge.testing.salesforce import FaultConfig, SalesforceEmulator
from cdc_bridge.testing.services import start_kafka

COLUMNS = (
    Column("id", {"type": "int64", "optional": False}),
    Column("name", {"type": "string", "optional": True}),
    Column("city", {"type": "string", "optional": True}),
    Column("employees", {"type": "int32", "optional": True}),
    Column(
        "revenue",
        {
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2"},
        },
    ),
    Column("note", {"type": "string", "optional": True}),
)


def fill_topic(bootstrap: str, topic_prefix: str, rows: int, first_id: int = 0) -> str:
    table = TableSchema(
        CONNECTOR_POSTGRES, topic_prefix, "shop", "public", "customers", COLUMNS, ("id",)
    )
    producer = EventProducer(bootstrap, topics=TopicSettings(partitions=3))
    enc = EnvelopeEncoder()
    chunk: list[ChangeEvent] = []
    for i in range(first_id, first_id + rows):
        row = {
            "id": i,
            "name": f"Customer {i}",
            "city": ("Utrecht", "Delft", "Gent")[i % 3],
            "employees": i % 5000,
            "revenue": "AYag",  # 1000.00 as Connect Decimal bytes (scale 2)
            "note": "benchmark row " * 3,
        }
        chunk.append(
            ChangeEvent(
                table,
                "c",
                None,
                row,
                1_700_000_000_000_000,
                {"schema": "public", "table": "customers", "txId": 1, "lsn": i, "xmin": None},
            )
        )
        if len(chunk) == 5000:
            producer.send(enc.encode(chunk))
            chunk = []
    if chunk:
        producer.send(enc.encode(chunk))
    if not producer.close(60):
        raise SystemExit("the broker did not confirm every record")
    return table.topic


class TimedSink(SalesforceSink):
    """Notes when the first batch arrives, so the consumer-group join is not counted."""

    first_apply: float | None = None

    def apply(self, batch: Any, positions: Any = None) -> Any:
        if self.first_apply is None:
            self.first_apply = time.perf_counter()
        return super().apply(batch, positions)


def run(
    emu: SalesforceEmulator, bootstrap: str, topic: str, rows: int, mode: str
) -> dict[str, Any]:
    c = emu.auth_config
    sink_cfg = SalesforceSinkConfig.model_validate(
        {
            "name": "crm",
            "kind": "salesforce",
            "auth": "password",
            "login_url": emu.url,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "username": c.username,
            "password": c.password,
            "security_token": c.security_token,
            "ca_bundle": emu.ca_file,
        }
    )
    route = SalesforceRouteConfig.model_validate(
        {
            "name": f"bench-{mode}",
            "from": topic,
            "to": "crm",
            "sobject": "Account",
            "external_id": "External_Id__c",
            "mode": mode,
            "bulk_poll_s": 0.2,
            "fields": {
                "Name": "name",
                "BillingCity": "city",
                "NumberOfEmployees": "employees",
                "AnnualRevenue": "revenue",
                "Description": "note",
            },
        }
    )
    compiled = compile_route(route, "bench")
    sink = TimedSink(sink_cfg, route, SinkContext("bench", compiled.name, compiled.group_id))
    worker = RouteWorker(
        compiled,
        sink,
        bridge="bench",
        bootstrap_servers=bootstrap,
        consumer_config={"session.timeout.ms": 6000},
    )
    emu.reset_counters()
    before = len(emu.records("Account"))
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    # worker.applied may count a replayed batch twice: confirm against the emulator too.
    while worker.applied + worker.dead < rows or len(emu.records("Account")) - before < rows:
        if errors:
            raise errors[0]
        if time.perf_counter() - (sink.first_apply or time.perf_counter()) > 600:
            raise SystemExit(f"{mode}: timed out")
        time.sleep(0.02 if worker.applied + worker.dead < rows else 0.2)
    elapsed = time.perf_counter() - (sink.first_apply or 0.0)
    stop.set()
    t.join(30)
    worker.close()
    landed = len(emu.records("Account")) - before
    if landed != rows or worker.dead:
        raise SystemExit(f"{mode}: {landed} of {rows} rows landed, {worker.dead} dead-lettered")
    calls: dict[str, int] = {}
    for call in emu.call_log:
        calls[call.kind] = calls.get(call.kind, 0) + 1
    api = sum(v for k, v in calls.items() if k not in ("auth",))
    return {
        "mode": mode,
        "rows": rows,
        "seconds": round(elapsed, 3),
        "records_per_s": round(rows / elapsed, 1),
        "calls": calls,
        "data_calls_per_10k": round(calls.get("data", 0) * 10_000 / rows, 2),
        "api_calls_per_10k": round(api * 10_000 / rows, 2),
        "bulk_jobs": sink.stats["bulk_jobs"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000, help="rows for the Collections run")
    ap.add_argument("--bulk-rows", type=int, default=100_000, help="rows for the Bulk API run")
    ap.add_argument(
        "--latency", type=float, default=0.0, help="seconds the emulator adds to every call"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = []
    with (
        start_kafka() as kafka,
        SalesforceEmulator(
            daily_limit=1_000_000, bulk_delay=0.0, faults=FaultConfig(latency=args.latency)
        ) as emu,
    ):
        stamp = str(int(time.time()))
        topic = fill_topic(kafka.bootstrap, f"benchc{stamp}", args.rows)
        results.append(run(emu, kafka.bootstrap, topic, args.rows, "collections"))
        topic = fill_topic(kafka.bootstrap, f"benchb{stamp}", args.bulk_rows, first_id=args.rows)
        results.append(run(emu, kafka.bootstrap, topic, args.bulk_rows, "auto"))
    print(
        json.dumps({"bench": "kafka_to_salesforce", "latency_s": args.latency, "results": results})
    )
    for r in results:
        print(
            f"{r['mode']:>11}: {r['rows']} rows in {r['seconds']}s = {r['records_per_s']} records/s; "
            f"{r['data_calls_per_10k']} data calls and {r['api_calls_per_10k']} API calls per 10,000 "
            f"records ({r['calls']}, {r['bulk_jobs']} bulk jobs)"
        )


if __name__ == "__main__":
    main()
