"""Helpers for route and database-sink tests: a table with every type, Connect payload
encoding, producing envelopes to Kafka, running route workers in threads."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cdc_bridge.config import BridgeSection, KafkaSection
from cdc_bridge.envelope import EnvelopeEncoder, Record
from cdc_bridge.events import ChangeEvent, Column, TableSchema
from cdc_bridge.routes import RouteWorker, build_workers
from cdc_bridge.sinks.database.config import DatabaseRouteConfig, DatabaseSinkConfig

EPOCH = dt.datetime(1970, 1, 1)


def col(field: str, type_: str, optional: bool = True, **extra: Any) -> Column:
    return Column(field, {"type": type_, "optional": optional, **extra})


ALL_TYPES = (
    col("id", "int32", False),
    col("name", "string"),
    col("country", "string"),
    col(
        "amount",
        "bytes",
        name="org.apache.kafka.connect.data.Decimal",
        version=1,
        parameters={"scale": "2", "connect.decimal.precision": "12"},
    ),
    col("created", "int64", name="io.debezium.time.MicroTimestamp", version=1),
    col("updated_at", "string", name="io.debezium.time.ZonedTimestamp", version=1),
    col("birthday", "int32", name="io.debezium.time.Date", version=1),
    col("wake", "int64", name="io.debezium.time.MicroTime", version=1),
    col("doc", "string", name="io.debezium.data.Json", version=1),
    col("uid", "string", name="io.debezium.data.Uuid", version=1),
    col("blob", "bytes"),
    col("active", "boolean"),
    col("score", "double"),
    col("big", "int64"),
)


def table(
    name: str = "customers",
    columns: tuple[Column, ...] = ALL_TYPES,
    source: str = "shop",
    namespace: str = "public",
    key: tuple[str, ...] = ("id",),
) -> TableSchema:
    return TableSchema("postgresql", source, "shopdb", namespace, name, columns, key)


def enc_decimal(value: decimal.Decimal, scale: int = 2) -> str:
    unscaled = int(value.scaleb(scale))
    n = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def row(i: int, **over: Any) -> dict[str, Any]:
    """A row of ALL_TYPES in Connect payload form, deterministic in ``i``."""
    created = dt.datetime(2024, 1, 1, 12, 0, 0, 123456) + dt.timedelta(seconds=i)
    r = {
        "id": i,
        "name": f"name {i}",
        "country": "US" if i % 2 else "DE",
        "amount": enc_decimal(decimal.Decimal(i) + decimal.Decimal("0.25")),
        "created": (created - EPOCH) // dt.timedelta(microseconds=1),
        "updated_at": f"2024-02-0{1 + i % 9}T10:00:00.5+00:00",
        "birthday": 10_000 + i,
        "wake": (7 * 3600 + i) * 1_000_000 + 250,
        "doc": f'{{"a": {i}, "b": [1, 2]}}',
        "uid": str(uuid.UUID(int=i + 1)),
        "blob": base64.b64encode(bytes([i % 256, 0, 255])).decode(),
        "active": bool(i % 3),
        "score": i / 4,
        "big": 2**40 + i,
    }
    r.update(over)
    return r


def event(
    t: TableSchema, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> ChangeEvent:
    return ChangeEvent(
        t,
        op,
        before,
        after,
        ts_us=1_700_000_000_000_000,
        source={
            "schema": t.namespace,
            "table": t.table,
            "txId": 1,
            "lsn": 1,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        },
    )


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions)])
    for f in fut.values():
        f.result()


def produce(bootstrap: str, records: Iterable[Record], topic: str | None = None) -> int:
    """Produce (topic, key, value) records, keyed partitioning like the sources; wait."""
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    n = 0
    errors: list[Any] = []
    for t, k, v in records:
        p.produce(topic or t, v, k, on_delivery=lambda e, m: e and errors.append(e))
        n += 1
        if n % 10_000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors
    return n


def encode(
    events: Sequence[ChangeEvent], *, schemas: bool = True, topic: str | None = None
) -> list[Record]:
    recs = EnvelopeEncoder(schemas=schemas).encode(events)
    if topic is not None:
        recs = [(topic, k, v) for _t, k, v in recs]
    return recs


def config(
    bootstrap: str,
    url: str,
    routes: list[dict[str, Any]],
    *,
    bridge: str = "test",
    consumer: dict[str, Any] | None = None,
) -> SimpleNamespace:
    """A bridge config with one database sink named "db" (until the config loader is used)."""
    return SimpleNamespace(
        bridge=BridgeSection(name=bridge),
        kafka=KafkaSection(
            bootstrap_servers=bootstrap,
            consumer={
                "session.timeout.ms": 2000,
                "heartbeat.interval.ms": 300,
                **(consumer or {}),
            },
        ),
        sinks=[DatabaseSinkConfig(name="db", kind="database", url=url)],
        routes=[
            DatabaseRouteConfig.model_validate({"to": "db", "linger_ms": 50, **r}) for r in routes
        ],
    )


class Running:
    """Route workers running in threads (like the runtime does)."""

    def __init__(self, workers: list[RouteWorker]) -> None:
        self.workers = workers
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in workers]
        for t in self.threads:
            t.start()

    def _run(self, w: RouteWorker) -> None:
        try:
            w.run(self.stop)
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        for w in self.workers:
            w.close()
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_routes(cfg: SimpleNamespace) -> Running:
    return Running(build_workers(cfg))


def wait_for(cond: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def expected_row(i: int, **over: Any) -> dict[str, Any]:
    """The Python values ``row(i)`` stands for (computed independently of the sink)."""
    r = {
        "id": i,
        "name": f"name {i}",
        "country": "US" if i % 2 else "DE",
        "amount": decimal.Decimal(i) + decimal.Decimal("0.25"),
        "created": dt.datetime(2024, 1, 1, 12, 0, 0, 123456) + dt.timedelta(seconds=i),
        "updated_at": dt.datetime(2024, 2, 1 + i % 9, 10, 0, 0, 500000, tzinfo=dt.UTC),
        "birthday": dt.date(1970, 1, 1) + dt.timedelta(days=10_000 + i),
        "wake": dt.time(7, 0, i % 60, 250) if i < 60 else None,
        "doc": {"a": i, "b": [1, 2]},
        "uid": uuid.UUID(int=i + 1),
        "blob": bytes([i % 256, 0, 255]),
        "active": bool(i % 3),
        "score": i / 4,
        "big": 2**40 + i,
    }
    r.update(over)
    return r


def norm(v: Any) -> Any:
    """One comparable form for values read back from any target dialect."""
    import json

    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):  # MySQL TIME comes back as a timedelta
        return (dt.datetime(2000, 1, 1) + v).time().isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v.normalize()) if v == v.to_integral() else str(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, str):
        if v[:1] in "{[":
            try:
                return json.loads(v)
            except ValueError:
                return v
        if len(v) >= 19 and v[4:5] == "-" and v[13:14] == ":":
            try:
                return norm(dt.datetime.fromisoformat(v))
            except ValueError:
                return v
        if len(v) == 10 and v[4:5] == "-" and v[7:8] == "-":
            return v
        if v.replace(".", "", 1).replace("-", "", 1).isdigit() and "." in v:
            return norm(decimal.Decimal(v))
    return v


def norm_row(r: dict[str, Any]) -> dict[str, Any]:
    return {k: norm(v) for k, v in r.items()}
