"""Kafka records (Debezium envelopes, with or without schemas) -> :class:`SinkRecord`.

Accepts what cdc-bridge sources write and what Debezium itself writes: JsonConverter JSON
with or without the ``{"schema", "payload"}`` wrapper, tombstones (null values), MongoDB's
Extended JSON strings. Anything else raises :class:`RecordError` so the route can dead-letter
it. Row schemas are extracted once per topic and schema version, not per record.
"""

from __future__ import annotations

from typing import Any

import orjson

from cdc_bridge.errors import RecordError
from cdc_bridge.events import OPS
from cdc_bridge.sinks.base import SinkRecord

__all__ = ["EnvelopeDecoder"]


def _is_wrapped(doc: Any) -> bool:
    return isinstance(doc, dict) and len(doc) == 2 and "payload" in doc and "schema" in doc


class EnvelopeDecoder:
    """Decodes records of any number of topics; caches schemas per topic."""

    def __init__(self) -> None:
        # topic -> (envelope schema "fields" list as seen, fields by name)
        self._value_cache: dict[str, tuple[Any, dict[str, Any] | None]] = {}
        self._key_cache: dict[str, tuple[Any, tuple[str, ...]]] = {}
        # topic -> (exact bytes of '{"schema":<schema>,"payload":', row fields): records that
        # start with the same bytes have the same schema, so only the payload is parsed.
        self._value_prefix: dict[str, tuple[bytes, dict[str, Any] | None]] = {}
        self._key_prefix: dict[str, tuple[bytes, tuple[str, ...]]] = {}

    def _learn_prefix(self, data: bytes, schema: Any) -> bytes | None:
        """The bytes up to the payload when they are exactly ``{"schema":<schema>,"payload":``."""
        start = data.find(b',"payload":')
        while start != -1:
            if data.startswith(b'{"schema":'):
                try:
                    if orjson.loads(data[10:start]) == schema:
                        return data[: start + 11]
                except orjson.JSONDecodeError:
                    pass
            start = data.find(b',"payload":', start + 1)
        return None

    def _row_fields(self, topic: str, schema: Any) -> dict[str, Any] | None:
        if not isinstance(schema, dict):
            return None
        env_fields = schema.get("fields")
        cached = self._value_cache.get(topic)
        if cached is not None and cached[0] == env_fields:
            return cached[1]
        fields: dict[str, Any] | None = None
        if isinstance(env_fields, list):
            for f in env_fields:
                if (
                    isinstance(f, dict)
                    and f.get("field") in ("after", "before")
                    and f.get("type") == "struct"
                ):
                    fields = {
                        c["field"]: c
                        for c in f.get("fields", [])
                        if isinstance(c, dict) and "field" in c
                    }
                    break
        self._value_cache[topic] = (env_fields, fields)
        return fields

    def _key_names(self, topic: str, schema: Any) -> tuple[str, ...]:
        if not isinstance(schema, dict):
            return ()
        fields = schema.get("fields")
        cached = self._key_cache.get(topic)
        if cached is not None and cached[0] == fields:
            return cached[1]
        names = tuple(f["field"] for f in fields or () if isinstance(f, dict) and "field" in f)
        self._key_cache[topic] = (fields, names)
        return names

    def decode(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key_bytes: bytes | None,
        value_bytes: bytes | None,
    ) -> SinkRecord:
        key: dict[str, Any] | None = None
        key_fields: tuple[str, ...] = ()
        if key_bytes is not None:
            kp = self._key_prefix.get(topic)
            kdoc = None
            fast = False
            if kp is not None and key_bytes.startswith(kp[0]) and key_bytes.endswith(b"}"):
                try:
                    kdoc = orjson.loads(key_bytes[len(kp[0]) : -1])
                    key_fields = kp[1]
                    fast = True
                except orjson.JSONDecodeError:
                    pass
            if not fast:
                try:
                    kdoc = orjson.loads(key_bytes)
                except orjson.JSONDecodeError as exc:
                    raise RecordError(
                        f"record key is not JSON: {exc}", code="invalid_key"
                    ) from None
                if _is_wrapped(kdoc):
                    key_fields = self._key_names(topic, kdoc["schema"])
                    prefix = self._learn_prefix(key_bytes, kdoc["schema"])
                    if prefix is not None:
                        self._key_prefix[topic] = (prefix, key_fields)
                    kdoc = kdoc["payload"]
            if kdoc is not None and not isinstance(kdoc, dict):
                raise RecordError(
                    "record key is not a Debezium key struct (a JSON object)", code="invalid_key"
                )
            key = kdoc
            if key is not None and not key_fields:
                key_fields = tuple(key)

        if value_bytes is None:
            if key is None:
                # Debezium follows a delete on a keyless table with a tombstone whose key is
                # null too: the delete event carried the row, there is nothing to apply.
                raise SupersededChange(f"{topic}[{partition}]@{offset}: tombstone without a key")
            return SinkRecord(
                topic,
                partition,
                offset,
                timestamp,
                "d",
                key,
                None,
                None,
                key_fields=key_fields,
                tombstone=True,
                raw_key=key_bytes,
                raw_value=None,
            )
        fields = None
        vp = self._value_prefix.get(topic)
        doc: Any = None
        fast = False
        if vp is not None and value_bytes.startswith(vp[0]) and value_bytes.endswith(b"}"):
            try:
                doc = orjson.loads(value_bytes[len(vp[0]) : -1])
                fields = vp[1]
                fast = True
            except orjson.JSONDecodeError:
                pass
        if not fast:
            try:
                doc = orjson.loads(value_bytes)
            except orjson.JSONDecodeError as exc:
                raise RecordError(f"record value is not JSON: {exc}", code="invalid_json") from None
            if _is_wrapped(doc):
                fields = self._row_fields(topic, doc["schema"])
                prefix = self._learn_prefix(value_bytes, doc["schema"])
                if prefix is not None:
                    self._value_prefix[topic] = (prefix, fields)
                doc = doc["payload"]
        if doc is None:  # a wrapped tombstone
            return self.decode(topic, partition, offset, timestamp, key_bytes, None)
        if not isinstance(doc, dict):
            raise RecordError(
                "record value is not a Debezium change event envelope", code="not_envelope"
            )
        op = doc.get("op")
        if op not in OPS:
            raise RecordError(
                f"record value is not a Debezium change event envelope (op={op!r})",
                code="not_envelope",
            )
        before = _row(doc.get("before"), "before")
        after = _row(doc.get("after"), "after")
        source = doc.get("source")
        if op in ("c", "r", "u") and after is None:
            if (
                op == "u"
                and isinstance(source, dict)
                and source.get("connector") == "mongodb"
                and "updateDescription" in doc
            ):
                # The document was deleted (or replaced) before MongoDB looked it up for this
                # update: there is no state to write, and the later event on the same key
                # carries the final state. Debezium emits such updates too.
                raise SupersededChange(f"{topic}[{partition}]@{offset}")
            raise RecordError(f"{op!r} event without an 'after' row", code="not_envelope")
        return SinkRecord(
            topic,
            partition,
            offset,
            timestamp,
            op,
            key,
            before,
            after,
            source if isinstance(source, dict) else {},
            fields,
            key_fields,
            False,
            key_bytes,
            value_bytes,
        )


class SupersededChange(Exception):
    """A record with nothing to apply: a change that a later change on the same key supersedes
    (a MongoDB update whose full document was already gone at lookup time), or the null-key
    tombstone that follows a delete on a keyless table. Routes count it as skipped, like a
    filtered record."""


def _row(value: Any, name: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):  # MongoDB: Extended JSON document
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            return doc
    raise RecordError(f"envelope field {name!r} is not a row object", code="not_envelope")
