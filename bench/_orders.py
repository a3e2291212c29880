"""The 7-column order table (~230-byte rows) the benchmarks share."""

from __future__ import annotations

from cdc_bridge.events import Column

COLUMNS = (
    Column("id", {"type": "int64", "optional": False}),
    Column("customer_id", {"type": "int64", "optional": True}),
    Column("email", {"type": "string", "optional": True}),
    Column("status", {"type": "string", "optional": True}),
    Column(
        "total",
        {
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        },
    ),
    Column(
        "created_at",
        {
            "type": "int64",
            "optional": True,
            "name": "io.debezium.time.MicroTimestamp",
            "version": 1,
        },
    ),
    Column("note", {"type": "string", "optional": True}),
)
