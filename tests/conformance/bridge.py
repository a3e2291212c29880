"""The cdc-bridge side of a conformance test: read back every record a source wrote to the
broker under its topic prefix, as raw ``(topic, key bytes, value bytes)``."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from tests.conformance.debezium import Record

__all__ = ["read_prefix"]


def read_prefix(
    bootstrap: str,
    prefix: str,
    until: Callable[[list[Record]], bool],
    timeout: float = 30,
    settle: float = 0.5,
) -> list[Record]:
    """All records of the topics named ``prefix`` or ``prefix.*`` (in partition and offset
    order per topic) once ``until(records)`` holds, plus ``settle`` seconds so that extra
    records show up. Raises AssertionError on timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"conformance-{prefix}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    got: dict[tuple[str, int], list[tuple[int, Record]]] = {}
    assigned: set[tuple[str, int]] = set()
    next_scan = 0.0

    def records() -> list[Record]:
        return [r for tp in sorted(got) for _, r in sorted(got[tp], key=lambda x: x[0])]

    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= next_scan:
                md = consumer.list_topics(timeout=5)
                new = [
                    TopicPartition(name, p, 0)
                    for name, t in md.topics.items()
                    if (name == prefix or name.startswith(prefix + ".")) and not t.error
                    for p in t.partitions
                    if (name, p) not in assigned
                ]
                if new:
                    assigned.update((tp.topic, tp.partition) for tp in new)
                    consumer.incremental_assign(new)
                next_scan = now + 0.5
            for msg in consumer.consume(1000, timeout=0.1):
                if msg.error() is not None:
                    continue
                topic = msg.topic()
                assert topic is not None
                rec = (topic, msg.key(), msg.value())
                got.setdefault((topic, msg.partition() or 0), []).append((msg.offset() or 0, rec))
            if settle_until is None:
                if until(records()):
                    settle_until = time.monotonic() + settle
                elif time.monotonic() > deadline:
                    recs = records()
                    raise AssertionError(
                        f"cdc-bridge records under {prefix!r}: condition not met within "
                        f"{timeout}s ({len(recs)} records on {sorted({r[0] for r in recs})})"
                    )
            elif time.monotonic() >= settle_until:
                return records()
    finally:
        consumer.close()
