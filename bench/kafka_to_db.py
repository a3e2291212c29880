"""Benchmark: a pre-filled topic of Debezium envelopes -> a Postgres table, with upserts.

Fills a topic with change events of a 7-column table (80% inserts, 20% updates of earlier
rows), then runs one route worker (the same code `cdc-bridge start` runs) into a private
Postgres database in upsert mode, exactly-once offsets on, and reports rows/s from the
first applied batch to the last (steady state) and including the consumer-group join.
The broker and Postgres are private instances unless CDC_TEST_KAFKA_BOOTSTRAP /
CDC_TEST_POSTGRES_DSN point elsewhere.

    just bench-db            # or: .venv/bin/python bench/kafka_to_db.py --events 300000
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from types import SimpleNamespace

from _orders import COLUMNS  # bench/ is on sys.path when run as a script
from confluent_kafka.admin import AdminClient, NewTopic

from cdc_bridge.config import BridgeSection, KafkaSection
from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.events import CONNECTOR_POSTGRES, ChangeEvent, TableSchema
from cdc_bridge.kafka import EventProducer
from cdc_bridge.routes import build_workers
from cdc_bridge.sinks.database.config import DatabaseRouteConfig, DatabaseSinkConfig
from cdc_bridge.testing.services import start_kafka, start_postgres


def fill(
    bootstrap: str, topic_prefix: str, n: int, partitions: int, schemas: bool = True
) -> TableSchema:
    table = TableSchema(
        CONNECTOR_POSTGRES, topic_prefix, "shop", "public", "orders", COLUMNS, ("id",)
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(table.topic, num_partitions=partitions)])[table.topic].result()
    encoder = EnvelopeEncoder(schemas=schemas)
    producer = EventProducer(bootstrap)
    inserts = int(n * 0.8)
    chunk: list[ChangeEvent] = []
    for i in range(n):
        rid = i if i < inserts else (i * 7919) % inserts
        row = {
            "id": rid,
            "customer_id": rid % 5000,
            "email": f"customer{rid % 5000}@example.com",
            "status": "paid" if i < inserts else "shipped",
            "total": "AYag",
            "created_at": 1_700_000_000_000_000 + rid,
            "note": "x" * 40,
        }
        op = "c" if i < inserts else "u"
        chunk.append(
            ChangeEvent(
                table, op, None, row, 1_700_000_000_000_000, {"schema": "public", "table": "orders"}
            )
        )
        if len(chunk) == 10_000:
            producer.send(encoder.encode(chunk))
            chunk = []
    producer.send(encoder.encode(chunk))
    assert producer.close(120)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument(
        "--consumer",
        default="{}",
        help="extra [kafka.consumer] properties as JSON, e.g. '{\"fetch.queue.backoff.ms\": 1000}'",
    )
    ap.add_argument(
        "--no-schemas",
        action="store_true",
        help="bare payloads (schemas.enable=false): the target table is created up front",
    )
    args = ap.parse_args()

    kafka = start_kafka()
    pg = start_postgres()
    try:
        dsn = pg.create_database(f"bench_{os.getpid()}")
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        prefix = f"bench{os.getpid()}"
        t0 = time.perf_counter()
        table = fill(kafka.bootstrap, prefix, args.events, args.partitions, not args.no_schemas)
        if args.no_schemas:
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, email text,"
                    " status text, total text, created_at bigint, note text)"
                )
            engine.dispose()
        fill_s = time.perf_counter() - t0

        cfg = SimpleNamespace(
            bridge=BridgeSection(name="bench"),
            kafka=KafkaSection(
                bootstrap_servers=kafka.bootstrap,
                consumer={
                    "session.timeout.ms": 10000,
                    "max.partition.fetch.bytes": 16777216,
                    **json.loads(args.consumer),
                },
            ),
            sinks=[DatabaseSinkConfig(name="pg", kind="database", url=url)],
            routes=[
                DatabaseRouteConfig.model_validate(
                    {
                        "name": "bench",
                        "from": table.topic,
                        "to": "pg",
                        "batch_size": args.batch_size,
                        "linger_ms": 200,
                    }
                )
            ],
        )
        (worker,) = build_workers(cfg)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        started = time.perf_counter()
        thread.start()
        first = None
        first_count = 0
        while worker.applied + worker.skipped + worker.dead < args.events:
            if first is None and worker.applied:
                first, first_count = time.perf_counter(), worker.applied
            time.sleep(0.01)
            if not thread.is_alive():
                raise SystemExit("route worker stopped")
        end = time.perf_counter()
        stop.set()
        thread.join(30)
        worker.close()
        assert first is not None
        steady = (worker.applied - first_count) / (end - first)
        overall = worker.applied / (end - started)
        result = {
            "bench": "kafka_to_db",
            "events": args.events,
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "target": "postgresql",
            "mode": "upsert",
            "schemas": not args.no_schemas,
            "rows_per_s": round(steady),
            "rows_per_s_incl_group_join": round(overall),
            "batches": worker.batches,
            "dead_letters": worker.dead,
            "fill_s": round(fill_s, 2),
        }
        print(json.dumps(result))
        print(
            f"kafka -> postgres upserts: {steady:,.0f} rows/s steady state "
            f"({overall:,.0f} rows/s including the consumer-group join), "
            f"{args.events:,} events in {worker.batches} batches"
        )
    finally:
        pg.stop()
        kafka.stop()


if __name__ == "__main__":
    main()
