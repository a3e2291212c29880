"""The coordinator's decisions, with a minimal adapter over an in-memory "database" (the one
docs/architecture.md walks through) and a real broker: snapshot modes and markers, resuming a
cursor, the hand-off, lost positions under each policy, and the retry policy's reset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import pytest
from pydantic import Field

from cdc_bridge.config import SourceConfigBase
from cdc_bridge.errors import RetriableError
from cdc_bridge.events import ChangeEvent, Column, TableSchema
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.coordinator import (
    CaptureAdapter,
    PositionLost,
    SnapshotChunk,
    SnapshotCursor,
    SnapshotReader,
)
from cdc_bridge.testing.services import KafkaService
from cdc_bridge.testing.sources import OffsetStoreDouble, SourceThread

# -- the example source: a "database" of tables (dicts) and a change log (a list) ---------------


class MemoryDatabase:
    """Tables of ``id -> value`` and a log of ``(position, table, id, value)``; positions before
    ``horizon`` were purged."""

    def __init__(self, tables: dict[str, dict[int, int]]) -> None:
        self.tables = tables
        self.log: list[tuple[int, str, int, int]] = []
        self.horizon = 0

    @property
    def end(self) -> int:
        return len(self.log)

    def write(self, table: str, i: int, v: int) -> None:
        self.tables[table][i] = v
        self.log.append((self.end, table, i, v))


DATABASES: dict[str, MemoryDatabase] = {}


class MemoryConfig(SourceConfigBase):
    kind: Literal["memory"] = Field("memory", description="Source kind.", examples=["memory"])
    dsn: str = Field(description="Name of the in-memory database.", examples=["shop"])  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class MemoryOffset:
    """Where to resume: the log position, plus the cursor of an unfinished snapshot."""

    position: int
    snapshot: SnapshotCursor | None = None

    def with_snapshot(self, cursor: SnapshotCursor | None) -> MemoryOffset:
        return replace(self, snapshot=cursor)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"position": self.position}
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryOffset:
        raw = d.get("snapshot")
        return cls(int(d["position"]), SnapshotCursor.from_dict(raw) if raw else None)


def _schema(source: str, table: str) -> TableSchema:
    columns = (
        Column("id", {"type": "int32", "optional": False}),
        Column("v", {"type": "int32", "optional": False}),
    )
    return TableSchema("postgresql", source, "mem", "public", table, columns, ("id",))


class MemoryReader(SnapshotReader):
    def __init__(self, source: str, db: MemoryDatabase, hand_off: MemoryOffset) -> None:
        self.source, self.db, self.hand_off = source, db, hand_off
        self.view = {t: dict(rows) for t, rows in db.tables.items()}  # the consistent view
        self.reads: list[tuple[str, Any]] = []

    def tables(self) -> list[str]:
        return sorted(self.view)

    def read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        self.reads.append((table, after))
        keys = sorted(k for k in self.view[table] if after is None or k > after)
        schema = _schema(self.source, table)
        for n in range(0, len(keys), 2):
            chunk = keys[n : n + 2]
            events = [
                ChangeEvent(schema, "r", None, {"id": k, "v": self.view[table][k]}, 0, {}, "true")
                for k in chunk
            ]
            yield SnapshotChunk(events, chunk[-1])


class MemorySource(CaptureAdapter):
    kind = "memory"
    offset_type = MemoryOffset

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self.db = DATABASES[config.dsn]
        self.readers: list[MemoryReader] = []
        self.failures: list[str] = []  # what stream() should raise next, in order
        self.forgotten = 0
        self.open_failures = 0  # open_snapshot raises RetriableError this many times

    def prepare(self, ctx: SourceContext | None) -> None:
        pass

    def position_now(self, ctx: SourceContext) -> MemoryOffset:
        return MemoryOffset(self.db.end)

    def resume(self, ctx: SourceContext, stored: MemoryOffset) -> MemoryOffset:
        if stored.position < self.db.horizon:
            raise PositionLost(f"log position {stored.position} was purged")
        return stored

    def forget_position(self, ctx: SourceContext) -> None:
        self.forgotten += 1

    def open_snapshot(self, ctx: SourceContext, resume: MemoryOffset | None) -> MemoryReader:
        if self.open_failures:
            self.open_failures -= 1
            raise RetriableError("the snapshot connection broke")
        hand_off = resume.with_snapshot(None) if resume else MemoryOffset(self.db.end)
        reader = MemoryReader(self.name, self.db, hand_off)
        self.readers.append(reader)
        return reader

    def stream(self, ctx: SourceContext, start: MemoryOffset) -> None:
        if self.failures:
            kind = self.failures.pop(0)
            if kind == "connected":
                ctx.stream_established()
            raise RetriableError(f"connection broke ({kind})")
        ctx.stream_established()
        position = start.position
        while not ctx.stopping.is_set():
            if position < self.db.end:
                batch = self.db.log[position:]
                position = batch[-1][0] + 1
                events = [
                    ChangeEvent(_schema(self.name, t), "c", None, {"id": i, "v": v}, 0, {})
                    for _p, t, i, v in batch
                ]
                ctx.emit(events, MemoryOffset(position))
            ctx.maybe_checkpoint()
            time.sleep(0.01)


# -- tests -----------------------------------------------------------------------------------------


@pytest.fixture
def db(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"db{id(request)}"
    DATABASES[name] = MemoryDatabase({"a": {1: 1, 2: 2, 3: 3}, "b": {}, "c": {7: 7, 8: 8}})
    yield name
    del DATABASES[name]


def _run(
    kafka: KafkaService, dsn: str, store: OffsetStoreDouble | None = None, **kw: Any
) -> SourceThread:
    config = MemoryConfig.model_validate({"name": f"mem-{dsn}", "kind": "memory", "dsn": dsn, **kw})
    return SourceThread(MemorySource(config), kafka.bootstrap, store)


def test_snapshot_then_hand_off_to_the_stream(kafka: KafkaService, db: str) -> None:
    store = OffsetStoreDouble()
    with _run(kafka, db, store) as running:
        running.wait_streaming()
        DATABASES[db].write("b", 5, 50)  # after the hand-off: streamed from position 0
        deadline = time.monotonic() + 10
        while store.offsets.get(running.ctx.name) != {"position": 1}:
            running.ctx.checkpoint()
            assert time.monotonic() < deadline, store.offsets
            time.sleep(0.05)
        source = running.source
        assert isinstance(source, MemorySource)
        assert source.readers[0].reads == [("a", None), ("b", None), ("c", None)]
        rows = {t: s["rows"] for t, s in source.snapshot_status().items()}
        assert rows == {"a": 3, "b": 0, "c": 2}


def test_markers_are_set_by_the_coordinator(kafka: KafkaService, db: str) -> None:
    captured: list[ChangeEvent] = []
    orig = MemoryReader.read

    def spy(self: MemoryReader, table: str, after: Any) -> Iterator[SnapshotChunk]:
        for chunk in orig(self, table, after):
            captured.extend(chunk.events)
            yield chunk

    MemoryReader.read = spy  # type: ignore[method-assign]
    try:
        with _run(kafka, db, snapshot="initial_only") as running:
            running.thread.join(20)
            assert running.error is None and not running.thread.is_alive()
    finally:
        MemoryReader.read = orig  # type: ignore[method-assign]
    marks = [(e.table.table, e.after["id"], e.snapshot) for e in captured]
    assert marks == [
        ("a", 1, "first"),
        ("a", 2, "true"),
        ("a", 3, "last_in_data_collection"),
        ("c", 7, "first_in_data_collection"),
        ("c", 8, "last"),
    ]


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        # Debezium's "first table" is the first of the list even when it is empty: no "first"
        (
            {"a": {}, "b": {1: 1, 2: 2}, "c": {3: 3}},
            [
                ("b", 1, "first_in_data_collection"),
                ("b", 2, "last_in_data_collection"),
                ("c", 3, "last"),
            ],
        ),
        # a one-row first table keeps "first"; "last" goes to the last row even when the
        # tables after it are empty; a one-row table in between is last_in_data_collection
        (
            {"a": {1: 1}, "b": {2: 2}, "c": {3: 3, 4: 4}, "d": {}},
            [
                ("a", 1, "first"),
                ("b", 2, "last_in_data_collection"),
                ("c", 3, "first_in_data_collection"),
                ("c", 4, "last"),
            ],
        ),
    ],
)
def test_markers_follow_debezium_at_the_edges(
    kafka: KafkaService, tables: dict[str, dict[int, int]], expected: list[Any]
) -> None:
    name = f"edge{time.monotonic_ns()}"
    DATABASES[name] = MemoryDatabase(tables)
    captured: list[ChangeEvent] = []
    orig = MemoryReader.read

    def spy(self: MemoryReader, table: str, after: Any) -> Iterator[SnapshotChunk]:
        for chunk in orig(self, table, after):
            captured.extend(chunk.events)
            yield chunk

    MemoryReader.read = spy  # type: ignore[method-assign]
    try:
        with _run(kafka, name, snapshot="initial_only") as running:
            running.thread.join(20)
            assert running.error is None and not running.thread.is_alive()
    finally:
        MemoryReader.read = orig  # type: ignore[method-assign]
        del DATABASES[name]
    assert [(e.table.table, e.after["id"], e.snapshot) for e in captured] == expected


def test_an_unfinished_snapshot_resumes_after_its_cursor(kafka: KafkaService, db: str) -> None:
    store = OffsetStoreDouble()
    name = f"mem-{db}"
    store.offsets[name] = MemoryOffset(0, SnapshotCursor(("a",), "c", 7, 4)).to_dict()
    with _run(kafka, db, store) as running:
        running.wait_streaming()
        source = running.source
        assert isinstance(source, MemorySource)
        # the interrupted table continues first, after its last key; then the rest
        assert source.readers[0].reads == [("c", 7), ("b", None)]


def test_never_streams_from_now_and_initial_only_never_streams(
    kafka: KafkaService, db: str
) -> None:
    with _run(kafka, db, snapshot="never") as running:
        running.wait_streaming()
        assert isinstance(running.source, MemorySource) and running.source.readers == []
    with _run(kafka, db, snapshot="initial_only") as running:
        running.thread.join(20)
        assert running.error is None and running.ctx.established == 0


@pytest.mark.parametrize("policy", ["fail", "resnapshot"])
def test_lost_position(kafka: KafkaService, db: str, policy: str) -> None:
    store = OffsetStoreDouble()
    store.offsets[f"mem-{db}"] = MemoryOffset(1).to_dict()
    DATABASES[db].horizon = 5
    running = _run(kafka, db, store, on_position_lost=policy).start()
    try:
        if policy == "fail":
            running.thread.join(20)
            assert isinstance(running.error, PositionLost)
            text = str(running.error)
            assert f"source mem-{db}: position lost: log position 1 was purged" in text
            assert 'on_position_lost = "resnapshot"' in text
        else:
            running.wait_streaming()
            source = running.source
            assert isinstance(source, MemorySource)
            assert source.forgotten == 1 and len(source.readers) == 1
            assert running.ctx.load_offset() is not None
    finally:
        running.stop()


def test_backoff_grows_then_starts_over_after_a_reconnect(
    kafka: KafkaService, db: str, caplog: pytest.LogCaptureFixture
) -> None:
    running = _run(kafka, db, snapshot="never", retry_initial_delay_ms=10)
    source = running.source
    assert isinstance(source, MemorySource)
    source.failures = ["refused", "refused", "connected", "refused"]
    with caplog.at_level("WARNING"), running:
        running.wait_streaming()
        deadline = time.monotonic() + 10
        while source.failures or running.ctx.established < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    attempts = [
        r.getMessage().rsplit("(attempt ", 1)[1].rstrip(")")
        for r in caplog.records
        if "retrying in" in r.getMessage()
    ]
    # two refusals; a stream that broke after connecting starts a fresh outage at 1
    assert attempts == ["1", "2", "1", "2"], attempts


def test_retry_max_attempts_gives_up(kafka: KafkaService, db: str) -> None:
    running = _run(kafka, db, snapshot="never", retry_initial_delay_ms=1, retry_max_attempts=2)
    source = running.source
    assert isinstance(source, MemorySource)
    source.failures = ["refused"] * 5
    running.start()
    running.thread.join(20)
    assert running.error is not None and "giving up after 2 attempts" in str(running.error)
    running.stop()


def test_a_passing_failure_during_a_resnapshot_is_retried(kafka: KafkaService, db: str) -> None:
    store = OffsetStoreDouble()
    store.offsets[f"mem-{db}"] = MemoryOffset(1).to_dict()
    DATABASES[db].horizon = 5
    running = _run(kafka, db, store, on_position_lost="resnapshot", retry_initial_delay_ms=10)
    source = running.source
    assert isinstance(source, MemorySource)
    source.open_failures = 1
    with running:
        running.wait_streaming()
        assert running.error is None and source.open_failures == 0
        assert len(source.readers) == 1
