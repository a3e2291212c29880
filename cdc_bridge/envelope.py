"""Change events -> Debezium-compatible Kafka records (topic, key bytes, value bytes).

This is the only place that assembles envelopes. Per table it precomputes the serialised
Connect schemas once (cached on the ``TableSchema``), so encoding an event is building two
small dicts and one ``orjson.dumps`` each for key and value.

Layout follows DESIGN §3: value fields ``before, after, source, transaction, op, ts_ms, ts_us,
ts_ns`` (MongoDB adds ``updateDescription`` after ``after``); key ``<topic>.Key``; envelope
``<topic>.Envelope`` version 2; JSON in Kafka Connect JsonConverter style, with or without the
``{"schema", "payload"}`` wrapper.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from cdc_bridge import __version__
from cdc_bridge.events import (
    CONNECTOR_MONGODB,
    CONNECTOR_MYSQL,
    CONNECTOR_POSTGRES,
    CONNECTOR_SALESFORCE,
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    ChangeEvent,
    TableSchema,
    sanitize_topic_name,
)

__all__ = [
    "CONNECTOR_VERSION",
    "ENVELOPE_FIELDS",
    "SOURCE_SCHEMA_NAMES",
    "EnvelopeEncoder",
    "Record",
    "envelope_schema",
    "key_schema",
    "sanitize_topic_name",
    "source_schema",
    "topic_name",
]

# (topic, key, value); value None is a tombstone.
Record = tuple[str, bytes | None, bytes | None]

CONNECTOR_VERSION = __version__

ENVELOPE_FIELDS = ("before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns")
MONGO_ENVELOPE_FIELDS = (
    "before",
    "after",
    "updateDescription",
    "source",
    "transaction",
    "op",
    "ts_ms",
    "ts_us",
    "ts_ns",
)

SOURCE_SCHEMA_NAMES = {
    CONNECTOR_POSTGRES: "io.debezium.connector.postgresql.Source",
    CONNECTOR_MYSQL: "io.debezium.connector.mysql.Source",
    CONNECTOR_MONGODB: "io.debezium.connector.mongo.Source",
    # no Debezium counterpart: named after the project
    CONNECTOR_SALESFORCE: "cdc_bridge.connector.salesforce.Source",
}


def _f(field: str, type_: str, optional: bool, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "optional": optional, **extra, "field": field}


_SNAPSHOT_FIELD = {
    "type": "string",
    "optional": True,
    "name": "io.debezium.data.Enum",
    "version": 1,
    "parameters": {
        "allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"
    },
    "default": "false",
    "field": "snapshot",
}

_COMMON_SOURCE_FIELDS: list[dict[str, Any]] = [
    _f("version", "string", False),
    _f("connector", "string", False),
    _f("name", "string", False),
    _f("ts_ms", "int64", False),
    _SNAPSHOT_FIELD,
    _f("db", "string", False),
    _f("sequence", "string", True),
    _f("ts_us", "int64", True),
    _f("ts_ns", "int64", True),
]

_CONNECTOR_SOURCE_FIELDS: dict[str, list[dict[str, Any]]] = {
    CONNECTOR_POSTGRES: [
        _f("schema", "string", False),
        _f("table", "string", False),
        _f("txId", "int64", True),
        _f("lsn", "int64", True),
        _f("xmin", "int64", True),
        _f("origin", "string", True),
        _f("origin_lsn", "int64", True),
    ],
    CONNECTOR_MYSQL: [
        _f("table", "string", True),
        _f("server_id", "int64", False),
        _f("gtid", "string", True),
        _f("file", "string", False),
        _f("pos", "int64", False),
        _f("row", "int32", False),
        _f("thread", "int64", True),
        _f("query", "string", True),
    ],
    CONNECTOR_MONGODB: [
        _f("collection", "string", False),
        _f("ord", "int32", False),
        _f("lsid", "string", True),
        _f("txnNumber", "int64", True),
        _f("wallTime", "int64", True),
    ],
    CONNECTOR_SALESFORCE: [
        _f("object", "string", False),
        _f("replay_id", "string", True),
        _f("change_origin", "string", True),
        _f("commit_user", "string", True),
        _f("transaction_key", "string", True),
        _f("sequence_number", "int64", True),
        {
            "type": "array",
            "items": {"type": "string", "optional": False},
            "optional": True,
            "field": "changed_fields",
        },
        _f("echo", "boolean", True),
    ],
}

_TRANSACTION_FIELD = {
    "type": "struct",
    "fields": [
        _f("id", "string", False),
        _f("total_order", "int64", False),
        _f("data_collection_order", "int64", False),
    ],
    "optional": True,
    "name": "event.block",
    "version": 1,
    "field": "transaction",
}

_JSON_STRING = {"name": "io.debezium.data.Json", "version": 1}

_UPDATE_DESCRIPTION_FIELD = {
    "type": "struct",
    "fields": [
        {
            "type": "array",
            "items": {"type": "string", "optional": False},
            "optional": True,
            "field": "removedFields",
        },
        _f("updatedFields", "string", True, **_JSON_STRING),
        {
            "type": "array",
            "items": {
                "type": "struct",
                "fields": [_f("field", "string", False), _f("size", "int32", False)],
                "optional": False,
                "name": "io.debezium.connector.mongodb.changestream.truncatedarray",
                "version": 1,
            },
            "optional": True,
            "field": "truncatedArrays",
        },
    ],
    "optional": True,
    "name": "io.debezium.connector.mongodb.changestream.updatedescription",
    "version": 1,
    "field": "updateDescription",
}


def topic_name(source_name: str, namespace: str, table: str) -> str:
    """``<source name>.<schema or database>.<table>`` (the source name is the topic prefix),
    with characters illegal in Kafka topic names replaced by ``_`` as Debezium does."""
    return sanitize_topic_name(f"{source_name}.{namespace}.{table}")


# Debezium versions some ``source`` struct schemas (PostgreSQL and MySQL: version 1).
_SOURCE_SCHEMA_VERSIONS: dict[str, int] = {CONNECTOR_POSTGRES: 1, CONNECTOR_MYSQL: 1}


def source_schema(connector: str) -> dict[str, Any]:
    """The Connect schema of the ``source`` block for one connector kind."""
    schema: dict[str, Any] = {
        "type": "struct",
        "fields": _COMMON_SOURCE_FIELDS + _CONNECTOR_SOURCE_FIELDS[connector],
        "optional": False,
        "name": SOURCE_SCHEMA_NAMES[connector],
    }
    version = _SOURCE_SCHEMA_VERSIONS.get(connector)
    if version is not None:
        schema["version"] = version
    schema["field"] = "source"
    return schema


def _column_fields(table: TableSchema) -> list[dict[str, Any]]:
    return [{**c.schema, "field": c.name} for c in table.columns]


def key_schema(table: TableSchema) -> dict[str, Any] | None:
    """The key's Connect schema, or None for a table without a key (null keys)."""
    if table.connector == CONNECTOR_MONGODB:
        fields = [_f("id", "string", False)]
    elif table.key_columns:
        by_name = {c.name: c for c in table.columns}
        fields = [{**by_name[k].schema, "field": k} for k in table.key_columns]
    else:
        return None
    return {"type": "struct", "fields": fields, "optional": False, "name": f"{table.topic}.Key"}


def envelope_schema(table: TableSchema) -> dict[str, Any]:
    """The value's Connect schema: ``<topic>.Envelope`` version 2."""
    if table.connector == CONNECTOR_MONGODB:
        row_fields = [
            _f("before", "string", True, **_JSON_STRING),
            _f("after", "string", True, **_JSON_STRING),
            _UPDATE_DESCRIPTION_FIELD,
        ]
    else:
        row = {
            "type": "struct",
            "fields": _column_fields(table),
            "optional": True,
            "name": f"{table.topic}.Value",
        }
        row_fields = [{**row, "field": "before"}, {**row, "field": "after"}]
    return {
        "type": "struct",
        "fields": [
            *row_fields,
            source_schema(table.connector),
            _TRANSACTION_FIELD,
            _f("op", "string", False),
            _f("ts_ms", "int64", True),
            _f("ts_us", "int64", True),
            _f("ts_ns", "int64", True),
        ],
        "optional": False,
        "name": f"{table.topic}.Envelope",
        "version": 2,
    }


class _TableCodec:
    """Serialised schema prefixes and per-table constants, computed once per table version."""

    __slots__ = (
        "key1",
        "key_columns",
        "key_prefix",
        "mongo",
        "name",
        "schemas",
        "suffix",
        "value_prefix",
    )

    def __init__(self, table: TableSchema, schemas: bool) -> None:
        self.schemas = schemas
        self.key_columns = table.key_columns
        # the common single-column key, read without a comprehension per event
        self.key1 = table.key_columns[0] if len(table.key_columns) == 1 else None
        self.mongo = table.connector == CONNECTOR_MONGODB
        self.name = table.source_name
        if schemas:
            ks = key_schema(table)
            self.key_prefix = b'{"schema":' + orjson.dumps(ks) + b',"payload":'
            self.value_prefix = (
                b'{"schema":' + orjson.dumps(envelope_schema(table)) + b',"payload":'
            )
            self.suffix = b"}"
        else:
            self.key_prefix = self.value_prefix = self.suffix = b""


class EnvelopeEncoder:
    """Encodes change events of one source as Debezium-compatible Kafka records.

    ``schemas``: wrap key and value as ``{"schema", "payload"}`` (JsonConverter
    ``schemas.enable=true``, the default) or emit bare payloads.
    ``tombstones``: follow each delete with a tombstone (null value) for log compaction.
    """

    def __init__(self, *, schemas: bool = True, tombstones: bool = True) -> None:
        self.schemas = schemas
        self.tombstones = tombstones

    def _codec(self, table: TableSchema) -> _TableCodec:
        codec = table.codec
        if codec is None or codec.schemas is not self.schemas:
            codec = table.codec = _TableCodec(table, self.schemas)
        return codec

    def encode(self, events: Iterable[ChangeEvent], now_us: int | None = None) -> list[Record]:
        """Encode a batch; ``ts_ms/us/ns`` of the envelope is the batch's processing time."""
        if now_us is None:
            now_us = time.time_ns() // 1000
        now_ms = now_us // 1000
        now_ns = now_us * 1000
        out: list[Record] = []
        append = out.append
        dumps = orjson.dumps
        tombstones = self.tombstones
        for ev in events:
            table = ev.table
            codec = table.codec
            if codec is None or codec.schemas is not self.schemas:
                codec = self._codec(table)
            ts_us = ev.ts_us
            source = {
                "version": CONNECTOR_VERSION,
                "connector": table.connector,
                "name": codec.name,
                "ts_ms": ts_us // 1000,
                "snapshot": ev.snapshot,
                "db": table.database,
                "sequence": ev.sequence,
                "ts_us": ts_us,
                "ts_ns": ts_us * 1000,
            }
            source.update(ev.source)
            op = ev.op
            topic = table.topic

            if codec.mongo:
                key = ev.key
                key_bytes = (
                    codec.key_prefix + dumps(key) + codec.suffix if key is not None else None
                )
                payload: dict[str, Any] = {
                    "before": ev.before,
                    "after": ev.after,
                    "updateDescription": ev.update_description,
                    "source": source,
                    "transaction": ev.transaction,
                    "op": op,
                    "ts_ms": now_ms,
                    "ts_us": now_us,
                    "ts_ns": now_ns,
                }
                append((topic, key_bytes, codec.value_prefix + dumps(payload) + codec.suffix))
                if op == OP_DELETE and tombstones and key_bytes is not None:
                    append((topic, key_bytes, None))
                continue

            before = ev.before
            after = ev.after
            key_columns = codec.key_columns
            if key_columns:
                row = after if after is not None else before
                key1 = codec.key1
                key_payload: dict[str, Any] | None
                if ev.key is not None:
                    key_payload = ev.key
                elif key1 is not None and row is not None:
                    key_payload = {key1: row.get(key1)}
                else:
                    key_payload = _key_of(row, key_columns)
                if (
                    op == OP_UPDATE
                    and before is not None
                    and key_payload is not None
                    and _key_of(before, key_columns) != key_payload
                ):
                    # Primary-key change: delete the old key, tombstone it, create the new one.
                    old_key = _key_of(before, key_columns)
                    old_key_bytes = codec.key_prefix + dumps(old_key) + codec.suffix
                    delete = {
                        "before": before,
                        "after": None,
                        "source": source,
                        "transaction": ev.transaction,
                        "op": OP_DELETE,
                        "ts_ms": now_ms,
                        "ts_us": now_us,
                        "ts_ns": now_ns,
                    }
                    append(
                        (topic, old_key_bytes, codec.value_prefix + dumps(delete) + codec.suffix)
                    )
                    if tombstones:
                        append((topic, old_key_bytes, None))
                    before = None
                    op = OP_CREATE
                key_bytes = (
                    codec.key_prefix + dumps(key_payload) + codec.suffix
                    if key_payload is not None
                    else None
                )
            else:
                key_bytes = None
            payload = {
                "before": before,
                "after": after,
                "source": source,
                "transaction": ev.transaction,
                "op": op,
                "ts_ms": now_ms,
                "ts_us": now_us,
                "ts_ns": now_ns,
            }
            append((topic, key_bytes, codec.value_prefix + dumps(payload) + codec.suffix))
            if op == OP_DELETE and tombstones:
                # also for keyless tables (null key), as Debezium does
                append((topic, key_bytes, None))
        return out


def _key_of(row: Mapping[str, Any] | None, key_columns: tuple[str, ...]) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: row.get(k) for k in key_columns}
