"""The incremental snapshot's MongoDB pieces (``sources/incremental.py`` runs the algorithm).

- Chunks: documents in ``_id`` index order after the last ``_id`` of the previous chunk. The
  bound is set with ``min()`` on the ``_id`` index, not ``{"_id": {"$gt": ...}}``: a query
  comparison only matches ``_id`` values of the same BSON type, so a collection with mixed
  ``_id`` types (numbers and ObjectIds, say) would lose every document of the other types.
- Keys: an ``_id`` as canonical Extended JSON (``encode_id``): exact for every BSON type, the
  same string whether the ``_id`` came from a chunk or from a change's ``documentKey``.
- Watermarks and signals: documents ``{_id, type, data}`` in the signal collection, seen by the
  change stream like any insert. ``data`` of an ``execute-snapshot`` signal may be a document
  (as Debezium's MongoDB docs write it) or a JSON string.
- ``--where``: a query filter as (Extended) JSON, e.g. ``{"status": "open"}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from bson import Timestamp, json_util
from bson.errors import InvalidId
from pymongo import ASCENDING, MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from cdc_bridge.errors import RetriableError
from cdc_bridge.events import SNAPSHOT_INCREMENTAL
from cdc_bridge.sources.incremental import Chunk, IncrementalSnapshotError
from cdc_bridge.sources.mongodb.convert import ChangeConverter
from cdc_bridge.sources.mongodb.snapshot import decode_id, encode_id

__all__ = ["MongoChunks", "signal_data"]


def signal_data(data: Any) -> str | None:
    """A signal document's ``data`` as the JSON text ``on_signal`` reads."""
    if data is None or isinstance(data, str):
        return data
    return json_util.dumps(data, json_options=json_util.RELAXED_JSON_OPTIONS)


def parse_filter(where: str | None) -> dict[str, Any]:
    """A ``--where`` condition (Extended JSON query filter) as a query document."""
    if not where:
        return {}
    try:
        doc = json_util.loads(where)
    except (ValueError, TypeError, InvalidId) as exc:
        raise IncrementalSnapshotError(
            f"the condition {where!r} is not a JSON query filter: {exc}"
        ) from exc
    if not isinstance(doc, Mapping):
        raise IncrementalSnapshotError(f"the condition {where!r} is not a JSON query document")
    return dict(doc)


class MongoChunks:
    """Reads chunks and writes watermarks for one MongoDB source."""

    def __init__(
        self,
        client: MongoClient[dict[str, Any]],
        converter: ChangeConverter,
        signal: tuple[str, str],
        captured: Sequence[str],
    ) -> None:
        self.client = client
        self.converter = converter
        self.signal = client[signal[0]][signal[1]]
        self.signal_name = f"{signal[0]}.{signal[1]}"
        self.captured = set(captured)

    def estimate(self, table: str) -> int:
        db, _, coll = table.partition(".")
        try:
            return int(self.client[db][coll].estimated_document_count())
        except PyMongoError:
            return 0

    def read_chunk(self, table: str, after: Any, limit: int, where: str | None) -> Chunk:
        if table not in self.captured:
            raise IncrementalSnapshotError(f"{table} is not a captured collection")
        db, _, coll = table.partition(".")
        query = parse_filter(where)
        start = decode_id(after) if isinstance(after, str) else None
        cursor = (
            self.client[db][coll]
            .find(query, sort=[("_id", ASCENDING)])
            .hint([("_id", ASCENDING)])
            .limit(limit + 1 if start is not None else limit)
        )
        if start is not None:
            cursor = cursor.min([("_id", start)])  # inclusive: the previous chunk's last
        try:
            docs = list(cursor)
        except ConnectionFailure as exc:
            raise RetriableError(f"incremental snapshot of {table}: {exc}") from exc
        except OperationFailure as exc:  # a bad filter, no privilege: the stream goes on
            raise IncrementalSnapshotError(
                f"reading {table} failed: {exc}" + (f" (condition: {where})" if where else "")
            ) from exc
        if start is not None and docs and encode_id(docs[0]["_id"]) == after:
            docs = docs[1:]
        docs = docs[:limit]
        schema = self.converter.table(db, coll)
        now = Timestamp(int(time.time()), 0)
        snap = self.converter.snapshot_event
        events = [snap(schema, doc, now, SNAPSHOT_INCREMENTAL) for doc in docs]
        keys = [encode_id(doc["_id"]) for doc in docs]
        return Chunk(events, keys, keys[-1] if keys else None)

    def write_watermark(self, signal_id: str, kind: str, forget: Sequence[str]) -> None:
        try:
            self.signal.insert_one({"_id": signal_id, "type": kind, "data": None})
            if forget:
                self.signal.delete_many({"_id": {"$in": list(forget)}})
        except ConnectionFailure as exc:
            raise RetriableError(f"cannot write a watermark: {exc}") from exc
        except OperationFailure as exc:
            raise IncrementalSnapshotError(
                f"cannot write a watermark into signal collection {self.signal_name}: {exc} "
                "(grant the bridge's user readWrite on it)"
            ) from exc
