"""The initial snapshot: scan captured collections in ``_id`` order, resumably, then hand off.

Before scanning, the caller notes a resume point (a fresh change stream's post-batch resume
token). Each collection is read in ``_id`` order in batches; every batch is handed to Kafka
with an offset that carries the noted resume point plus the last ``_id`` of the batch, so a
restart continues after the last confirmed document instead of starting over. When every
collection is done, a final offset without snapshot progress hands over to streaming from the
noted point: changes made while the scan ran are then replayed (at-least-once, never missed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from bson import Timestamp, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from pymongo import ASCENDING, MongoClient

from cdc_bridge.events import SNAPSHOT_FIRST, SNAPSHOT_LAST, SNAPSHOT_TRUE, ChangeEvent
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.convert import ChangeConverter
from cdc_bridge.sources.mongodb.offset import MongoOffset

__all__ = ["Progress", "Snapshotter", "decode_id", "encode_id"]

log = logging.getLogger(__name__)

FIRST_IN_DATA_COLLECTION = "first_in_data_collection"
LAST_IN_DATA_COLLECTION = "last_in_data_collection"


def encode_id(value: Any) -> str:
    """An ``_id`` as canonical Extended JSON: round-trips every BSON type exactly."""
    return json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS)


def decode_id(text: str) -> Any:
    return json_util.loads(text, json_options=CANONICAL_JSON_OPTIONS)


class Progress:
    """Rows read, rate and ETA of one collection's scan, logged every few seconds."""

    def __init__(self, namespace: str, total: int, already: int = 0, every_s: float = 5.0) -> None:
        self.namespace = namespace
        self.total = total
        self.rows = already
        self._start_rows = already
        self._t0 = time.monotonic()
        self._next_log = self._t0 + every_s
        self._every = every_s

    def rate(self) -> float:
        elapsed = time.monotonic() - self._t0
        return (self.rows - self._start_rows) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        if rate <= 0 or self.total <= self.rows:
            return None
        return (self.total - self.rows) / rate

    def line(self) -> str:
        pct = f" ({100 * self.rows / self.total:.0f}%)" if self.total else ""
        eta = self.eta_s()
        eta_text = f", ETA {eta:.0f}s" if eta is not None else ""
        return f"snapshot {self.namespace}: {self.rows}/~{self.total} documents{pct}, {self.rate():.0f} docs/s{eta_text}"

    def add(self, n: int) -> None:
        self.rows += n
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + self._every
            log.info("%s", self.line())


def _batches(
    cursor: Iterator[dict[str, Any]], size: int
) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """(batch, is_last) pairs: one batch of lookahead tells the caller which batch ends the scan."""
    pending: list[dict[str, Any]] = []
    for doc in cursor:
        pending.append(doc)
        if len(pending) > size:
            yield pending[:size], False
            pending = pending[size:]
    yield pending, True


class Snapshotter:
    """Reads the captured collections of one source into ``op: "r"`` events."""

    def __init__(
        self,
        client: MongoClient[dict[str, Any]],
        config: MongoSourceConfig,
        converter: ChangeConverter,
    ) -> None:
        self.client = client
        self.config = config
        self.converter = converter
        self.rows = 0

    def run(
        self,
        ctx: SourceContext,
        noted: MongoOffset,
        collections: list[tuple[str, str]],
        checkpoint: Callable[[], None] | None = None,
    ) -> MongoOffset | None:
        """Scan (continuing ``noted.snapshot`` progress); the hand-off offset, or None if stopped."""
        progress = dict(noted.snapshot or {})
        done: list[str] = list(progress.get("done", []))
        ct = Timestamp(*noted.cluster_time) if noted.cluster_time else None
        skip_reads = "r" in self.config.skip_ops
        first = not done and "last_id" not in progress
        todo = [(db, c) for db, c in collections if f"{db}.{c}" not in done]
        for index, (db, coll) in enumerate(todo):
            ns = f"{db}.{coll}"
            last_collection = index == len(todo) - 1
            resume_after = (
                decode_id(progress["last_id"])
                if progress.get("ns") == ns and "last_id" in progress
                else _NO_ID
            )
            already = int(progress.get("rows", 0)) if resume_after is not _NO_ID else 0
            collection = self.client[db][coll]
            total = collection.estimated_document_count()
            meter = Progress(ns, total, already)
            cursor = collection.find(
                sort=[("_id", ASCENDING)], batch_size=self.config.snapshot_batch_size
            )
            cursor = cursor.hint([("_id", ASCENDING)])
            if resume_after is not _NO_ID:
                cursor = cursor.min([("_id", resume_after)])
                log.info(
                    "snapshot %s: continuing after _id %s (%d documents done)",
                    ns,
                    encode_id(resume_after),
                    already,
                )
            table = self.converter.table(db, coll)
            first_in_collection = resume_after is _NO_ID
            try:
                for batch, is_last in _batches(iter(cursor), self.config.snapshot_batch_size):
                    if ctx.stopping.is_set():
                        return None
                    if resume_after is not _NO_ID and batch and batch[0]["_id"] == resume_after:
                        batch = batch[1:]  # min() is inclusive
                    resume_after = _NO_ID
                    if not batch:
                        continue
                    events: list[ChangeEvent] = []
                    if not skip_reads:
                        snap = self.converter.snapshot_event
                        events = [snap(table, doc, ct, SNAPSHOT_TRUE) for doc in batch]
                        # Debezium's markers: first / first_in_data_collection / true /
                        # last_in_data_collection / last (the last of a collection wins).
                        if first:
                            events[0].snapshot = SNAPSHOT_FIRST
                            first = False
                        elif first_in_collection:
                            events[0].snapshot = FIRST_IN_DATA_COLLECTION
                        if is_last:
                            events[-1].snapshot = (
                                SNAPSHOT_LAST if last_collection else LAST_IN_DATA_COLLECTION
                            )
                    first_in_collection = False
                    meter.add(len(batch))
                    self.rows += len(batch)
                    offset = MongoOffset(
                        noted.resume_token,
                        noted.cluster_time,
                        snapshot={
                            "done": list(done),
                            "ns": ns,
                            "last_id": encode_id(batch[-1]["_id"]),
                            "rows": meter.rows,
                        },
                    )
                    ctx.emit(events, offset)
                    if checkpoint is not None:
                        checkpoint()
            finally:
                cursor.close()
            done.append(ns)
            log.info("snapshot %s: done, %d documents", ns, meter.rows)
            ctx.emit(
                [],
                MongoOffset(noted.resume_token, noted.cluster_time, snapshot={"done": list(done)}),
            )
        handoff = MongoOffset(noted.resume_token, noted.cluster_time)
        ctx.emit([], handoff)
        log.info("snapshot finished: %d documents; streaming from %s", self.rows, handoff)
        return handoff


class _Missing:
    __slots__ = ()


_NO_ID: Any = _Missing()
