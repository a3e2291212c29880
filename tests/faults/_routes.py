"""Helpers of the route and sink fault tests: a small keyed table, its envelopes on a topic,
route workers in threads against a real target, and the final comparison (target rows and
dead letters, value for value)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from confluent_kafka import Producer

from cdc_bridge.dlq import DeadLetter, dlq_topic, read_dead_letters
from cdc_bridge.envelope import Record
from cdc_bridge.events import ChangeEvent, TableSchema
from cdc_bridge.kafka import DEFAULT_PRODUCER_CONFIG
from cdc_bridge.sinks.database.sink import normalize_url
from tests.routes_support import col, create_topic, encode, event, table

__all__ = [
    "ITEMS",
    "assert_dead_letters",
    "assert_target",
    "dead_letters",
    "item",
    "item_events",
    "items_topic",
    "produce_records",
    "target_rows",
]

#: ``items(id int key, qty string in the event, name string)``; the target may declare
#: ``qty`` as an integer so that a non-numeric ``qty`` is a wrong-typed value.
ITEMS: TableSchema = table(
    "items",
    (col("id", "int32", False), col("qty", "string"), col("name", "string")),
)


def item(i: int, qty: str | None = None, name: str | None = None) -> dict[str, Any]:
    return {"id": i, "qty": str(i * 10) if qty is None else qty, "name": name or f"item {i}"}


def item_events(rows: Iterable[Mapping[str, Any]], op: str = "c") -> list[ChangeEvent]:
    return [event(ITEMS, op, None, dict(r)) for r in rows]


def items_topic(topic_name: Any, bootstrap: str) -> str:
    topic = topic_name("items")
    create_topic(bootstrap, topic)
    return topic


def produce_records(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    """Produce (ignored topic, key, value) records to ``topic`` in order (records up to
    16 MB, like the sources' producer allows)."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "message.max.bytes": DEFAULT_PRODUCER_CONFIG["message.max.bytes"],
            "compression.type": "lz4",
        }
    )
    errors: list[Any] = []
    n = 0
    for _t, k, v in records:
        p.produce(topic, v, k, partition=0, on_delivery=lambda e, m: e and errors.append(e))
        n += 1
    assert p.flush(30) == 0
    assert not errors, errors
    return n


def encoded(events: list[ChangeEvent]) -> list[Record]:
    return encode(events)


def target_rows(url: str, table_name: str) -> dict[int, dict[str, Any]]:
    """id -> row of the target table (values as the target returns them); {} when the
    table does not exist (yet)."""
    engine = sa.create_engine(normalize_url(url))
    try:
        if not sa.inspect(engine).has_table(table_name):
            return {}
        with engine.connect() as conn:
            result = conn.exec_driver_sql(f'SELECT * FROM "{table_name}" ORDER BY id')
            return {r._mapping["id"]: dict(r._mapping) for r in result}
    finally:
        engine.dispose()


def assert_target(url: str, table_name: str, expected: Mapping[int, Mapping[str, Any]]) -> None:
    """The target holds exactly ``expected``: no missing row, no extra row, every value equal."""
    got = target_rows(url, table_name)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = [
        (k, got[k], dict(expected[k]))
        for k in sorted(set(got) & set(expected))
        if {c: got[k].get(c) for c in expected[k]} != dict(expected[k])
    ]
    assert not missing and not extra and not wrong, (
        f"target {table_name}: missing {missing[:10]}, extra {extra[:10]}, wrong {wrong[:3]}"
    )


def dead_letters(bootstrap: str, bridge: str, route: str) -> list[DeadLetter]:
    return list(read_dead_letters(bootstrap, dlq_topic(bridge, route)))


def assert_dead_letters(
    bootstrap: str, bridge: str, route: str, topic: str, offsets: Iterable[int]
) -> list[DeadLetter]:
    """The route's dead-letter topic holds exactly the records at ``offsets`` of ``topic``
    (one letter each, with their original bytes), and nothing else."""
    letters = dead_letters(bootstrap, bridge, route)
    got = sorted((d.topic, d.offset) for d in letters)
    assert got == sorted((topic, o) for o in offsets), f"dead letters: {got}"
    return letters
