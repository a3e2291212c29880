"""Avro payloads of Pub/Sub events: schemas by id, decoding, and the ``ChangeEventHeader``.

Change events (``/data/<Object>ChangeEvent``) carry a ``ChangeEventHeader`` record first and
then every field of the object; platform events (``/event/<Name>__e``) are flat records. The
payload is schemaless Avro binary written with the schema whose id comes with the event, so
a decoder keeps the parsed schemas by id (fetched once through ``GetSchema``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro

from cdc_bridge.sources.salesforce.pubsub.bitmap import decode_bitmap

__all__ = [
    "CHANGE_TYPES",
    "GAP_TYPES",
    "ChangeEventHeader",
    "DecodedEvent",
    "EventDecoder",
    "replay_from_hex",
    "replay_to_hex",
]

CHANGE_TYPES = frozenset(
    {
        "CREATE",
        "UPDATE",
        "DELETE",
        "UNDELETE",
        "GAP_CREATE",
        "GAP_UPDATE",
        "GAP_DELETE",
        "GAP_UNDELETE",
        "GAP_OVERFLOW",
    }
)
GAP_TYPES = frozenset(t for t in CHANGE_TYPES if t.startswith("GAP_"))


def replay_to_hex(replay_id: bytes) -> str:
    """Replay ids are opaque bytes; stored and logged as hex."""
    return replay_id.hex()


def replay_from_hex(text: str) -> bytes:
    return bytes.fromhex(text)


@dataclass(frozen=True, slots=True)
class ChangeEventHeader:
    """The header of one change event, with the bitmap fields decoded to field names.

    Nested (compound) names come as ``"BillingAddress.City"``.
    """

    entity_name: str
    record_ids: tuple[str, ...]
    change_type: str
    change_origin: str
    transaction_key: str
    sequence_number: int
    commit_timestamp: int  # milliseconds since the epoch
    commit_number: int
    commit_user: str
    changed_fields: tuple[str, ...] = ()
    nulled_fields: tuple[str, ...] = ()
    diff_fields: tuple[str, ...] = ()

    @property
    def is_gap(self) -> bool:
        return self.change_type in GAP_TYPES

    @classmethod
    def from_record(cls, raw: Mapping[str, Any], schema: Mapping[str, Any]) -> ChangeEventHeader:
        """Build from the decoded Avro header record; bitmaps decoded against ``schema``."""
        change_type = raw.get("changeType")
        if change_type not in CHANGE_TYPES:
            raise ValueError(f"unknown changeType {change_type!r}")
        return cls(
            entity_name=raw.get("entityName") or "",
            record_ids=tuple(raw.get("recordIds") or ()),
            change_type=change_type,
            change_origin=raw.get("changeOrigin") or "",
            transaction_key=raw.get("transactionKey") or "",
            sequence_number=int(raw.get("sequenceNumber") or 0),
            commit_timestamp=int(raw.get("commitTimestamp") or 0),
            commit_number=int(raw.get("commitNumber") or 0),
            commit_user=raw.get("commitUser") or "",
            changed_fields=tuple(decode_bitmap(raw.get("changedFields"), schema)),
            nulled_fields=tuple(decode_bitmap(raw.get("nulledFields"), schema)),
            diff_fields=tuple(decode_bitmap(raw.get("diffFields"), schema)),
        )


@dataclass(slots=True)
class DecodedEvent:
    """One delivered event: replay id, event id, schema id and the decoded record.

    ``header`` is set for change events (``record`` then holds the remaining fields).
    """

    replay_id: bytes
    event_id: str
    schema_id: str
    record: dict[str, Any]
    header: ChangeEventHeader | None = None


@dataclass
class _Schema:
    json: dict[str, Any]
    parsed: Any
    change_event: bool
    names: list[str] = field(default_factory=list)


class EventDecoder:
    """Decodes payloads; asks ``fetch_schema(schema_id) -> schema JSON text`` once per id."""

    def __init__(self, fetch_schema: Callable[[str], str]) -> None:
        self._fetch = fetch_schema
        self._schemas: dict[str, _Schema] = {}

    def schema(self, schema_id: str) -> dict[str, Any]:
        return self._get(schema_id).json

    def _get(self, schema_id: str) -> _Schema:
        found = self._schemas.get(schema_id)
        if found is None:
            doc = json.loads(self._fetch(schema_id))
            fields = doc.get("fields", [])
            change = bool(fields) and fields[0].get("name") == "ChangeEventHeader"
            found = _Schema(
                doc,
                fastavro.parse_schema(doc, named_schemas={}),
                change,
                [f["name"] for f in fields],
            )
            self._schemas[schema_id] = found
        return found

    def decode(
        self, schema_id: str, payload: bytes, replay_id: bytes, event_id: str
    ) -> DecodedEvent:
        sch = self._get(schema_id)
        record = fastavro.schemaless_reader(io.BytesIO(payload), sch.parsed, None)
        if not isinstance(record, dict):
            raise ValueError(f"event {event_id}: the payload is not an Avro record")
        header = None
        if sch.change_event:
            raw = record.pop("ChangeEventHeader")
            header = ChangeEventHeader.from_record(raw, sch.json)
        return DecodedEvent(replay_id, event_id, schema_id, record, header)
