"""Change documents -> ChangeEvent -> Debezium records, in-process: the MongoDB hot path without
the network. Prints one JSON line and a human line.

    python bench/mongodb_convert.py [--events N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import bson
from bson import SON, Decimal128, Int64, ObjectId, Timestamp

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.sources.mongodb.convert import ChangeConverter


def change(i: int) -> dict:
    oid = ObjectId()
    doc = SON(
        [
            ("_id", oid),
            ("orderNo", Int64(1_000_000 + i)),
            ("customer", SON([("name", f"Customer {i}"), ("email", f"c{i}@example.com")])),
            (
                "items",
                [
                    SON(
                        [
                            ("sku", f"SKU-{j}"),
                            ("qty", j),
                            ("price", Decimal128(f"{(i * 7 + j) % 5000}.99")),
                        ]
                    )
                    for j in range(3)
                ],
            ),
            ("total", 59.97),
            ("createdAt", dt.datetime(2024, 5, 1, 12, 0, 0, 123000)),
            ("status", "NEW"),
        ]
    )
    raw = SON(
        [
            (
                "_id",
                {
                    "_data": f"82{1714564800 + i:08X}00000001"
                    + "2B022C0100296E5A1004"
                    + "AB" * 16
                    + "46645F6964006400"
                    + str(oid)
                    + "0004"
                },
            ),
            ("operationType", "insert"),
            ("clusterTime", Timestamp(1714564800 + i, 1)),
            ("wallTime", dt.datetime(2024, 5, 1, 12, 0, 0)),
            ("fullDocument", doc),
            ("ns", SON([("db", "shop"), ("coll", "orders")])),
            ("documentKey", SON([("_id", oid)])),
        ]
    )
    return bson.decode(bson.encode(raw))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    docs = [change(i) for i in range(args.events)]
    conv = ChangeConverter("bench")
    encoder = EnvelopeEncoder(schemas=True)
    t0 = time.perf_counter()
    events = [conv.convert(d) for d in docs]
    t1 = time.perf_counter()
    records = encoder.encode(events)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    result = {
        "bench": "mongodb_convert",
        "events": args.events,
        "convert_events_per_s": round(args.events / (t1 - t0)),
        "convert_and_encode_events_per_s": round(args.events / (t2 - t0)),
        "value_bytes_avg": round(sum(len(r[2] or b"") for r in records) / len(records)),
    }
    print(json.dumps(result))
    print(
        f"mongodb convert: {result['convert_events_per_s']:,} events/s; "
        f"convert + encode: {result['convert_and_encode_events_per_s']:,} events/s "
        f"({result['value_bytes_avg']} bytes/value with schemas)"
    )


if __name__ == "__main__":
    main()
