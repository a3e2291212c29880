"""MongoDB change-stream documents -> ``ChangeEvent`` in Debezium's MongoDB format.

Pure: takes the documents pymongo returns (plain dicts of bson types) and never talks to a
server, so it is tested with documents alone. Data changes (insert, update, replace, delete)
become events; collection- and database-level events (drop, rename, dropDatabase,
invalidate, and DDL events shown with ``showExpandedEvents``) become :class:`StreamNotice` so
the streaming loop decides what to do with them.

Debezium's layout, reproduced byte for byte (see ``_ejson``):

- key ``{"id": <Relaxed Extended JSON of documentKey._id>}`` (``"1004"``, ``"\\"abc\\""``,
  ``{"$oid": "596e..."}``);
- ``before`` (pre-image) / ``after`` (full document) as legacy strict Extended JSON strings
  (``json_output = "relaxed"`` switches them to Relaxed Extended JSON v2);
- ``updateDescription`` for updates: ``removedFields`` (null when empty), ``updatedFields``
  (Relaxed Extended JSON string), ``truncatedArrays`` (``[{"field", "size"}]``, null when
  empty); replace is an update without ``updateDescription``;
- ``source``: ``collection``, ``ord`` (cluster time increment), ``lsid`` (strict JSON of the
  session id) and ``txnNumber`` inside transactions, ``wallTime`` (ms) when the server sends it;
  ``source.ts_ms`` is the cluster time's seconds * 1000.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bson import Timestamp

from cdc_bridge.events import (
    CONNECTOR_MONGODB,
    OP_CREATE,
    OP_DELETE,
    OP_READ,
    OP_UPDATE,
    SNAPSHOT_FALSE,
    ChangeEvent,
    TableSchema,
)
from cdc_bridge.sources.mongodb._ejson import RELAXED, RELAXED_COMPACT, STRICT_COMPACT, dumps
from cdc_bridge.sources.mongodb._ejson import _datetime_ms as datetime_ms

__all__ = ["DATA_OPERATIONS", "ChangeConverter", "StreamNotice", "key_id"]

DATA_OPERATIONS = {
    "insert": OP_CREATE,
    "update": OP_UPDATE,
    "replace": OP_UPDATE,
    "delete": OP_DELETE,
}


@dataclass(frozen=True, slots=True)
class StreamNotice:
    """A change-stream event that is not a document change (drop, rename, invalidate, DDL...)."""

    operation: str
    database: str | None
    collection: str | None
    to: tuple[str, str] | None
    token: Mapping[str, Any] | None
    cluster_time: Timestamp | None

    @property
    def namespace(self) -> str:
        if self.collection:
            return f"{self.database}.{self.collection}"
        return self.database or "<deployment>"


def key_id(document_id: Any) -> dict[str, str]:
    """The record key payload Debezium builds from a document's ``_id``."""
    return {"id": dumps(document_id, RELAXED_COMPACT)}


class ChangeConverter:
    """Turns change documents (and snapshot documents) of one source into ``ChangeEvent``.

    Keeps one ``TableSchema`` per collection, so the envelope encoder's per-table cache works.
    """

    def __init__(
        self, source_name: str, json_output: Literal["strict", "relaxed"] = "strict"
    ) -> None:
        self.source_name = source_name
        self.doc_style = STRICT_COMPACT if json_output == "strict" else RELAXED_COMPACT
        self._tables: dict[tuple[str, str], TableSchema] = {}

    def table(self, database: str, collection: str) -> TableSchema:
        """The (cached) ``TableSchema`` of ``database.collection``."""
        t = self._tables.get((database, collection))
        if t is None:
            t = self._tables[(database, collection)] = TableSchema(
                connector=CONNECTOR_MONGODB,
                source_name=self.source_name,
                database=database,
                namespace=database,
                table=collection,
                columns=(),
            )
        return t

    def document(self, doc: Mapping[str, Any] | None) -> str | None:
        return None if doc is None else dumps(doc, self.doc_style)

    def convert(self, change: Mapping[str, Any]) -> ChangeEvent | StreamNotice:
        """One change-stream document -> a ``ChangeEvent`` or a ``StreamNotice``."""
        operation = change["operationType"]
        ns = change.get("ns") or {}
        cluster_time: Timestamp | None = change.get("clusterTime")
        op = DATA_OPERATIONS.get(operation)
        if op is None:
            to = change.get("to")
            return StreamNotice(
                operation=operation,
                database=ns.get("db"),
                collection=ns.get("coll"),
                to=(to["db"], to["coll"]) if to else None,
                token=change.get("_id"),
                cluster_time=cluster_time,
            )
        table = self.table(ns["db"], ns["coll"])
        dumps_doc = self.document
        before = dumps_doc(change.get("fullDocumentBeforeChange"))
        after = dumps_doc(change.get("fullDocument")) if op != OP_DELETE else None
        update_description = None
        if operation == "update":
            update_description = _update_description(change.get("updateDescription") or {})
        lsid = change.get("lsid")
        txn_number = change.get("txnNumber")
        in_txn = lsid is not None and txn_number is not None
        wall_time = change.get("wallTime")
        ct_time, ct_inc = (cluster_time.time, cluster_time.inc) if cluster_time else (0, 0)
        return ChangeEvent(
            table=table,
            op=op,
            before=before,
            after=after,
            ts_us=ct_time * 1_000_000,
            source={
                "collection": ns["coll"],
                "ord": ct_inc,
                "lsid": dumps(lsid, STRICT_COMPACT) if in_txn else None,
                "txnNumber": int(txn_number) if txn_number is not None and in_txn else None,
                "wallTime": _wall_time_ms(wall_time),
            },
            snapshot=SNAPSHOT_FALSE,
            key=key_id(change["documentKey"]["_id"]),
            update_description=update_description,
        )

    def snapshot_event(
        self,
        table: TableSchema,
        doc: Mapping[str, Any],
        cluster_time: Timestamp | None,
        marker: str,
    ) -> ChangeEvent:
        """A snapshot read (``op: "r"``) of one document, positioned at the noted cluster time."""
        ct_time, ct_inc = (cluster_time.time, cluster_time.inc) if cluster_time else (0, 0)
        return ChangeEvent(
            table=table,
            op=OP_READ,
            before=None,
            after=dumps(doc, self.doc_style),
            ts_us=ct_time * 1_000_000,
            source={
                "collection": table.table,
                "ord": ct_inc,
                "lsid": None,
                "txnNumber": None,
                "wallTime": None,
            },
            snapshot=marker,
            key=key_id(doc["_id"]),
        )


def _update_description(desc: Mapping[str, Any]) -> dict[str, Any]:
    removed = list(desc.get("removedFields") or ()) or None
    truncated = [
        {"field": t["field"], "size": int(t["newSize"])} for t in desc.get("truncatedArrays") or ()
    ] or None
    updated = desc.get("updatedFields")
    return {
        "removedFields": removed,
        "updatedFields": dumps(updated, RELAXED) if updated is not None else None,
        "truncatedArrays": truncated,
    }


def _wall_time_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return datetime_ms(value) or None
    ms = int(getattr(value, "_value", value))
    return ms or None
