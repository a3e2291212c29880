"""Change-stream documents, shaped exactly as MongoDB 6/7 emits them -> Debezium MongoDB records.

Each document is built with real bson types and round-tripped through BSON encode/decode, so
the converter sees the very Python types pymongo hands a change stream consumer (Int64,
Timestamp, naive UTC datetimes, Binary subtype 4 for UUIDs, bytes for subtype 0...). Every
field of the resulting Kafka key and value is compared with Debezium's MongoDB format.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import bson
import orjson
import pytest
from bson import SON, Decimal128, Int64, ObjectId, Timestamp
from bson.binary import Binary, UuidRepresentation

from cdc_bridge.envelope import CONNECTOR_VERSION, EnvelopeEncoder
from cdc_bridge.events import ChangeEvent
from cdc_bridge.sources.mongodb.convert import ChangeConverter, StreamNotice, key_id
from cdc_bridge.sources.mongodb.offset import token_cluster_time

NOW_US = 1_700_000_000_123_456
CT = Timestamp(1666193824, 3)  # 0x635019A0, inc 3
WALL = dt.datetime(2022, 10, 19, 15, 37, 4, 271000)
WALL_MS = 1666193824271
COLLECTION_UUID = uuid.UUID("ab1154ac-acd8-49a4-8c61-756d70d3b21f")
OID = ObjectId("635019a078be67426d7cf4d2")


def token(
    ct: Timestamp = CT,
    tail: str = "2B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004",
) -> dict[str, str]:
    """A resume token as 6.0+ servers write it: hex KeyString starting with the cluster time."""
    return {"_data": f"82{ct.time:08X}{ct.inc:08X}{tail}"}


def as_emitted(doc: SON[str, Any]) -> dict[str, Any]:
    """The document as pymongo decodes it from the server's BSON (default codec options)."""
    return bson.decode(bson.encode(doc))


def change(op: str, **fields: Any) -> dict[str, Any]:
    """A change event with the server's field order: _id, operationType, clusterTime, ..."""
    doc: SON[str, Any] = SON([("_id", token()), ("operationType", op), ("clusterTime", CT)])
    if "lsid" in fields:
        doc["lsid"] = fields.pop("lsid")
        doc["txnNumber"] = fields.pop("txnNumber")
    doc["wallTime"] = WALL
    for k, v in fields.items():
        doc[k] = v
    return as_emitted(doc)


def encode(ev: ChangeEvent) -> list[tuple[str, Any, Any]]:
    records = EnvelopeEncoder(schemas=True).encode([ev], now_us=NOW_US)
    out = []
    for topic, k, v in records:
        key = orjson.loads(k) if k is not None else None
        value = orjson.loads(v) if v is not None else None
        out.append((topic, key, value))
    return out


def source_block(
    collection: str = "customers",
    *,
    ord_: int = 3,
    lsid: str | None = None,
    txn: int | None = None,
    wall: int | None = WALL_MS,
    snapshot: str = "false",
) -> dict[str, Any]:
    return {
        "version": CONNECTOR_VERSION,
        "connector": "mongodb",
        "name": "fulfillment",
        "ts_ms": CT.time * 1000,
        "snapshot": snapshot,
        "db": "inventory",
        "sequence": None,
        "ts_us": CT.time * 1_000_000,
        "ts_ns": CT.time * 1_000_000_000,
        "collection": collection,
        "ord": ord_,
        "lsid": lsid,
        "txnNumber": txn,
        "wallTime": wall,
    }


def value(
    op: str,
    before: str | None,
    after: str | None,
    ud: dict[str, Any] | None,
    source: dict[str, Any],
) -> dict[str, Any]:
    return {
        "before": before,
        "after": after,
        "updateDescription": ud,
        "source": source,
        "transaction": None,
        "op": op,
        "ts_ms": NOW_US // 1000,
        "ts_us": NOW_US,
        "ts_ns": NOW_US * 1000,
    }


NS = SON([("db", "inventory"), ("coll", "customers")])
DOC = SON(
    [
        ("_id", Int64(1004)),
        ("first_name", "Anne"),
        ("last_name", "Kretchmar"),
        ("email", "annek@noanswer.org"),
    ]
)
DOC_JSON = '{"_id": {"$numberLong": "1004"},"first_name": "Anne","last_name": "Kretchmar","email": "annek@noanswer.org"}'


@pytest.fixture
def conv() -> ChangeConverter:
    return ChangeConverter("fulfillment")


def test_insert(conv: ChangeConverter) -> None:
    doc = change("insert", fullDocument=DOC, ns=NS, documentKey=SON([("_id", Int64(1004))]))
    ev = conv.convert(doc)
    assert isinstance(ev, ChangeEvent)
    [(topic, key, val)] = encode(ev)
    assert topic == "fulfillment.inventory.customers"
    assert key["schema"] == {
        "type": "struct",
        "fields": [{"type": "string", "optional": False, "field": "id"}],
        "optional": False,
        "name": "fulfillment.inventory.customers.Key",
    }
    assert key["payload"] == {"id": "1004"}
    assert val["schema"]["name"] == "fulfillment.inventory.customers.Envelope"
    assert [f["field"] for f in val["schema"]["fields"]] == [
        "before",
        "after",
        "updateDescription",
        "source",
        "transaction",
        "op",
        "ts_ms",
        "ts_us",
        "ts_ns",
    ]
    assert val["payload"] == value("c", None, DOC_JSON, None, source_block())
    fields = {f["field"]: f for f in val["schema"]["fields"]}
    for doc_field in ("before", "after"):
        assert fields[doc_field] == {
            "type": "string",
            "optional": True,
            "name": "io.debezium.data.Json",
            "version": 1,
            "field": doc_field,
        }
    ud = fields["updateDescription"]
    assert ud["name"] == "io.debezium.connector.mongodb.changestream.updatedescription"
    assert [f["field"] for f in ud["fields"]] == [
        "removedFields",
        "updatedFields",
        "truncatedArrays",
    ]
    assert (
        ud["fields"][2]["items"]["name"]
        == "io.debezium.connector.mongodb.changestream.truncatedarray"
    )
    assert [f["field"] for f in ud["fields"][2]["items"]["fields"]] == ["field", "size"]
    source = fields["source"]
    assert source["name"] == "io.debezium.connector.mongo.Source"
    assert [(f["field"], f["type"], f["optional"]) for f in source["fields"]][-5:] == [
        ("collection", "string", False),
        ("ord", "int32", False),
        ("lsid", "string", True),
        ("txnNumber", "int64", True),
        ("wallTime", "int64", True),
    ]
    assert list(val["payload"]["source"]) == [f["field"] for f in source["fields"]]


def test_update_with_update_description_and_truncated_arrays(conv: ChangeConverter) -> None:
    full = SON(
        [
            ("_id", OID),
            ("name", "x"),
            ("tags", ["a", "b"]),
            ("qty", 7),
            ("price", Decimal128("19.90")),
            ("seen", WALL),
        ]
    )
    doc = change(
        "update",
        ns=NS,
        documentKey=SON([("_id", OID)]),
        updateDescription=SON(
            [
                (
                    "updatedFields",
                    SON(
                        [
                            ("qty", 7),
                            ("price", Decimal128("19.90")),
                            ("seen", WALL),
                            ("tags.1", "b"),
                        ]
                    ),
                ),
                ("removedFields", ["phone", "address.zip"]),
                ("truncatedArrays", [SON([("field", "tags"), ("newSize", 2)])]),
            ]
        ),
        fullDocument=full,
    )
    ev = conv.convert(doc)
    [(_, key, val)] = encode(ev)
    assert key["payload"] == {"id": '{"$oid": "635019a078be67426d7cf4d2"}'}
    after = (
        '{"_id": {"$oid": "635019a078be67426d7cf4d2"},"name": "x","tags": ["a", "b"],"qty": 7,'
        '"price": {"$numberDecimal": "19.90"},"seen": {"$date": 1666193824271}}'
    )
    ud = {
        "removedFields": ["phone", "address.zip"],
        "updatedFields": '{"qty": 7, "price": {"$numberDecimal": "19.90"}, "seen": {"$date": "2022-10-19T15:37:04.271Z"}, "tags.1": "b"}',
        "truncatedArrays": [{"field": "tags", "size": 2}],
    }
    assert val["payload"] == value("u", None, after, ud, source_block())


def test_update_without_lookup_has_no_after_and_null_empty_lists(conv: ChangeConverter) -> None:
    doc = change(
        "update",
        ns=NS,
        documentKey=SON([("_id", Int64(1004))]),
        updateDescription=SON(
            [
                ("updatedFields", SON([("first_name", "Anne Marie")])),
                ("removedFields", []),
                ("truncatedArrays", []),
            ]
        ),
    )
    [(_, key, val)] = encode(conv.convert(doc))
    assert key["payload"] == {"id": "1004"}
    ud = {
        "removedFields": None,
        "updatedFields": '{"first_name": "Anne Marie"}',
        "truncatedArrays": None,
    }
    assert val["payload"] == value("u", None, None, ud, source_block())


def test_update_with_pre_and_post_image(conv: ChangeConverter) -> None:
    before = SON([("_id", Int64(1004)), ("first_name", "unknown")])
    after = SON([("_id", Int64(1004)), ("first_name", "Anne Marie")])
    doc = change(
        "update",
        ns=NS,
        documentKey=SON([("_id", Int64(1004))]),
        updateDescription=SON(
            [
                ("updatedFields", SON([("first_name", "Anne Marie")])),
                ("removedFields", []),
                ("truncatedArrays", []),
            ]
        ),
        fullDocument=after,
        fullDocumentBeforeChange=before,
    )
    [(_, _, val)] = encode(conv.convert(doc))
    assert val["payload"]["before"] == '{"_id": {"$numberLong": "1004"},"first_name": "unknown"}'
    assert val["payload"]["after"] == '{"_id": {"$numberLong": "1004"},"first_name": "Anne Marie"}'
    assert val["payload"]["op"] == "u"


def test_replace_is_update_without_update_description(conv: ChangeConverter) -> None:
    doc = change(
        "replace",
        fullDocument=SON([("_id", "abc"), ("v", 2)]),
        ns=NS,
        documentKey=SON([("_id", "abc")]),
    )
    [(_, key, val)] = encode(conv.convert(doc))
    assert key["payload"] == {"id": '"abc"'}
    assert val["payload"] == value("u", None, '{"_id": "abc","v": 2}', None, source_block())


def test_delete_without_pre_image_then_tombstone(conv: ChangeConverter) -> None:
    doc = change("delete", ns=NS, documentKey=SON([("_id", 42)]))
    [(t1, k1, v1), (t2, k2, v2)] = encode(conv.convert(doc))
    assert k1["payload"] == {"id": "42"}
    assert v1["payload"] == value("d", None, None, None, source_block())
    assert (t2, k2, v2) == (t1, k1, None)  # tombstone: same key, null value


def test_delete_with_pre_image(conv: ChangeConverter) -> None:
    doc = change(
        "delete",
        ns=NS,
        documentKey=SON([("_id", 42)]),
        fullDocumentBeforeChange=SON([("_id", 42), ("name", "gone")]),
    )
    records = encode(conv.convert(doc))
    assert records[0][2]["payload"] == value(
        "d", '{"_id": 42,"name": "gone"}', None, None, source_block()
    )
    assert records[1][2] is None


def test_transactional_events_carry_lsid_and_txn_number(conv: ChangeConverter) -> None:
    lsid = SON(
        [
            (
                "id",
                Binary.from_uuid(
                    uuid.UUID("140ed813-35e0-4175-97f4-ec66ce5947db"), UuidRepresentation.STANDARD
                ),
            ),
            (
                "uid",
                Binary(
                    bytes.fromhex(
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                    ),
                    0,
                ),
            ),
        ]
    )
    docs = [
        change(
            "insert",
            lsid=lsid,
            txnNumber=Int64(1),
            fullDocument=SON([("_id", i)]),
            ns=NS,
            documentKey=SON([("_id", i)]),
        )
        for i in (1, 2)
    ]
    lsid_json = (
        '{"id": {"$binary": "FA7YEzXgQXWX9OxmzllH2w==","$type": "04"},'
        '"uid": {"$binary": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","$type": "00"}}'
    )
    for i, doc in zip((1, 2), docs, strict=True):
        [(_, key, val)] = encode(conv.convert(doc))
        assert key["payload"] == {"id": str(i)}
        assert val["payload"] == value(
            "c", None, f'{{"_id": {i}}}', None, source_block(lsid=lsid_json, txn=1)
        )


@pytest.mark.parametrize(
    ("doc_id", "expected"),
    [
        (OID, '{"$oid": "635019a078be67426d7cf4d2"}'),
        ("1234", '"1234"'),
        (1234, "1234"),
        (Int64(2**40), "1099511627776"),
        (12.34, "12.34"),
        (10.0, "10.0"),
        (
            SON([("hi", "kafka"), ("nums", [10.0, 100.0, 1000.0])]),
            '{"hi": "kafka","nums": [10.0, 100.0, 1000.0]}',
        ),
        (
            SON([("tenant", 7), ("order", OID)]),
            '{"tenant": 7,"order": {"$oid": "635019a078be67426d7cf4d2"}}',
        ),
        (Binary(b"kafka", 0), '{"$binary": {"base64": "a2Fma2E=","subType": "00"}}'),
        (dt.datetime(2020, 1, 2, 3, 4, 5), '{"$date": "2020-01-02T03:04:05Z"}'),
        (Decimal128("1.10"), '{"$numberDecimal": "1.10"}'),
    ],
)
def test_key_of_id_types(conv: ChangeConverter, doc_id: Any, expected: str) -> None:
    doc = change("delete", ns=NS, documentKey=SON([("_id", doc_id)]))
    ev = conv.convert(doc)
    assert isinstance(ev, ChangeEvent)
    assert ev.key == {"id": expected}
    assert key_id(as_emitted(SON([("_id", doc_id)]))["_id"]) == {"id": expected}


def test_sharded_document_key_uses_only_id(conv: ChangeConverter) -> None:
    doc = change("delete", ns=NS, documentKey=SON([("region", "eu"), ("_id", 5)]))
    ev = conv.convert(doc)
    assert isinstance(ev, ChangeEvent)
    assert ev.key == {"id": "5"}


def test_drop_rename_drop_database_invalidate_are_notices(conv: ChangeConverter) -> None:
    drop = conv.convert(change("drop", ns=NS))
    assert drop == StreamNotice("drop", "inventory", "customers", None, token(), CT)
    rename = conv.convert(
        change("rename", ns=NS, to=SON([("db", "inventory"), ("coll", "clients")]))
    )
    assert isinstance(rename, StreamNotice)
    assert (rename.operation, rename.namespace, rename.to) == (
        "rename",
        "inventory.customers",
        ("inventory", "clients"),
    )
    dropdb = conv.convert(change("dropDatabase", ns=SON([("db", "inventory")])))
    assert isinstance(dropdb, StreamNotice)
    assert (dropdb.operation, dropdb.database, dropdb.collection, dropdb.namespace) == (
        "dropDatabase",
        "inventory",
        None,
        "inventory",
    )
    inv_doc = as_emitted(
        SON(
            [
                ("_id", token()),
                ("operationType", "invalidate"),
                ("clusterTime", CT),
                ("wallTime", WALL),
            ]
        )
    )
    inv = conv.convert(inv_doc)
    assert isinstance(inv, StreamNotice)
    assert (inv.operation, inv.token, inv.namespace) == ("invalidate", token(), "<deployment>")


def test_expanded_ddl_events_are_notices(conv: ChangeConverter) -> None:
    doc = change(
        "createIndexes",
        ns=NS,
        collectionUUID=Binary.from_uuid(COLLECTION_UUID),
        operationDescription=SON([("indexes", [])]),
    )
    n = conv.convert(doc)
    assert isinstance(n, StreamNotice)
    assert n.operation == "createIndexes"


def test_missing_wall_time_is_null(conv: ChangeConverter) -> None:
    raw = as_emitted(
        SON(
            [
                ("_id", token()),
                ("operationType", "insert"),
                ("clusterTime", CT),
                ("fullDocument", SON([("_id", 1)])),
                ("ns", NS),
                ("documentKey", SON([("_id", 1)])),
            ]
        )
    )
    ev = conv.convert(raw)
    assert isinstance(ev, ChangeEvent)
    assert ev.source["wallTime"] is None


def test_relaxed_json_output(conv: ChangeConverter) -> None:
    relaxed = ChangeConverter("fulfillment", json_output="relaxed")
    doc = change(
        "insert",
        fullDocument=SON([("_id", Int64(7)), ("at", WALL), ("b", Binary(b"\x01", 0))]),
        ns=NS,
        documentKey=SON([("_id", Int64(7))]),
    )
    ev = relaxed.convert(doc)
    assert isinstance(ev, ChangeEvent)
    assert (
        ev.after
        == '{"_id": 7,"at": {"$date": "2022-10-19T15:37:04.271Z"},"b": {"$binary": {"base64": "AQ==","subType": "00"}}}'
    )
    assert ev.key == {"id": "7"}


def test_snapshot_event(conv: ChangeConverter) -> None:
    table = conv.table("inventory", "customers")
    ev = conv.snapshot_event(table, as_emitted(DOC), CT, "first")
    [(_, key, val)] = encode(ev)
    assert key["payload"] == {"id": "1004"}
    assert val["payload"] == value(
        "r", None, DOC_JSON, None, source_block(wall=None, snapshot="first")
    )


def test_tables_are_cached_per_collection(conv: ChangeConverter) -> None:
    assert conv.table("a", "b") is conv.table("a", "b")
    assert conv.table("a", "b") is not conv.table("a", "c")
    assert conv.table("a", "b").topic == "fulfillment.a.b"


def test_resume_token_cluster_time() -> None:
    assert token_cluster_time(token(Timestamp(1666193824, 7))) == Timestamp(1666193824, 7)
    assert token_cluster_time({"_data": "zz"}) is None
    assert token_cluster_time(None) is None
