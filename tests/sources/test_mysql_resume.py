"""MySQL source: ALTER TABLE while behind, DDL topic, mid-transaction resume, purged binlogs."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pymysql
import pytest

from cdc_bridge.errors import FatalError
from tests.sources.mysql_support import (
    MemoryOffsetStore,
    Running,
    consume,
    count,
    make_config,
    payloads,
)


def _exec(db: Any, *sql: str) -> list[Any]:
    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
    out: list[Any] = []
    with contextlib.closing(conn), conn.cursor() as cur:
        for s in sql:
            cur.execute(s)
            out.append(cur.fetchall())
    return out


def _stream_once(cfg: Any, kafka: Any, store: MemoryOffsetStore) -> None:
    """Start, wait until streaming, stop: leaves a stored position at the binlog's end."""
    with Running(cfg, kafka.bootstrap, store) as r:
        r.wait_streaming()
        time.sleep(1.2)  # one checkpoint interval
    assert cfg.name in store.data


def test_alter_table_while_behind_keeps_labels_and_publishes_ddl(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10))")
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.a"], snapshot="never")
    _stream_once(cfg, kafka, store)
    _exec(
        db,
        "INSERT INTO a VALUES (1, 'a')",
        "ALTER TABLE a ADD COLUMN x INT AFTER id",
        "INSERT INTO a VALUES (2, 5, 'b')",
        "ALTER TABLE a DROP COLUMN v",
        "INSERT INTO a VALUES (3, 7)",
    )
    with Running(cfg, kafka.bootstrap, store):
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.a", count(3))
        ddl = consume(kafka.bootstrap, name, count(2))
    assert [v["after"] for v in payloads(recs)] == [
        {"id": 1, "v": "a"},
        {"id": 2, "x": 5, "v": "b"},
        {"id": 3, "x": 7},
    ]
    schemas = [[f["field"] for f in v["schema"]["fields"][0]["fields"]] for _k, v in recs]
    assert schemas == [["id", "v"], ["id", "x", "v"], ["id", "x"]]
    changes = payloads(ddl)
    assert [c["ddl"] for c in changes] == [
        "ALTER TABLE a ADD COLUMN x INT AFTER id",
        "ALTER TABLE a DROP COLUMN v",
    ]
    assert all(c["databaseName"] == db.name for c in changes)
    assert ddl[0][0]["payload"] == {"databaseName": db.name}
    assert ddl[0][1]["schema"]["name"] == "io.debezium.connector.mysql.SchemaChangeValue"
    assert changes[0]["source"]["connector"] == "mysql" and changes[0]["source"]["pos"] > 0


@pytest.mark.parametrize("gtid", ["auto", "off"])
def test_resume_inside_a_transaction_skips_exactly_what_was_delivered(
    mariadb_database: Any, kafka: Any, topic_name: Any, gtid: str
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE m (id INT PRIMARY KEY)")
    status, gtids = _exec(db, "SHOW MASTER STATUS", "SELECT @@gtid_binlog_pos")
    file, pos = status[0][0], int(status[0][1])
    conn = pymysql.connect(**db.connect_kwargs())
    with contextlib.closing(conn), conn.cursor() as cur:
        for s in range(5):  # five row events of four rows: ids 0..19
            cur.execute("INSERT INTO m VALUES " + ",".join(f"({s * 4 + r})" for r in range(4)))
        conn.commit()
    name = topic_name("my")
    # As stored after delivering three row events and two rows of the fourth.
    offset = {"file": file, "pos": pos, "event": 3, "row": 2}
    if gtid == "auto":
        offset["gtids"] = gtids[0][0]
    store = MemoryOffsetStore()
    store.data[name] = offset
    cfg = make_config(db, name, [f"{db.name}.m"], snapshot="never", gtid=gtid)
    with Running(cfg, kafka.bootstrap, store):
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.m", count(6))
        time.sleep(0.3)
        more = consume(kafka.bootstrap, f"{name}.{db.name}.m", count(6), timeout=5)
    vals = payloads(recs)
    assert [v["after"]["id"] for v in vals] == [14, 15, 16, 17, 18, 19]
    assert len(more) == 6
    assert [v["source"]["row"] for v in vals] == [2, 3, 0, 1, 2, 3]


def test_large_transaction_is_split_with_safe_offsets(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE big (id INT PRIMARY KEY)")
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.big"], snapshot="never", max_batch_rows=100)
    with Running(cfg, kafka.bootstrap, store) as r:
        r.wait_streaming()
        conn = pymysql.connect(**db.connect_kwargs())
        with contextlib.closing(conn), conn.cursor() as cur:
            for s in range(50):
                cur.execute(
                    "INSERT INTO big VALUES " + ",".join(f"({s * 20 + i})" for i in range(20))
                )
            conn.commit()
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.big", count(1000))
        time.sleep(1.2)
    assert sorted(v["after"]["id"] for v in payloads(recs)) == list(range(1000))
    assert store.data[name].get("event", 0) == 0  # finally at the transaction's end


def _purge_all(db: Any) -> None:
    """Purge every binlog but a new current one (MariaDB keeps a file until its binlog
    checkpoint passed, so retry briefly)."""
    _exec(db, "FLUSH BINARY LOGS")
    (status,) = _exec(db, "SHOW MASTER STATUS")
    deadline = time.monotonic() + 20
    while True:
        _exec(db, f"PURGE BINARY LOGS TO '{status[0][0]}'")
        (logs,) = _exec(db, "SHOW BINARY LOGS")
        if [r[0] for r in logs] == [status[0][0]]:
            return
        assert time.monotonic() < deadline, f"binlogs not purged: {logs}"
        time.sleep(0.2)


def test_purged_position_stops_with_recovery_advice(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE p (id INT PRIMARY KEY)")
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.p"], snapshot="initial")
    _stream_once(cfg, kafka, store)
    _exec(db, "INSERT INTO p VALUES (1)")
    _purge_all(db)
    r = Running(cfg, kafka.bootstrap, store)
    r.thread.start()
    r.thread.join(30)
    r.producer.close()
    assert isinstance(r.error, FatalError)
    msg = str(r.error)
    assert "is no longer on the server: its binlogs were purged" in msg
    assert 'snapshot = "when_needed"' in msg


def test_purged_position_with_when_needed_resnapshots(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE w (id INT PRIMARY KEY)", "INSERT INTO w VALUES (1)")
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.w"], snapshot="when_needed")
    _stream_once(cfg, kafka, store)
    _exec(db, "INSERT INTO w VALUES (2)")
    _purge_all(db)
    with Running(cfg, kafka.bootstrap, store) as r:
        consume(kafka.bootstrap, f"{name}.{db.name}.w", count(3))
        r.wait_streaming()
        _exec(db, "INSERT INTO w VALUES (3)")
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.w", count(4))
    ops = [(v["op"], v["after"]["id"]) for v in payloads(recs)]
    # first snapshot (1); its position purged -> second snapshot (1, 2); then streaming (3)
    assert ops == [("r", 1), ("r", 1), ("r", 2), ("c", 3)]


def test_interrupted_snapshot_resumes_after_the_last_confirmed_key(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(
        db,
        "CREATE TABLE s1 (id INT PRIMARY KEY)",
        "CREATE TABLE s2 (id INT PRIMARY KEY)",
        "INSERT INTO s1 SELECT seq FROM seq_1_to_500",
        "INSERT INTO s2 SELECT seq FROM seq_1_to_2000",
    )
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.s1", f"{db.name}.s2"], snapshot_batch_rows=100)
    r = Running(cfg, kafka.bootstrap, store)
    with r:
        deadline = time.monotonic() + 30
        while sum(p["rows"] for p in r.source.snapshot_status().values()) < 1000:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        r.ctx.stopping.set()
        r.thread.join(30)
    saved = store.data[name]
    cursor = saved["snapshot"]
    assert cursor["done"] == [f"{db.name}.s1"]
    assert cursor["table"] == f"{db.name}.s2" and cursor["last_key"][0] >= 500
    after = cursor["last_key"][0]
    first = consume(kafka.bootstrap, f"{name}.{db.name}.s2", count(after))
    s1 = payloads(consume(kafka.bootstrap, f"{name}.{db.name}.s1", count(500)))
    marks = [v["source"]["snapshot"] for v in s1]
    assert marks[0] == "first" and marks[-1] == "last_in_data_collection"
    assert set(marks[1:-1]) == {"true"}
    assert payloads(first)[0]["source"]["snapshot"] == "first_in_data_collection"
    with Running(cfg, kafka.bootstrap, store) as r2:
        r2.wait_streaming()
        _exec(db, "INSERT INTO s2 VALUES (5000)")
        recs = consume(
            kafka.bootstrap,
            f"{name}.{db.name}.s2",
            lambda x: any(v["after"]["id"] == 5000 for v in payloads(x)),
        )
    ids = [v["after"]["id"] for v in payloads(recs)]
    assert set(ids) == set(range(1, 2001)) | {5000}
    # the second run read only the keys after the stored one (plus what the first run had
    # sent but not yet checkpointed)
    assert len(ids) - 1 - 2000 <= len(first) - after
    assert ids.count(1) == 1


def test_server_crash_and_restart_while_streaming(
    mariadb: Any, mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    if mariadb.external:
        pytest.skip("needs a private MariaDB to kill")
    db = mariadb_database
    _exec(db, "CREATE TABLE k (id INT PRIMARY KEY)")
    name = topic_name("my")
    cfg = make_config(db, name, [f"{db.name}.k"], snapshot="never", heartbeat_s=1.0)
    with Running(cfg, kafka.bootstrap) as r:
        r.wait_streaming()
        _exec(db, "INSERT INTO k VALUES (1), (2)")
        consume(kafka.bootstrap, f"{name}.{db.name}.k", count(2))
        mariadb.kill()
        mariadb.restart()
        _exec(db, "INSERT INTO k VALUES (3)")
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.k", count(3), timeout=60)
        assert r.source.reconnects >= 1
    assert sorted(v["after"]["id"] for v in payloads(recs)) == [1, 2, 3]


def test_position_is_stored_only_after_kafka_confirmed(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE ack (id INT PRIMARY KEY)")
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.ack"], snapshot="never")
    topic = f"{name}.{db.name}.ack"
    with Running(cfg, kafka.bootstrap, store) as r:
        r.wait_streaming()
        _exec(db, "INSERT INTO ack VALUES (1)")
        consume(kafka.bootstrap, topic, count(1))
        time.sleep(1.3)
        before = dict(store.data[name])
        kafka.pause()
        try:
            _exec(db, "INSERT INTO ack VALUES (2)", "INSERT INTO ack VALUES (3)")
            time.sleep(2.5)  # two checkpoint intervals with the broker frozen
            assert store.data[name] == before, "stored a position Kafka had not confirmed"
        finally:
            kafka.resume()
        recs = consume(kafka.bootstrap, topic, count(3), timeout=60)
        deadline = time.monotonic() + 10
        while store.data[name] == before:
            assert time.monotonic() < deadline, "position never advanced after the broker resumed"
            time.sleep(0.1)
    assert [v["after"]["id"] for v in payloads(recs)] == [1, 2, 3]
    assert store.data[name]["gtids"] != before["gtids"]
