"""Helpers for the MySQL source tests: run a source in a thread, read its topics back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from cdc_bridge.sources.mysql.config import MySqlSourceConfig
from cdc_bridge.sources.mysql.source import MySqlSource
from cdc_bridge.testing.sources import OffsetStoreDouble, SourceThread


def make_config(
    db: Any, name: str, tables: list[str] | None = None, **kw: Any
) -> MySqlSourceConfig:
    dsn = f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/"
    return MySqlSourceConfig(
        name=name,
        kind="mysql",
        dsn=dsn,
        tables=tables,
        server_id=kw.pop("server_id", 0) or _next_id(),
        **kw,
    )


_ids = iter(range(7000, 100000))


def _next_id() -> int:
    return next(_ids)


class Running(SourceThread):
    """A MySqlSource on the shared thread runner; ``wait_streaming`` waits for the binlog
    connection, and leaving the block re-raises the source's error."""

    def __init__(
        self, config: MySqlSourceConfig, bootstrap: str, store: OffsetStoreDouble | None = None
    ) -> None:
        super().__init__(MySqlSource(config), bootstrap, store, producer={"linger.ms": 5})
        self.source: MySqlSource

    def wait_streaming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.source.binlog is None or self.source.binlog._conn is None:
            if self.error is not None:
                raise self.error
            assert time.monotonic() < deadline, "source did not start streaming"
            time.sleep(0.02)

    def __enter__(self) -> Running:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.error is not None and exc[0] is None:
            raise self.error


def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[tuple[Any, Any]]], bool],
    timeout: float = 30,
) -> list[tuple[Any, Any]]:
    """(key, value) JSON pairs of every partition of ``topic`` until ``until(records)``."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "t",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    out: list[tuple[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while True:
            md = c.list_topics(topic, timeout=5).topics.get(topic)
            if md is not None and md.partitions and md.error is None:
                break
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.1)
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        while not until(out):
            assert time.monotonic() < deadline, f"timed out on {topic}: got {len(out)} records"
            msgs = c.consume(1000, 0.2)
            for m in msgs:
                if m.error():
                    continue
                k = m.key()
                v = m.value()
                out.append((json.loads(k) if k else None, json.loads(v) if v is not None else None))
    finally:
        c.close()
    return out


def payloads(records: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """The value payloads (schemas on or off), tombstones dropped."""
    out = []
    for _k, v in records:
        if v is None:
            continue
        out.append(v["payload"] if isinstance(v, dict) and "payload" in v and "schema" in v else v)
    return out


def count(n: int) -> Callable[[list[Any]], bool]:
    return lambda recs: len(recs) >= n
