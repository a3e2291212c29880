"""Test harness for the Postgres source: run it in a thread against a real broker, read topics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.sources.postgres.source import PostgresSource
from cdc_bridge.testing.sources import OffsetStoreDouble, SourceThread


class Running(SourceThread):
    """A PostgresSource on the shared thread runner."""

    source: PostgresSource

    def checkpoint(self) -> Any:
        return self.ctx.checkpoint()


def make_config(dsn: str, name: str, **kw: Any) -> PostgresSourceConfig:
    return PostgresSourceConfig.model_validate({"name": name, "kind": "postgres", "dsn": dsn, **kw})


@contextmanager
def run_source(
    bootstrap: str,
    config: PostgresSourceConfig,
    store: OffsetStoreDouble | None = None,
    *,
    wait_streaming: bool = True,
    stop_at_start: bool = False,
) -> Iterator[Running]:
    running = Running(PostgresSource(config), bootstrap, store)
    if stop_at_start:
        running.ctx.stopping.set()
    running.start()
    try:
        if wait_streaming:
            source = running.source
            wait_for(
                lambda: (
                    (source.repl is not None and source.repl.streaming)
                    or running.error is not None
                    or not running.thread.is_alive()
                ),
                30,
            )
            if running.error is not None:
                raise running.error
        yield running
    finally:
        running.stop(15)
    if running.error is not None:
        raise running.error


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def read_topic(
    bootstrap: str, topic: str, expected: int, timeout: float = 30, settle: float = 0.3
) -> list[tuple[Any, Any]]:
    """(key, value) payload pairs (schema wrapper removed); waits for ``expected`` records, then
    a little longer so that extra records would show up."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{topic}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[Any, Any]] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    while time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=0.1):
            if msg.error() is None:
                k, v = msg.key(), msg.value()
                out.append(
                    (
                        orjson.loads(k) if k is not None else None,
                        orjson.loads(v) if v is not None else None,
                    )
                )
        if len(out) >= expected:
            if settle_until is None:
                settle_until = time.monotonic() + settle
            elif time.monotonic() >= settle_until:
                break
    consumer.close()
    return out


def payload(record: tuple[Any, Any]) -> Any:
    v = record[1]
    return v["payload"] if isinstance(v, dict) and "payload" in v else v
