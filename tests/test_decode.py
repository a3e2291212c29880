"""Envelope decoding: records written by Debezium itself, with and without schemas, pretty
printed or reordered, schema changes, tombstones, and what is not an envelope."""

from __future__ import annotations

import json

import orjson
import pytest

from cdc_bridge.decode import EnvelopeDecoder
from cdc_bridge.errors import RecordError

ROW_FIELDS = [
    {"type": "int32", "optional": False, "field": "id"},
    {"type": "string", "optional": False, "field": "first_name"},
    {"type": "string", "optional": True, "field": "email"},
]

# As Debezium's PostgreSQL connector writes them (JsonConverter, schemas.enable=true).
DEBEZIUM_KEY = {
    "schema": {
        "type": "struct",
        "fields": [{"type": "int32", "optional": False, "field": "id"}],
        "optional": False,
        "name": "dbserver1.public.customers.Key",
    },
    "payload": {"id": 1004},
}


def debezium_value(op: str, before: object, after: object, fields: list[dict] = ROW_FIELDS) -> dict:
    row = {
        "type": "struct",
        "fields": fields,
        "optional": True,
        "name": "dbserver1.public.customers.Value",
    }
    return {
        "schema": {
            "type": "struct",
            "fields": [
                {**row, "field": "before"},
                {**row, "field": "after"},
                {
                    "type": "struct",
                    "fields": [
                        {"type": "string", "optional": False, "field": "version"},
                        {"type": "string", "optional": False, "field": "connector"},
                        {"type": "string", "optional": False, "field": "name"},
                        {"type": "int64", "optional": False, "field": "ts_ms"},
                        {"type": "string", "optional": True, "field": "db"},
                        {"type": "string", "optional": False, "field": "schema"},
                        {"type": "string", "optional": False, "field": "table"},
                    ],
                    "optional": False,
                    "name": "io.debezium.connector.postgresql.Source",
                    "field": "source",
                },
                {"type": "string", "optional": False, "field": "op"},
                {"type": "int64", "optional": True, "field": "ts_ms"},
            ],
            "optional": False,
            "name": "dbserver1.public.customers.Envelope",
            "version": 2,
        },
        "payload": {
            "before": before,
            "after": after,
            "source": {
                "version": "2.7.3.Final",
                "connector": "postgresql",
                "name": "dbserver1",
                "ts_ms": 1559033904863,
                "db": "postgres",
                "schema": "public",
                "table": "customers",
            },
            "op": op,
            "ts_ms": 1559033904961,
        },
    }


def dumps(doc: object, **kw: object) -> bytes:
    return json.dumps(doc, **kw).encode()  # type: ignore[arg-type]


ANNE = {"id": 1004, "first_name": "Anne", "email": "annek@noanswer.org"}


def test_debezium_records_with_schemas() -> None:
    d = EnvelopeDecoder()
    key = dumps(DEBEZIUM_KEY, separators=(",", ":"))
    rec = d.decode(
        "dbserver1.public.customers",
        2,
        7,
        99,
        key,
        dumps(debezium_value("c", None, ANNE), separators=(",", ":")),
    )
    assert (rec.op, rec.key, rec.after, rec.before) == ("c", {"id": 1004}, ANNE, None)
    assert rec.key_fields == ("id",)
    assert rec.fields is not None and list(rec.fields) == ["id", "first_name", "email"]
    assert rec.source["table"] == "customers"
    # the second record of the topic takes the cached-schema path: same result shape
    upd = {**ANNE, "email": "anne@example.com"}
    rec2 = d.decode(
        "dbserver1.public.customers",
        2,
        8,
        99,
        key,
        dumps(debezium_value("u", ANNE, upd), separators=(",", ":")),
    )
    assert (rec2.op, rec2.before, rec2.after) == ("u", ANNE, upd)
    assert rec2.fields is rec.fields


def test_pretty_printed_and_reordered_records() -> None:
    d = EnvelopeDecoder()
    value = debezium_value("r", None, ANNE)
    reordered = {"payload": value["payload"], "schema": value["schema"]}
    rec = d.decode("t", 0, 0, 0, dumps(DEBEZIUM_KEY, indent=2), dumps(reordered, indent=2))
    assert rec.after == ANNE and rec.key == {"id": 1004} and rec.fields is not None


def test_schema_change_is_seen() -> None:
    d = EnvelopeDecoder()
    key = dumps(DEBEZIUM_KEY, separators=(",", ":"))
    d.decode("t", 0, 0, 0, key, dumps(debezium_value("c", None, ANNE), separators=(",", ":")))
    wider = [*ROW_FIELDS, {"type": "boolean", "optional": True, "field": "vip"}]
    rec = d.decode(
        "t",
        0,
        1,
        0,
        key,
        dumps(debezium_value("c", None, {**ANNE, "vip": True}, wider), separators=(",", ":")),
    )
    assert rec.fields is not None and "vip" in rec.fields


def test_schemaless_records_and_tombstones() -> None:
    d = EnvelopeDecoder()
    payload = debezium_value("d", ANNE, None)["payload"]
    rec = d.decode("t", 0, 0, 0, b'{"id": 1004}', dumps(payload))
    assert (rec.op, rec.before, rec.fields, rec.key_fields) == ("d", ANNE, None, ("id",))
    tomb = d.decode("t", 0, 1, 0, dumps(DEBEZIUM_KEY), None)
    assert (tomb.op, tomb.tombstone, tomb.key, tomb.before, tomb.after) == (
        "d",
        True,
        {"id": 1004},
        None,
        None,
    )


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        (b'{"id": 1}', b"not json", "invalid_json"),
        (b'{"id": 1}', b'{"hello": "world"}', "not_envelope"),
        (b'{"id": 1}', b"[1, 2]", "not_envelope"),
        (b'{"id": 1}', b'{"op": "c", "after": null}', "not_envelope"),
        (b'{"id": 1}', b'{"op": "c", "after": [1]}', "not_envelope"),
        (b"nope", b'{"op": "c", "after": {}}', "invalid_key"),
        (b"42", b'{"op": "c", "after": {}}', "invalid_key"),
    ],
)
def test_not_envelopes_are_record_errors(key: bytes | None, value: bytes | None, code: str) -> None:
    with pytest.raises(RecordError) as info:
        EnvelopeDecoder().decode("t", 0, 0, 0, key, value)
    assert info.value.code == code


def test_mongodb_update_whose_document_is_gone_is_superseded_not_dead() -> None:
    """MongoDB's updateLookup finds nothing when the document was deleted meanwhile: Debezium
    writes the update with a null ``after``; the later delete carries the final state."""
    from cdc_bridge.decode import EnvelopeDecoder, SupersededChange

    value = orjson.dumps(
        {
            "before": None,
            "after": None,
            "updateDescription": {
                "removedFields": None,
                "updatedFields": '{"n": 2}',
                "truncatedArrays": None,
            },
            "source": {"connector": "mongodb", "name": "act", "db": "activity", "collection": "c"},
            "op": "u",
            "ts_ms": 1,
        }
    )
    key = orjson.dumps({"id": "5"})
    with pytest.raises(SupersededChange):
        EnvelopeDecoder().decode("act.activity.c", 0, 7, 0, key, value)
    # the same shape from a relational source is still not a valid envelope
    relational = orjson.loads(value)
    relational["source"]["connector"] = "postgresql"
    with pytest.raises(RecordError):
        EnvelopeDecoder().decode("t", 0, 8, 0, key, orjson.dumps(relational))


def test_keyless_tombstone_is_skipped_not_dead() -> None:
    """Debezium follows a delete on a keyless table with a null-key tombstone: nothing to apply
    (the delete event carried the row), so routes skip it instead of dead-lettering it."""
    from cdc_bridge.decode import SupersededChange

    with pytest.raises(SupersededChange, match="tombstone without a key"):
        EnvelopeDecoder().decode("shop.public.keyless", 0, 3, 0, None, None)
