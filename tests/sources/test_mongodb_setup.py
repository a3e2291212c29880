"""MongoDB source pieces that need no server: offset, config, pipeline, checks, snapshot helpers."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Int64, MaxKey, ObjectId
from pydantic import ValidationError
from pymongo.errors import OperationFailure

from cdc_bridge.registry import SOURCE_KINDS
from cdc_bridge.sources.coordinator import SnapshotCursor, SnapshotProgress
from cdc_bridge.sources.mongodb.checks import missing_privileges, topology_problem
from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.offset import MongoOffset
from cdc_bridge.sources.mongodb.snapshot import _batches, decode_id, encode_id
from cdc_bridge.sources.mongodb.stream import build_pipeline, is_history_lost, watch_database

TOKEN = {
    "_data": "82635019A0000000032B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F46645F696400646350000004"
}


def cfg(**kw: Any) -> MongoSourceConfig:
    return MongoSourceConfig(
        name="m", kind="mongodb", dsn="mongodb://u:secret@h:27017/?replicaSet=rs0", **kw
    )


def test_registry_points_at_the_model_and_source() -> None:
    kind = SOURCE_KINDS["mongodb"]
    assert kind.config_model() is MongoSourceConfig
    assert kind.implementation().__name__ == "MongoSource"


def test_offset_round_trip() -> None:
    off = MongoOffset.at(TOKEN)
    assert off.cluster_time == (1666193824, 3)
    assert MongoOffset.from_dict(off.to_dict()) == off
    inv = MongoOffset.at(
        TOKEN,
        start_after=True,
        snapshot=SnapshotCursor(("a.b",), "a.c", '{"$oid": "635019a078be67426d7cf4d2"}', 5),
    )
    d = inv.to_dict()
    assert d["start_after"] is True and d["snapshot"]["rows"] == 5
    assert MongoOffset.from_dict(d) == inv
    assert inv.snapshot_running and not off.snapshot_running


def test_offsets_stored_before_the_coordinator_are_migrated() -> None:
    old = MongoOffset.at(TOKEN).to_dict()
    old["snapshot"] = {"done": ["a.b"], "ns": "a.c", "last_id": '{"$numberInt": "7"}', "rows": 5}
    assert MongoOffset.from_dict(old).snapshot == SnapshotCursor(
        ("a.b",), "a.c", '{"$numberInt": "7"}', 5
    )
    old["snapshot"] = {"done": []}
    assert MongoOffset.from_dict(old).snapshot == SnapshotCursor()


def test_config_secret_and_defaults() -> None:
    c = cfg()
    assert "secret" not in repr(c)
    assert c.full_document_mode == "updateLookup"
    assert c.pre_image_mode == "off"
    pre = cfg(capture_mode="change_streams_update_full_with_pre_image")
    assert (pre.full_document_mode, pre.pre_image_mode) == ("updateLookup", "whenAvailable")
    assert cfg(full_document_before_change="required").pre_image_mode == "required"
    assert cfg(capture_mode="change_streams").full_document_mode == "default"


def test_config_names() -> None:
    with pytest.raises(ValidationError, match=r"database\.collection"):
        cfg(collections=["orders"])
    assert cfg(tables=["shop.orders"]).collections == ["shop.orders"]
    c = cfg(databases=["shop"], collections=["crm.people"], exclude_collections=["shop.sessions"])
    assert c.includes("shop", "orders")
    assert not c.includes("shop", "sessions")
    assert c.includes("crm", "people")
    assert not c.includes("crm", "other")
    assert not c.includes("shop", "system.views")
    everything = cfg(exclude_databases=["tmp"])
    assert everything.includes("any", "thing")
    assert not everything.includes("admin", "x")
    assert not everything.includes("tmp", "x")


def test_every_field_is_documented() -> None:
    for name, field in MongoSourceConfig.model_fields.items():
        assert field.description, name
        assert field.examples, name


def test_pipeline_for_collections() -> None:
    c = cfg(collections=["shop.orders", "shop.customers"], exclude_collections=["shop.tmp"])
    assert watch_database(c) == "shop"
    [stage] = build_pipeline(c)
    match = stage["$match"]
    assert match["$or"][0] == {"operationType": "invalidate"}
    include = match["$or"][1]["$and"][0]["$or"]
    assert {"ns.db": "shop", "ns.coll": "orders"} in include
    assert {"ns.db": "shop", "ns.coll": "customers"} in include
    exclude = match["$or"][1]["$and"][1]["$nor"]
    assert {"ns.db": "shop", "ns.coll": "tmp"} in exclude


def test_pipeline_for_deployment() -> None:
    c = cfg()
    assert watch_database(c) is None
    include = build_pipeline(c)[0]["$match"]["$or"][1]["$and"][0]["$or"]
    assert include == [{"ns.db": {"$nin": ["admin", "config", "local"]}}]
    assert watch_database(cfg(databases=["a", "b"])) is None


def test_history_lost_codes() -> None:
    assert is_history_lost(OperationFailure("Resume of change stream was not possible", 286))
    assert is_history_lost(
        OperationFailure("cannot resume stream; the resume token was not found", 280)
    )
    assert is_history_lost(OperationFailure("invalid resume token", 260))
    assert not is_history_lost(OperationFailure("not authorized", 13))
    assert not is_history_lost(ValueError("x"))


def test_topology() -> None:
    assert topology_problem({"isWritablePrimary": True, "setName": "rs0"}) is None
    assert topology_problem({"isWritablePrimary": True, "msg": "isdbgrid"}) is None
    problem = topology_problem({"isWritablePrimary": True})
    assert problem and "replica set" in problem and "--replSet" in problem


def test_missing_privileges() -> None:
    no_auth = {"authInfo": {"authenticatedUsers": [], "authenticatedUserPrivileges": []}}
    assert missing_privileges(no_auth, ["shop"]) == []
    read_shop = {
        "authInfo": {
            "authenticatedUsers": [{"user": "cdc", "db": "admin"}],
            "authenticatedUserPrivileges": [
                {
                    "resource": {"db": "shop", "collection": ""},
                    "actions": ["find", "changeStream", "listCollections"],
                },
                {"resource": {"db": "crm", "collection": ""}, "actions": ["find"]},
            ],
        }
    }
    assert missing_privileges(read_shop, ["shop", "crm"]) == ["changeStream on crm"]
    any_db = {
        "authInfo": {
            "authenticatedUsers": [{"user": "cdc", "db": "admin"}],
            "authenticatedUserPrivileges": [
                {"resource": {"db": "", "collection": ""}, "actions": ["find", "changeStream"]}
            ],
        }
    }
    assert missing_privileges(any_db, ["x", "y"]) == []
    assert missing_privileges(any_db, [""]) == []
    assert missing_privileges(read_shop, [""]) == [
        "find on all databases",
        "changeStream on all databases",
    ]


def test_snapshot_batches_and_ids() -> None:
    assert list(_batches(iter(range(5)), 2)) == [([0, 1], False), ([2, 3], False), ([4], True)]  # type: ignore[arg-type]
    assert list(_batches(iter(range(4)), 2)) == [([0, 1], False), ([2, 3], True)]  # type: ignore[arg-type]
    assert list(_batches(iter([]), 2)) == [([], True)]
    for value in (ObjectId(), Int64(5), 5, "x", {"a": 1, "b": [1]}, 1.5, MaxKey()):
        again = decode_id(encode_id(value))
        assert again == value and type(again) is type(value)


def test_progress_line() -> None:
    p = SnapshotProgress("shop.orders", estimated_rows=100, rows=40, already=40)
    assert p.line().startswith("snapshot shop.orders: 40/~100 rows (40%)")
    assert p.eta_s is None  # no rate measured yet


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_retriable_with_a_clear_message() -> None:
    from cdc_bridge.errors import RetriableError
    from cdc_bridge.sources.mongodb.source import MongoSource

    uri = f"mongodb://127.0.0.1:{_free_port()}/?directConnection=true"
    source = MongoSource(
        MongoSourceConfig(name="down", kind="mongodb", dsn=uri, server_selection_timeout_ms=300)
    )
    try:
        with pytest.raises(RetriableError, match=r"sources\.down\.dsn: cannot reach MongoDB"):
            source.check()
    finally:
        source.close()


def test_bad_uri_is_a_config_error() -> None:
    from cdc_bridge.errors import ConfigError
    from cdc_bridge.sources.mongodb.source import MongoSource

    source = MongoSource(MongoSourceConfig(name="bad", kind="mongodb", dsn="mongodb://h:notaport"))
    with pytest.raises(ConfigError, match=r"sources\.bad\.dsn: invalid MongoDB connection string"):
        source.check()


def test_pipeline_passes_signal_inserts_and_watches_their_database() -> None:
    c = cfg(collections=["shop.orders"], signal_table="ops.debezium_signal")
    assert watch_database(c) is None  # two databases: the stream watches the deployment
    match = build_pipeline(c)[0]["$match"]
    assert {"ns.db": "ops", "ns.coll": "debezium_signal", "operationType": "insert"} in match["$or"]
    same_db = cfg(collections=["shop.orders"], signal_table="shop.debezium_signal")
    assert watch_database(same_db) == "shop"


def test_signal_data_and_conditions() -> None:
    from bson import ObjectId

    from cdc_bridge.sources.incremental import IncrementalSnapshotError, snapshot_request
    from cdc_bridge.sources.mongodb.incremental import parse_filter, signal_data

    # Debezium's MongoDB docs insert `data` as a document; the CLI's JSON text reads the same
    doc = {"data-collections": ["shop.orders"], "type": "incremental"}
    assert snapshot_request(signal_data(doc)) == (["shop.orders"], {})
    assert signal_data('{"data-collections": ["a.b"]}') == '{"data-collections": ["a.b"]}'
    assert signal_data(None) is None
    oid = "5f1f1f1f1f1f1f1f1f1f1f1f"
    assert parse_filter('{"owner": {"$oid": "' + oid + '"}}') == {"owner": ObjectId(oid)}
    assert parse_filter(None) == {}
    with pytest.raises(IncrementalSnapshotError, match="not a JSON query"):
        parse_filter("status = 'open'")
    with pytest.raises(IncrementalSnapshotError, match="not a JSON query document"):
        parse_filter("[1, 2]")
