"""The change-event model every capture adapter produces and the envelope encoder consumes.

Adapters describe each captured table once as a :class:`TableSchema` (topic, columns with their
Kafka Connect field schemas, key columns) and emit :class:`ChangeEvent` objects whose row values
are already converted to their Connect JSON payload form (see ``cdc_bridge.types``). The
envelope encoder then only assembles and serialises; it never looks at column types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONNECTOR_MONGODB",
    "CONNECTOR_MYSQL",
    "CONNECTOR_POSTGRES",
    "CONNECTOR_SALESFORCE",
    "OPS",
    "OP_CREATE",
    "OP_DELETE",
    "OP_READ",
    "OP_TRUNCATE",
    "OP_UPDATE",
    "SNAPSHOT_FALSE",
    "SNAPSHOT_FIRST",
    "SNAPSHOT_FIRST_IN_DATA_COLLECTION",
    "SNAPSHOT_LAST",
    "SNAPSHOT_LAST_IN_DATA_COLLECTION",
    "SNAPSHOT_TRUE",
    "ChangeEvent",
    "Column",
    "Row",
    "TableSchema",
    "sanitize_topic_name",
]

OP_CREATE = "c"
OP_UPDATE = "u"
OP_DELETE = "d"
OP_READ = "r"
OP_TRUNCATE = "t"
OPS = frozenset({OP_CREATE, OP_UPDATE, OP_DELETE, OP_READ, OP_TRUNCATE})

# Values of ``source.snapshot`` (Debezium writes them as strings).
SNAPSHOT_FALSE = "false"
SNAPSHOT_TRUE = "true"
SNAPSHOT_FIRST = "first"
SNAPSHOT_LAST = "last"
SNAPSHOT_FIRST_IN_DATA_COLLECTION = "first_in_data_collection"
SNAPSHOT_LAST_IN_DATA_COLLECTION = "last_in_data_collection"
SNAPSHOT_INCREMENTAL = "incremental"

CONNECTOR_POSTGRES = "postgresql"
CONNECTOR_MYSQL = "mysql"
CONNECTOR_MONGODB = "mongodb"
CONNECTOR_SALESFORCE = "salesforce"

_TOPIC_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")


def sanitize_topic_name(name: str) -> str:
    """Replace every character Kafka does not allow in a topic name with ``_``, as Debezium's
    topic naming strategy does (``shop.public.Order Items`` -> ``shop.public.Order_Items``)."""
    return _TOPIC_ILLEGAL.sub("_", name)


# A row: column name -> Connect JSON payload value, in the table's column order.
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name and its Kafka Connect field schema (without the ``field`` key).

    ``schema`` looks like ``{"type": "int32", "optional": False}`` or, for logical types,
    ``{"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp",
    "version": 1}``.
    """

    name: str
    schema: Mapping[str, Any]


@dataclass(eq=False, slots=True)
class TableSchema:
    """A captured table (or collection) as Kafka sees it.

    Adapters build a new ``TableSchema`` whenever the table's shape changes (e.g. a Postgres
    Relation message after ALTER TABLE); the encoder caches the serialised schemas on the
    object, so a schema is computed once per table version, not once per event.
    """

    connector: str
    source_name: str
    database: str
    namespace: str
    table: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...] = ()
    topic: str = ""
    # Filled lazily by the envelope encoder; adapters leave it alone.
    codec: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.topic:
            self.topic = sanitize_topic_name(f"{self.source_name}.{self.namespace}.{self.table}")
        names = {c.name for c in self.columns}
        missing = [k for k in self.key_columns if k not in names]
        if missing and self.connector != CONNECTOR_MONGODB:
            raise ValueError(f"key columns {missing} are not columns of {self.topic}")

    @property
    def has_key(self) -> bool:
        return bool(self.key_columns) or self.connector == CONNECTOR_MONGODB


@dataclass(slots=True)
class ChangeEvent:
    """One committed change of one row, as an adapter saw it.

    - ``before`` / ``after``: rows in Connect payload form (for MongoDB: Extended JSON strings).
    - ``ts_us``: when the database committed the change (microseconds since the epoch).
    - ``source``: the connector-specific tail of Debezium's ``source`` block, in Debezium's
      field order (Postgres: schema, table, txId, lsn, xmin; MySQL: table, server_id, gtid,
      file, pos, row, thread, query; MongoDB: collection, ord, lsid, txnNumber, wallTime;
      Salesforce: object, replay_id, change_origin, commit_user, transaction_key,
      sequence_number, changed_fields, echo).
      The common fields (version, connector, name, ts_ms, snapshot, db, sequence, ts_us,
      ts_ns) are added by the encoder.
    - ``key``: an explicit key payload (MongoDB's ``{"id": ...}``); relational adapters leave it
      ``None`` and the encoder takes the key columns from the row.
    - An update whose key changed (``before`` key != ``after`` key) is encoded as
      delete + tombstone + create by the encoder; adapters just emit the update.
    """

    table: TableSchema
    op: str
    before: Any
    after: Any
    ts_us: int
    source: dict[str, Any]
    snapshot: str = SNAPSHOT_FALSE
    sequence: str | None = None
    key: dict[str, Any] | None = None
    transaction: dict[str, Any] | None = None
    update_description: dict[str, Any] | None = None
