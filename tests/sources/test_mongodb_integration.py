"""MongoDB source against a real replica set and a real Kafka-protocol broker.

Needs a replica set: ``CDC_TEST_MONGODB_URI=mongodb://host:27017/?replicaSet=rs0`` or
``CDC_TEST_USE_TESTCONTAINERS=1`` with a Docker engine. Without one, every test here is reported
as skipped with the reason (the ``mongodb_uri`` fixture), never silently passed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from cdc_bridge.errors import ConfigError
from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.offset import MongoOffset
from cdc_bridge.sources.mongodb.source import HistoryLost, MongoSource
from cdc_bridge.testing.services import KafkaService
from cdc_bridge.testing.sources import OffsetStoreDouble, SourceProcess, SourceThread
from tests.sources.mongodb_harness import (
    TopicReader,
    doc_id,
    events,
    ids_with,
    replay,
)

pytestmark = pytest.mark.mongodb

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mongo(mongodb_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    yield client
    client.close()


@pytest.fixture
def database(mongo: MongoClient[dict[str, Any]]) -> Iterator[str]:
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    yield name
    mongo.drop_database(name)


def source_config(uri: str, database: str, **kw: Any) -> MongoSourceConfig:
    name = kw.pop("name", f"m{uuid.uuid4().hex[:8]}")
    defaults: dict[str, Any] = {"heartbeat_interval_ms": 100, "snapshot_batch_size": 200}
    defaults.update(kw)
    return MongoSourceConfig(name=name, kind="mongodb", dsn=uri, databases=[database], **defaults)


def handed_off(running: SourceThread) -> bool:
    """Kafka confirmed the snapshot's hand-off offset (streaming from the noted point)."""
    if running.error is not None:
        raise AssertionError(f"source failed: {running.error!r}")
    offset = running.ctx.safe_offset()
    return offset is not None and offset.snapshot is None


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_streams_insert_update_replace_delete(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    coll = mongo[database]["items"]
    coll.insert_one({"_id": "seed"})
    cfg = source_config(mongodb_uri, database, snapshot="never")
    running = SourceThread(cfg, kafka.bootstrap, OffsetStoreDouble()).start()
    reader = TopicReader(kafka.bootstrap, f"{cfg.name}.{database}.items")
    try:
        assert wait_for(lambda: running.ctx.safe_offset() is not None), running.error
        coll.insert_one({"_id": 1, "name": "a", "tags": ["x", "y", "z"]})
        coll.update_one({"_id": 1}, {"$set": {"name": "b"}, "$unset": {"missing": ""}})
        coll.update_one({"_id": 1}, [{"$set": {"tags": {"$slice": ["$tags", 1]}}}])
        coll.replace_one({"_id": 1}, {"name": "c"})
        with mongo.start_session() as s, s.start_transaction():
            coll.insert_one({"_id": 2}, session=s)
            coll.insert_one({"_id": 3}, session=s)
        coll.delete_one({"_id": 1})
        assert reader.until(lambda r: len(r) >= 8), (reader.records, running.error)
        vals = events(reader.records)
        assert [v["op"] for v in vals] == ["c", "u", "u", "u", "c", "c", "d"]
        assert vals[0]["after"] == '{"_id": 1,"name": "a","tags": ["x", "y", "z"]}'
        assert vals[1]["updateDescription"]["updatedFields"] == '{"name": "b"}'
        assert vals[2]["updateDescription"]["truncatedArrays"] == [{"field": "tags", "size": 1}]
        assert vals[3]["updateDescription"] is None and vals[3]["after"] == '{"_id": 1,"name": "c"}'
        assert vals[4]["source"]["lsid"] and vals[4]["source"]["txnNumber"] is not None
        assert vals[4]["source"]["lsid"] == vals[5]["source"]["lsid"]
        assert vals[6]["before"] is None and vals[6]["after"] is None
        assert reader.records[-1] == (reader.records[-2][0], None)  # tombstone after the delete
        assert [doc_id(k) for k, _ in reader.records] == [1, 1, 1, 1, 2, 3, 1, 1]
        assert all(
            v["source"]["collection"] == "items" and v["source"]["db"] == database for v in vals
        )
    finally:
        reader.close()
        running.stop()
    assert running.error is None


def test_resume_after_restart_misses_nothing(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    coll = mongo[database]["items"]
    coll.insert_many([{"_id": i} for i in range(100)])
    store = OffsetStoreDouble()
    cfg = source_config(mongodb_uri, database)
    topic = f"{cfg.name}.{database}.items"
    first = SourceThread(cfg, kafka.bootstrap, store).start()
    reader = TopicReader(kafka.bootstrap, topic)
    try:
        assert wait_for(lambda: handed_off(first), 60)
        coll.insert_many([{"_id": i} for i in range(100, 200)])
        assert reader.until(lambda r: ids_with(r) >= set(range(200))), first.error
        first.stop()
        assert first.error is None
        saved = MongoOffset.from_dict(store.offsets[cfg.name])
        assert saved.resume_token and saved.snapshot is None
        coll.insert_many([{"_id": i} for i in range(200, 300)])  # while the source is down
        second = SourceThread(cfg, kafka.bootstrap, store).start()
        try:
            coll.insert_many([{"_id": i} for i in range(300, 400)])
            assert reader.until(lambda r: ids_with(r) >= set(range(400))), second.error
            snapshot_reads = [v for v in events(reader.records) if v["op"] == "r"]
            assert len(snapshot_reads) == 100  # the restart resumed; it did not snapshot again
        finally:
            second.stop()
        assert second.error is None
    finally:
        reader.close()


def _runner(uri: str, database: str, bootstrap: str, workdir: Path, name: str) -> SourceProcess:
    config = {
        "name": name,
        "kind": "mongodb",
        "dsn": uri,
        "databases": [database],
        "snapshot": "initial",
        "snapshot_batch_size": 100,
        "stream_batch_size": 100,
        "heartbeat_interval_ms": 100,
    }
    return SourceProcess(workdir, config, bootstrap).start()


@pytest.mark.slow
def test_sigkill_and_restart_misses_nothing(
    mongodb_uri: str,
    kafka: KafkaService,
    mongo: MongoClient[dict[str, Any]],
    database: str,
    tmp_path: Path,
) -> None:
    coll = mongo[database]["items"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(500)])
    name = f"k{uuid.uuid4().hex[:8]}"
    total = 3000
    written = threading.Event()

    def writer() -> None:
        for i in range(500, total):
            coll.insert_one({"_id": i, "v": 0})
            if i % 7 == 0:
                coll.update_one({"_id": i - 300}, {"$inc": {"v": 1}})
        written.set()

    proc = _runner(mongodb_uri, database, kafka.bootstrap, tmp_path, name)
    reader = TopicReader(kafka.bootstrap, f"{name}.{database}.items")
    t = threading.Thread(target=writer)
    t.start()
    try:
        assert reader.until(lambda r: len(ids_with(r)) >= 1200, 60)
        proc.kill()
        assert proc.state.exists(), "no offset was checkpointed before the kill"
        time.sleep(0.5)
        proc.start()
        t.join(120)
        assert written.is_set()
        assert reader.until(lambda r: ids_with(r) >= set(range(total)), 120)
        assert reader.until(lambda r: replay(r) == {d["_id"]: d for d in coll.find()}, 60)
    finally:
        reader.close()
        code = proc.stop()
    assert code == 0, proc.log_tail()


def test_snapshot_hand_off_with_concurrent_writer(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    coll = mongo[database]["items"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(4000)])
    cfg = source_config(mongodb_uri, database, snapshot_batch_size=50)
    running = SourceThread(cfg, kafka.bootstrap, OffsetStoreDouble()).start()
    stop_writing = threading.Event()

    progress = [0]

    def writer() -> None:
        i = 4000
        while not stop_writing.is_set() and i < 6000:
            progress[0] += 1
            coll.insert_one({"_id": i, "v": 0})
            coll.update_one({"_id": i % 4000}, {"$inc": {"v": 1}})
            if i % 10 == 0:
                coll.delete_one({"_id": (i * 7) % 4000})
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    reader = TopicReader(kafka.bootstrap, f"{cfg.name}.{database}.items")
    try:
        assert wait_for(lambda: handed_off(running), 120)
        assert progress[0] > 0, "the writer did not overlap the scan"
        stop_writing.set()
        t.join(60)
        final = {d["_id"]: d for d in coll.find()}
        assert reader.until(lambda r: replay(r) == final, 120), running.error
        vals = events(reader.records)
        reads = [v for v in vals if v["op"] == "r"]
        assert reads[0]["source"]["snapshot"] == "first"
        assert reads[-1]["source"]["snapshot"] == "last"
        assert {v["source"]["snapshot"] for v in reads[1:-1]} <= {"true"}
        assert all(v["source"]["snapshot"] == "false" for v in vals if v["op"] != "r")
    finally:
        stop_writing.set()
        reader.close()
        running.stop()
    assert running.error is None


def _forged_old_token(mongo: MongoClient[dict[str, Any]], database: str) -> dict[str, str]:
    """A real resume token with its cluster time moved to 1970: far before the oplog's start."""
    with mongo[database].watch() as stream:
        mongo[database]["items"].insert_one({"_id": "probe"})
        change = stream.try_next()
        while change is None:
            change = stream.try_next()
    data = change["_id"]["_data"]
    return {"_data": "82" + "00000001" + "00000001" + data[18:]}


def test_history_lost_stops_with_recovery_steps(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    store = OffsetStoreDouble()
    cfg = source_config(mongodb_uri, database, snapshot="initial")
    store.offsets[cfg.name] = MongoOffset.at(_forged_old_token(mongo, database)).to_dict()
    running = SourceThread(cfg, kafka.bootstrap, store).start()
    running.thread.join(60)
    running.stop()
    assert isinstance(running.error, HistoryLost)
    text = str(running.error)
    assert (
        "no longer in the oplog" in text and 'snapshot = "when_needed"' in text and "oplog" in text
    )


def test_history_lost_resnapshots_when_needed(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    store = OffsetStoreDouble()
    cfg = source_config(mongodb_uri, database, snapshot="when_needed")
    store.offsets[cfg.name] = MongoOffset.at(_forged_old_token(mongo, database)).to_dict()
    mongo[database]["items"].insert_many([{"_id": i} for i in range(50)])
    running = SourceThread(cfg, kafka.bootstrap, store).start()
    reader = TopicReader(kafka.bootstrap, f"{cfg.name}.{database}.items")
    try:
        assert reader.until(lambda r: ids_with(r, "r") >= set(range(50)), 60), running.error
        mongo[database]["items"].insert_one({"_id": 50})
        assert reader.until(lambda r: 50 in ids_with(r, "c"), 60), running.error
    finally:
        reader.close()
        running.stop()
    assert running.error is None


def test_drop_rename_drop_database_and_invalidate_do_not_stop_the_source(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    db = mongo[database]
    db["items"].insert_one({"_id": 0})
    cfg = source_config(mongodb_uri, database, snapshot="never")
    running = SourceThread(cfg, kafka.bootstrap, OffsetStoreDouble()).start()
    reader = TopicReader(kafka.bootstrap, f"{cfg.name}.{database}.items")
    try:
        assert wait_for(lambda: running.ctx.safe_offset() is not None), running.error
        db["items"].insert_one({"_id": 1})
        db["items"].rename("renamed")
        db["renamed"].drop()
        db["items"].insert_one({"_id": 2})
        mongo.drop_database(database)  # database-level stream: dropDatabase, then invalidate
        assert wait_for(
            lambda: any(n.operation == "dropDatabase" for n in running.source.notices), 30
        )
        time.sleep(0.5)
        db["items"].insert_one({"_id": 3})  # after the invalidate: the reopened stream sees it
        assert reader.until(lambda r: ids_with(r, "c") >= {1, 2, 3}, 60), (
            running.error,
            running.source.notices,
        )
        ops = [n.operation for n in running.source.notices]
        assert "rename" in ops and "drop" in ops
        assert running.error is None and running.thread.is_alive()
    finally:
        reader.close()
        running.stop()


def test_check_reports_unknown_collections(
    mongodb_uri: str, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    mongo[database]["items"].insert_one({"_id": 1})
    cfg = MongoSourceConfig(
        name="chk",
        kind="mongodb",
        dsn=mongodb_uri,
        collections=[f"{database}.items", f"{database}.nope"],
    )
    source = MongoSource(cfg)
    try:
        with pytest.raises(ConfigError, match=r"nope' does not exist"):
            source.check()
    finally:
        source.close()


def test_pre_images_fill_before(
    mongodb_uri: str, kafka: KafkaService, mongo: MongoClient[dict[str, Any]], database: str
) -> None:
    db = mongo[database]
    db.create_collection("items", changeStreamPreAndPostImages={"enabled": True})
    db["items"].insert_one({"_id": 1, "v": "old"})
    cfg = source_config(
        mongodb_uri,
        database,
        snapshot="never",
        capture_mode="change_streams_update_full_with_pre_image",
    )
    running = SourceThread(cfg, kafka.bootstrap, OffsetStoreDouble()).start()
    reader = TopicReader(kafka.bootstrap, f"{cfg.name}.{database}.items")
    try:
        assert wait_for(lambda: running.ctx.safe_offset() is not None), running.error
        db["items"].update_one({"_id": 1}, {"$set": {"v": "new"}})
        db["items"].delete_one({"_id": 1})
        assert reader.until(lambda r: len(events(r)) >= 2), running.error
        update, delete = events(reader.records)[:2]
        assert (update["op"], update["before"], update["after"]) == (
            "u",
            '{"_id": 1,"v": "old"}',
            '{"_id": 1,"v": "new"}',
        )
        assert (delete["op"], delete["before"], delete["after"]) == (
            "d",
            '{"_id": 1,"v": "new"}',
            None,
        )
    finally:
        reader.close()
        running.stop()
    assert running.error is None
