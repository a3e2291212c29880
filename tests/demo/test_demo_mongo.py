"""The demo's MongoDB variant of `activity`: its config, traffic plan, the mart path from change
documents to SQLite rows, the verification of documents, and a short run on a replica set."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from cdc_bridge.demo import mongo, verify
from cdc_bridge.demo.run import config_text
from tests.demo.test_demo import DEMO_ENV, run_short_demo

MONGO_ENV = {**DEMO_ENV, "DEMO_MONGODB_URI": "mongodb://127.0.0.1:27017/?replicaSet=rs0"}


def _parse(text: str) -> Any:
    from cdc_bridge.config import parse_config

    return parse_config(text, env=MONGO_ENV)


def _route(cfg: Any, name: str) -> Any:
    return next(r for r in cfg.routes if r.name == name)


def test_mongo_config_swaps_only_the_activity_source() -> None:
    shipped, variant = _parse(config_text()), _parse(config_text(mongodb=True))
    kinds = {s.name: s.kind for s in variant.sources}
    assert kinds == {"orders": "postgres", "billing": "postgres", "inventory": "mysql"} | {
        "activity": "mongodb",
        "salesforce": "salesforce",
    }
    assert {s.name: s.kind for s in shipped.sources}["activity"] == "mysql"
    activity = next(s for s in variant.sources if s.name == "activity")
    assert activity.collections == ["activity.sessions", "activity.page_views"]
    assert activity.json_output == "relaxed"
    # Same routes, same targets; the two activity routes select scalar fields, _id -> id.
    assert [(r.name, r.to) for r in variant.routes] == [(r.name, r.to) for r in shipped.routes]
    for name, collection in (
        ("sessions-to-mart", "sessions"),
        ("page-views-to-mart", "page_views"),
    ):
        route = _route(variant, name)
        assert route.mapping.include == list(mongo.FIELDS[collection])
        assert route.mapping.rename == {"_id": "id"}
        assert _route(shipped, name).mapping.is_identity
    assert (
        _route(variant, "page-views-to-mart").filter == _route(shipped, "page-views-to-mart").filter
    )
    assert "activity  (MongoDB)" in config_text(mongodb=True)


def test_mongo_config_refuses_a_template_without_the_activity_block() -> None:
    with pytest.raises(ValueError, match="activity source"):
        mongo.mongo_config_text(config_text().replace("server_id = 5402", "server_id = 5403"))


Colls = dict[str, dict[int, dict[str, Any]]]


def _run_plan(
    steps: int, seed: int = 3
) -> tuple[mongo.ActivityState, Colls, list[mongo.MongoOp], Colls]:
    """Apply a traffic plan to in-memory collections (the semantics of the pymongo calls);
    returns the state, the final collections, the writes and the seeded collections."""
    rng = random.Random(seed)
    sessions, views = mongo.seed_documents(rng, scale=2)
    seeded = {
        "sessions": {d["_id"]: dict(d) for d in sessions},
        "page_views": {d["_id"]: dict(d) for d in views},
    }
    colls = {
        "sessions": {d["_id"]: d for d in sessions},
        "page_views": {d["_id"]: d for d in views},
    }
    state = mongo.state_from_documents(sessions, views)
    all_ops: list[mongo.MongoOp] = []
    for _ in range(steps):
        ops = mongo.plan_op(rng, state)
        all_ops.extend(ops)
        for op in ops:
            _apply(colls[op.collection], op)
    return state, colls, all_ops, seeded


def _matches(doc: dict[str, Any], flt: dict[str, Any]) -> bool:
    for k, v in flt.items():
        if isinstance(v, dict) and "$gt" in v:
            if not doc.get(k, 0) > v["$gt"]:
                return False
        elif doc.get(k) != v:
            return False
    return True


def _apply(coll: dict[int, dict[str, Any]], op: mongo.MongoOp) -> None:
    flt = dict(op.filter or {})
    if op.action == "insert_one":
        doc = dict(op.document or {})
        assert doc["_id"] not in coll, "the plan reuses an _id"
        coll[doc["_id"]] = doc
    elif op.action == "update_one":
        for doc in coll.values():
            if _matches(doc, flt):
                upd = op.update or {}
                for k, v in upd.get("$set", {}).items():
                    doc[k] = v
                for k in upd.get("$unset", {}):
                    doc.pop(k, None)
                for k, v in upd.get("$inc", {}).items():
                    doc[k] = doc.get(k, 0) + v
                break
    else:
        for i in [i for i, d in coll.items() if _matches(d, flt)]:
            del coll[i]
            if op.action == "delete_one":
                break


def test_traffic_plan_keeps_state_and_collections_in_step() -> None:
    state, colls, ops, _seeded = _run_plan(400)
    kinds = {(op.action, next(iter(op.update or {"-": 0}))) for op in ops}
    assert {("insert_one", "-"), ("delete_one", "-"), ("delete_many", "-")} <= kinds
    assert {("update_one", "$set"), ("update_one", "$unset"), ("update_one", "$inc")} <= kinds
    assert sorted(state.sessions) == sorted(colls["sessions"])
    assert state.views == {i: d["session_id"] for i, d in colls["page_views"].items()}
    assert state.tagged == {i for i, d in colls["sessions"].items() if "campaign" in d}
    # view counts stay consistent: every session counts its live page views
    for sid, doc in colls["sessions"].items():
        assert doc["page_views"] == sum(1 for v in state.views.values() if v == sid)
    # no page view points at a deleted session
    assert set(state.views.values()) <= set(colls["sessions"])


def test_traffic_plan_never_deletes_a_recently_updated_session() -> None:
    """An update's full document is looked up when the stream is read; deleting the document
    right after would turn the update into a null `after` (see DELETE_COOLDOWN)."""
    rng = random.Random(11)
    sessions, views = mongo.seed_documents(rng, scale=1)
    state = mongo.state_from_documents(sessions, views)
    last_update: dict[int, int] = {}
    deletes = 0
    for step in range(1, 2001):
        for op in mongo.plan_op(rng, state):
            if op.collection != "sessions":
                continue
            sid = (op.filter or {}).get("_id")
            if op.action == "update_one":
                last_update[sid] = step
            elif op.action == "delete_one":
                deletes += 1
                assert step - last_update.get(sid, -(10**6)) > mongo.DELETE_COOLDOWN, (sid, step)
    assert deletes > 10 and state.step == 2000


def _change_stream(
    collection: str, before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Change documents (as pymongo returns them) that turn ``before`` into ``after``."""
    ns = {"db": "activity", "coll": collection}
    out: list[dict[str, Any]] = []
    for i, doc in after.items():
        if i not in before:
            out.append(
                {
                    "operationType": "insert",
                    "ns": ns,
                    "documentKey": {"_id": i},
                    "fullDocument": doc,
                }
            )
        elif before[i] != doc:
            removed = [k for k in before[i] if k not in doc]
            out.append(
                {
                    "operationType": "update",
                    "ns": ns,
                    "documentKey": {"_id": i},
                    "fullDocument": doc,
                    "updateDescription": {"updatedFields": {}, "removedFields": removed},
                }
            )
    for i in before:
        if i not in after:
            out.append({"operationType": "delete", "ns": ns, "documentKey": {"_id": i}})
    return out


def test_documents_reach_the_mart_and_verify(tmp_path: Path) -> None:
    """Change documents -> the MongoDB source's converter -> envelope -> the demo's mart routes
    (mapping and filter) -> the SQLite database sink; then the verification of documents."""
    from cdc_bridge.decode import EnvelopeDecoder
    from cdc_bridge.envelope import EnvelopeEncoder
    from cdc_bridge.routes import compile_route
    from cdc_bridge.sinks.base import SinkContext
    from cdc_bridge.sinks.database.config import DatabaseSinkConfig
    from cdc_bridge.sinks.database.sink import DatabaseSink
    from cdc_bridge.sources.mongodb.convert import ChangeConverter

    cfg = _parse(config_text(mongodb=True))
    converter = ChangeConverter("activity", json_output="relaxed")
    encoder = EnvelopeEncoder(schemas=True)
    mart = tmp_path / "mart.db"
    sink_cfg = DatabaseSinkConfig.model_validate(
        {"name": "mart", "kind": "database", "url": f"sqlite:///{mart}"}
    )
    mongo.create_mart_tables(str(mart))  # as the demo does: documents carry no column types

    _state, final, _ops, seeded = _run_plan(300, seed=5)
    assert {k: set(v) for k, v in seeded.items()} != {k: set(v) for k, v in final.items()}

    routes = {"sessions": "sessions-to-mart", "page_views": "page-views-to-mart"}
    for collection, route_name in routes.items():
        rcfg = _route(cfg, route_name)
        compiled = compile_route(rcfg, "demo")
        sink = DatabaseSink(sink_cfg, rcfg, SinkContext("demo", route_name, f"demo.{route_name}"))
        sink.open()
        try:
            events = [
                converter.snapshot_event(converter.table("activity", collection), d, None, "true")
                for d in seeded[collection].values()
            ] + [
                converter.convert(c)
                for c in _change_stream(collection, seeded[collection], final[collection])
            ]
            decoder = EnvelopeDecoder()
            batch = []
            for offset, (topic, k, v) in enumerate(encoder.encode(events)):  # type: ignore[arg-type]
                assert topic == f"activity.activity.{collection}"
                rec = compiled.prepare(decoder.decode(topic, 0, offset, 0, k, v))
                if rec is not None:
                    batch.append(rec)
            assert sink.apply(batch, {(f"activity.activity.{collection}", 0): len(events)}).ok
        finally:
            sink.close()

    checks = [c for c in verify.mongo_checks() if c.source == "activity"]
    assert {c.table for c in checks} == {"sessions", "page_views"}
    results = []
    for check in checks:
        docs = list(final[check.source_table].values())
        target = verify._sqlite_rows(str(mart), check.table)
        assert target is not None
        assert all("campaign" not in r and "_id" not in r for r in target)
        result = verify.compare_target(check, docs, target)
        assert result.ok, result.examples
        assert result.source_rows == result.target_rows > 0
        results.append(result)
    # the filter dropped short page views: fewer mart rows than documents
    pv = next(r for r in results if r.check.table == "page_views")
    assert pv.target_rows < len(final["page_views"])


def _docs() -> list[dict[str, Any]]:
    return [
        {
            "_id": 1,
            "session_id": 1,
            "path": "/",
            "duration_ms": 5000,
            "viewed_at": "2026-01-01T00:00:00",
            "campaign": "x",
        },
        {
            "_id": 2,
            "session_id": 1,
            "path": "/docs",
            "duration_ms": 300,
            "viewed_at": "2026-01-01T00:00:01",
        },
        {
            "_id": 3,
            "session_id": 2,
            "path": "/cart",
            "duration_ms": 1500,
            "viewed_at": "2026-01-01T00:00:02",
        },
    ]


def _rows(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": d["_id"], **{k: d[k] for k in mongo.PAGE_VIEW_FIELDS if k != "_id"}}
        for d in docs
        if d["duration_ms"] >= 1000
    ]


def test_verification_of_documents_finds_every_kind_of_difference() -> None:
    check = next(c for c in verify.mongo_checks() if c.table == "page_views")
    assert check.target_key() == ("id",)
    docs = _docs()
    ok = verify.compare_target(check, docs, _rows(docs))
    assert ok.ok and ok.source_rows == ok.target_rows == 2

    changed = copy.deepcopy(docs)
    changed[2]["path"] = "/checkout"
    diff = verify.compare_target(check, changed, _rows(docs))
    assert (diff.missing, diff.extra, diff.different) == (0, 0, 1) and not diff.ok
    assert any("path" in e for e in diff.examples)

    gone = verify.compare_target(check, docs[:2], _rows(docs))
    assert gone.extra == 1 and not gone.ok
    missing = verify.compare_target(check, docs, _rows(docs)[:1])
    assert missing.missing == 1 and not missing.ok
    absent = verify.compare_target(check, docs, None)
    assert absent.error and not absent.ok


def test_demo_short_run_with_mongodb(tmp_path: Path, mongodb_uri: str) -> None:
    """The demo with `activity` on a MongoDB replica set: every target matches its source."""
    proc = run_short_demo(tmp_path, {"CDC_TEST_MONGODB_URI": mongodb_uri})
    out = proc.stdout + proc.stderr
    assert "activity runs on MongoDB" in proc.stdout, out[-4000:]
    assert proc.returncode == 0, out[-6000:]
    assert 'kind = "mongodb"' in (tmp_path / "routes.toml").read_text()
    report = json.loads((tmp_path / "verification.json").read_text())
    activity = [c for c in report["checks"] if c["source"].startswith("activity.")]
    assert len(activity) == 2
    for check in report["checks"]:
        assert check["ok"], (check, out[-4000:])
        if check["target"] == verify.ECHO:  # the two-way check counts echoes: none came back
            assert check["source_rows"] == check["target_rows"] == 0, check
            continue
        assert check["source_rows"] > 0 and check["target_rows"] == check["source_rows"], check
    assert "dead letters: 0" in proc.stdout
