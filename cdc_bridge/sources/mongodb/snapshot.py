"""The MongoDB snapshot reader: captured collections in ``_id`` order, in chunks.

Before scanning, the source notes a resume point (a fresh change stream's post-batch resume
token). The coordinator hands every chunk to Kafka with an offset that carries the noted
resume point plus the last ``_id`` of the chunk (canonical Extended JSON), so a restart
continues after the last confirmed document; when every collection is done, streaming starts
from the noted point and replays the changes made while the scan ran.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from bson import Timestamp, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from pymongo import ASCENDING, MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from cdc_bridge.errors import FatalError, RetriableError
from cdc_bridge.events import SNAPSHOT_TRUE
from cdc_bridge.sources.coordinator import SnapshotChunk, SnapshotReader
from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.convert import ChangeConverter
from cdc_bridge.sources.mongodb.offset import MongoOffset

__all__ = ["MongoSnapshotReader", "decode_id", "encode_id"]

log = logging.getLogger(__name__)


def encode_id(value: Any) -> str:
    """An ``_id`` as canonical Extended JSON: round-trips every BSON type exactly."""
    return json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS)


def decode_id(text: str) -> Any:
    return json_util.loads(text, json_options=CANONICAL_JSON_OPTIONS)


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


class MongoSnapshotReader(SnapshotReader):
    """Reads the captured collections in ``_id`` order, ``snapshot_batch_size`` documents per
    chunk. ``hand_off``: the resume point noted before scanning (changes made while the scan
    runs are replayed from it: at-least-once, never missed)."""

    def __init__(
        self,
        client: MongoClient[dict[str, Any]],
        config: MongoSourceConfig,
        converter: ChangeConverter,
        noted: MongoOffset,
        collections: list[tuple[str, str]],
    ) -> None:
        self.client = client
        self.config = config
        self.converter = converter
        self.hand_off = noted
        self.by_name = {f"{db}.{c}": (db, c) for db, c in collections}
        self.cluster_time = Timestamp(*noted.cluster_time) if noted.cluster_time else None

    def tables(self) -> list[str]:
        return list(self.by_name)

    def estimate(self, table: str) -> int:
        db, coll = self.by_name[table]
        try:
            return int(self.client[db][coll].estimated_document_count())
        except PyMongoError as exc:
            raise RetriableError(f"snapshot of {table}: {exc}") from exc

    def read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        try:
            yield from self._read(table, after)
        except OperationFailure as exc:
            raise FatalError(f"snapshot of {table} failed: {exc}") from exc
        except PyMongoError as exc:
            raise RetriableError(f"snapshot of {table} interrupted: {exc}") from exc

    def _read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        db, coll = self.by_name[table]
        size = self.config.snapshot_batch_size
        resume_after = decode_id(after) if isinstance(after, str) else _NO_ID
        cursor = self.client[db][coll].find(sort=[("_id", ASCENDING)], batch_size=size)
        cursor = cursor.hint([("_id", ASCENDING)])
        if resume_after is not _NO_ID:
            cursor = cursor.min([("_id", resume_after)])
        converted = self.converter.table(db, coll)
        snap = self.converter.snapshot_event
        ct = self.cluster_time
        try:
            for batch, _is_last in _batches(iter(cursor), size):
                if resume_after is not _NO_ID and batch and batch[0]["_id"] == resume_after:
                    batch = batch[1:]  # min() is inclusive
                resume_after = _NO_ID
                if batch:
                    events = [snap(converted, doc, ct, SNAPSHOT_TRUE) for doc in batch]
                    yield SnapshotChunk(events, encode_id(batch[-1]["_id"]))
        finally:
            cursor.close()


class _Missing:
    __slots__ = ()


_NO_ID: Any = _Missing()
