"""Debezium envelope encoding: every op for each connector, keys, tombstones, schemas on/off."""

from __future__ import annotations

import orjson
import pytest

from cdc_bridge.envelope import (
    CONNECTOR_VERSION,
    ENVELOPE_FIELDS,
    EnvelopeEncoder,
    topic_name,
)
from cdc_bridge.events import (
    CONNECTOR_MONGODB,
    CONNECTOR_MYSQL,
    CONNECTOR_POSTGRES,
    ChangeEvent,
    Column,
    TableSchema,
)
from tests.connect_schema import decode_json_record, validate

COMMON_SOURCE = [
    "version",
    "connector",
    "name",
    "ts_ms",
    "snapshot",
    "db",
    "sequence",
    "ts_us",
    "ts_ns",
]
PG_SOURCE = [*COMMON_SOURCE, "schema", "table", "txId", "lsn", "xmin", "origin", "origin_lsn"]
MYSQL_SOURCE = [
    *COMMON_SOURCE,
    "table",
    "server_id",
    "gtid",
    "file",
    "pos",
    "row",
    "thread",
    "query",
]
MONGO_SOURCE = [*COMMON_SOURCE, "collection", "ord", "lsid", "txnNumber", "wallTime"]

COMMIT_US = 1_700_000_000_123_456
NOW_US = 1_700_000_001_000_000


def pg_table(key: tuple[str, ...] = ("id",)) -> TableSchema:
    return TableSchema(
        CONNECTOR_POSTGRES,
        "shop",
        "shopdb",
        "public",
        "orders",
        (
            Column("id", {"type": "int32", "optional": False}),
            Column("customer", {"type": "string", "optional": True}),
            Column(
                "amount",
                {
                    "type": "bytes",
                    "optional": True,
                    "name": "org.apache.kafka.connect.data.Decimal",
                    "version": 1,
                    "parameters": {"scale": "2", "connect.decimal.precision": "10"},
                },
            ),
        ),
        key,
    )


def pg_source(lsn: int = 100) -> dict[str, object]:
    return {
        "schema": "public",
        "table": "orders",
        "txId": 7,
        "lsn": lsn,
        "xmin": None,
        "origin": None,
        "origin_lsn": None,
    }


def pg_event(
    op: str, before: object, after: object, table: TableSchema | None = None, **kw: object
) -> ChangeEvent:
    return ChangeEvent(table or pg_table(), op, before, after, COMMIT_US, pg_source(), **kw)  # type: ignore[arg-type]


def decode(record_part: bytes | None) -> dict:
    assert record_part is not None
    return orjson.loads(record_part)


def check_record(
    topic: str, key: bytes | None, value: bytes | None
) -> tuple[dict | None, dict | None]:
    """Validate key and value against their embedded schemas; return the payloads."""
    key_payload = value_payload = None
    if key is not None:
        k = decode(key)
        assert k["schema"]["name"] == f"{topic}.Key"
        validate(k["schema"], k["payload"])
        key_payload = k["payload"]
    if value is not None:
        v = decode(value)
        assert v["schema"]["name"] == f"{topic}.Envelope"
        assert v["schema"]["version"] == 2
        validate(v["schema"], v["payload"])
        value_payload = v["payload"]
    return key_payload, value_payload


ROW1 = {"id": 1, "customer": "ada", "amount": "AeI="}
ROW1B = {"id": 1, "customer": "ada lovelace", "amount": "AeI="}


def test_topic_name() -> None:
    assert topic_name("shop", "public", "orders") == "shop.public.orders"
    assert pg_table().topic == "shop.public.orders"


def test_insert_postgres() -> None:
    [(topic, key, value)] = EnvelopeEncoder().encode([pg_event("c", None, ROW1)], now_us=NOW_US)
    assert topic == "shop.public.orders"
    k, v = check_record(topic, key, value)
    assert k == {"id": 1}
    assert v is not None
    assert list(v) == list(ENVELOPE_FIELDS)
    assert v["before"] is None and v["after"] == ROW1 and v["op"] == "c"
    assert (v["ts_ms"], v["ts_us"], v["ts_ns"]) == (NOW_US // 1000, NOW_US, NOW_US * 1000)
    src = v["source"]
    assert list(src) == PG_SOURCE
    assert src["version"] == CONNECTOR_VERSION
    assert src["connector"] == "postgresql"
    assert src["name"] == "shop"
    assert src["db"] == "shopdb"
    assert src["snapshot"] == "false"
    assert (src["ts_ms"], src["ts_us"], src["ts_ns"]) == (
        COMMIT_US // 1000,
        COMMIT_US,
        COMMIT_US * 1000,
    )
    assert v["transaction"] is None
    schema = decode(value)["schema"]
    assert [f["field"] for f in schema["fields"]] == list(ENVELOPE_FIELDS)
    assert schema["fields"][2]["name"] == "io.debezium.connector.postgresql.Source"
    assert schema["fields"][0]["name"] == "shop.public.orders.Value"


def test_update_same_key() -> None:
    records = EnvelopeEncoder().encode([pg_event("u", ROW1, ROW1B)], now_us=NOW_US)
    assert len(records) == 1
    k, v = check_record(*records[0])
    assert k == {"id": 1}
    assert v is not None and v["op"] == "u" and v["before"] == ROW1 and v["after"] == ROW1B


def test_update_without_before() -> None:
    """REPLICA IDENTITY DEFAULT without a key change: no before image."""
    [(topic, key, value)] = EnvelopeEncoder().encode([pg_event("u", None, ROW1B)])
    _, v = check_record(topic, key, value)
    assert v is not None and v["before"] is None and v["after"] == ROW1B


def test_delete_then_tombstone() -> None:
    records = EnvelopeEncoder().encode([pg_event("d", ROW1, None)])
    assert len(records) == 2
    k, v = check_record(*records[0])
    assert v is not None and v["op"] == "d" and v["before"] == ROW1 and v["after"] is None
    topic, tkey, tvalue = records[1]
    assert tvalue is None and tkey == records[0][1] and topic == records[0][0]
    assert k == {"id": 1}


def test_delete_without_tombstone() -> None:
    records = EnvelopeEncoder(tombstones=False).encode([pg_event("d", ROW1, None)])
    assert len(records) == 1
    assert records[0][2] is not None


def test_primary_key_change_is_delete_tombstone_create() -> None:
    new = {"id": 2, "customer": "ada", "amount": "AeI="}
    records = EnvelopeEncoder().encode([pg_event("u", ROW1, new)])
    assert len(records) == 3
    k0, v0 = check_record(*records[0])
    assert k0 == {"id": 1} and v0 is not None and v0["op"] == "d" and v0["before"] == ROW1
    assert records[1][2] is None and records[1][1] == records[0][1]
    k2, v2 = check_record(*records[2])
    assert k2 == {"id": 2} and v2 is not None and v2["op"] == "c"
    assert v2["before"] is None and v2["after"] == new


def test_snapshot_read() -> None:
    [(topic, key, value)] = EnvelopeEncoder().encode([pg_event("r", None, ROW1, snapshot="first")])
    _, v = check_record(topic, key, value)
    assert v is not None and v["op"] == "r" and v["source"]["snapshot"] == "first"


def test_truncate_has_no_key() -> None:
    [(topic, key, value)] = EnvelopeEncoder().encode([pg_event("t", None, None)])
    assert key is None  # Debezium writes truncate events with a null key
    _, v = check_record(topic, None, value)
    assert v is not None and v["op"] == "t" and v["before"] is None and v["after"] is None


def test_keyless_table_has_null_key() -> None:
    table = pg_table(key=())
    [(topic, key, value)] = EnvelopeEncoder().encode([pg_event("c", None, ROW1, table=table)])
    assert key is None
    _, v = check_record(topic, key, value)
    assert v is not None and v["after"] == ROW1
    # a delete of a keyless row is followed by a tombstone with a null key, as Debezium does
    d, tombstone = EnvelopeEncoder().encode([pg_event("d", ROW1, None, table=table)])
    assert d[1] is None and d[2] is not None and tombstone == (topic, None, None)
    assert (
        len(EnvelopeEncoder(tombstones=False).encode([pg_event("d", ROW1, None, table=table)])) == 1
    )


def test_schemas_off_bare_payloads() -> None:
    [(_topic, key, value)] = EnvelopeEncoder(schemas=False).encode(
        [pg_event("c", None, ROW1)], now_us=NOW_US
    )
    assert orjson.loads(key or b"") == {"id": 1}
    v = orjson.loads(value or b"")
    assert list(v) == list(ENVELOPE_FIELDS) and v["after"] == ROW1
    assert decode_json_record(value) == v


def test_decode_json_record_unwraps_schema() -> None:
    [(_, key, value)] = EnvelopeEncoder().encode([pg_event("c", None, ROW1)])
    assert decode_json_record(key) == {"id": 1}
    assert decode_json_record(value)["after"] == ROW1
    assert decode_json_record(None) is None


def test_schema_cache_follows_table_version() -> None:
    """A new TableSchema (after ALTER TABLE) gets its own schema; the old one stays cached."""
    enc = EnvelopeEncoder()
    t1 = pg_table()
    enc.encode([pg_event("c", None, ROW1, table=t1)])
    cached = t1.codec
    enc.encode([pg_event("c", None, ROW1, table=t1)])
    assert t1.codec is cached
    t2 = TableSchema(
        CONNECTOR_POSTGRES,
        "shop",
        "shopdb",
        "public",
        "orders",
        (*t1.columns, Column("note", {"type": "string", "optional": True})),
        ("id",),
    )
    [(_, _, value)] = enc.encode([pg_event("c", None, {**ROW1, "note": "hi"}, table=t2)])
    fields = decode(value)["schema"]["fields"][1]["fields"]
    assert [f["field"] for f in fields] == ["id", "customer", "amount", "note"]


def test_mysql_source_block() -> None:
    table = TableSchema(
        CONNECTOR_MYSQL,
        "inv",
        "inventory",
        "inventory",
        "items",
        (
            Column("sku", {"type": "string", "optional": False}),
            Column("qty", {"type": "int32", "optional": True}),
        ),
        ("sku",),
    )
    src = {
        "table": "items",
        "server_id": 1,
        "gtid": "0-1-42",
        "file": "mysql-bin.000003",
        "pos": 1234,
        "row": 0,
        "thread": 9,
        "query": None,
    }
    enc = EnvelopeEncoder()
    records = enc.encode(
        [
            ChangeEvent(table, "c", None, {"sku": "A", "qty": 1}, COMMIT_US, src),
            ChangeEvent(table, "u", {"sku": "A", "qty": 1}, {"sku": "A", "qty": 2}, COMMIT_US, src),
            ChangeEvent(table, "d", {"sku": "A", "qty": 2}, None, COMMIT_US, src),
        ]
    )
    assert [orjson.loads(v)["payload"]["op"] if v else None for _, _, v in records] == [
        "c",
        "u",
        "d",
        None,
    ]
    assert records[0][0] == "inv.inventory.items"
    _, v = check_record(*records[0])
    assert v is not None
    assert list(v["source"]) == MYSQL_SOURCE
    assert v["source"]["connector"] == "mysql" and v["source"]["db"] == "inventory"
    schema = decode(records[0][2])["schema"]
    assert schema["fields"][2]["name"] == "io.debezium.connector.mysql.Source"


def test_mongodb_events() -> None:
    table = TableSchema(CONNECTOR_MONGODB, "act", "activity", "activity", "clicks", ())
    key = {"id": '{"$oid": "65a0f0f0f0f0f0f0f0f0f0f0"}'}
    src = {
        "collection": "clicks",
        "ord": 1,
        "lsid": None,
        "txnNumber": None,
        "wallTime": 1700000000123,
    }
    update = {
        "removedFields": ["old"],
        "updatedFields": '{"n": 2}',
        "truncatedArrays": [{"field": "tags", "size": 1}],
    }
    enc = EnvelopeEncoder()
    records = enc.encode(
        [
            ChangeEvent(
                table,
                "c",
                None,
                '{"_id": {"$oid": "65a0f0f0f0f0f0f0f0f0f0f0"}, "n": 1}',
                COMMIT_US,
                src,
                key=key,
            ),
            ChangeEvent(
                table,
                "u",
                None,
                '{"_id": {"$oid": "65a0f0f0f0f0f0f0f0f0f0f0"}, "n": 2}',
                COMMIT_US,
                src,
                key=key,
                update_description=update,
            ),
            ChangeEvent(table, "d", None, None, COMMIT_US, src, key=key),
        ]
    )
    assert len(records) == 4 and records[3][2] is None and records[3][1] == records[2][1]
    for topic, k, v in records[:3]:
        kp, vp = check_record(topic, k, v)
        assert kp == key
        assert vp is not None
        assert list(vp) == [
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
        assert list(vp["source"]) == MONGO_SOURCE
        assert vp["source"]["connector"] == "mongodb"
    _, upd = check_record(*records[1])
    assert upd is not None and upd["updateDescription"] == update
    schema = decode(records[0][2])["schema"]
    assert schema["fields"][3]["name"] == "io.debezium.connector.mongo.Source"


@pytest.mark.parametrize("schemas", [True, False])
def test_transaction_block(schemas: bool) -> None:
    tx = {"id": "571:53195832", "total_order": 1, "data_collection_order": 1}
    [(topic, key, value)] = EnvelopeEncoder(schemas=schemas).encode(
        [pg_event("c", None, ROW1, transaction=tx)]
    )
    if schemas:
        _, v = check_record(topic, key, value)
    else:
        v = orjson.loads(value or b"")
    assert v is not None and v["transaction"] == tx
