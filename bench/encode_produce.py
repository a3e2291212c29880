"""Benchmark: encode change events as Debezium envelopes and produce them to the broker.

Measures, for ~200-byte rows: encode-only events/s, encode+produce events/s (send returns),
and events/s until every record was acknowledged by the broker. The broker is the embedded
one (tansu) unless CDC_TEST_KAFKA_BOOTSTRAP points elsewhere.

    just bench-encode            # or: .venv/bin/python bench/encode_produce.py --events 300000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import time

from _orders import COLUMNS  # bench/ is on sys.path when run as a script

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.events import CONNECTOR_POSTGRES, ChangeEvent, TableSchema
from cdc_bridge.kafka import EventProducer, TopicSettings
from cdc_bridge.testing.services import start_kafka


def make_events(n: int, table: TableSchema) -> list[ChangeEvent]:
    events = []
    for i in range(n):
        row = {
            "id": i,
            "customer_id": i % 5000,
            "email": f"customer{i % 5000}@example.com",
            "status": "paid",
            "total": "AYag",
            "created_at": 1_700_000_000_000_000 + i,
            "note": "n" * 90,
        }
        source = {
            "schema": "public",
            "table": "orders",
            "txId": 1000 + i // 10,
            "lsn": 4_000_000 + i * 64,
            "xmin": None,
        }
        events.append(ChangeEvent(table, "c", None, row, 1_700_000_000_000_000 + i, source))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument(
        "--batch", type=int, default=2_000, help="events per send() (one transaction)"
    )
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--no-schemas", action="store_true", help="JsonConverter schemas.enable=false"
    )
    args = parser.parse_args()

    table = TableSchema(
        CONNECTOR_POSTGRES, "bench", "shop", "public", f"orders_{os.getpid()}", COLUMNS, ("id",)
    )
    events = make_events(args.events, table)
    encoder = EnvelopeEncoder(schemas=not args.no_schemas)
    row_bytes = len(json.dumps(events[0].after))
    gc.collect()
    gc.freeze()  # the pre-built events are long-lived; keep the collector off them, as a source would

    t0 = time.perf_counter()
    for i in range(0, args.events, args.batch):
        encoder.encode(events[i : i + args.batch])
    encode_s = time.perf_counter() - t0

    with start_kafka() as kafka:
        producer = EventProducer(kafka.bootstrap, topics=TopicSettings(partitions=args.partitions))
        producer.admin.ensure([table.topic])
        # warm-up: metadata, connections
        producer.send(encoder.encode(events[:100]), -1)
        producer.flush(30)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(0, args.events, args.batch):
            producer.send(encoder.encode(events[i : i + args.batch]), i + args.batch)
        sent_s = time.perf_counter() - t0
        producer.flush(120)
        while producer.safe_offset() != args.events:
            time.sleep(0.001)
        acked_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        producer.close()

    result = {
        "bench": "encode_produce",
        "events": args.events,
        "row_json_bytes": row_bytes,
        "schemas": not args.no_schemas,
        "partitions": args.partitions,
        "encode_events_per_s": round(args.events / encode_s),
        "encode_produce_events_per_s": round(args.events / sent_s),
        "acked_events_per_s": round(args.events / acked_s),
        "bridge_cpu_s_per_100k": round(cpu_s / args.events * 100_000, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    print(
        f"encode {result['encode_events_per_s']:,}/s | encode+produce {result['encode_produce_events_per_s']:,}/s"
        f" | acknowledged by broker {result['acked_events_per_s']:,}/s | peak RSS {result['peak_rss_mb']} MB"
    )


if __name__ == "__main__":
    main()
