"""MySQL source against a private MariaDB and the embedded broker: stream, snapshot, resume."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from tests.sources.mysql_support import (
    MemoryOffsetStore,
    Running,
    consume,
    count,
    make_config,
    payloads,
)


def _exec(db: Any, *sql: str) -> None:
    import pymysql

    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
    with contextlib.closing(conn), conn.cursor() as cur:
        for s in sql:
            cur.execute(s)


def _topic(name: str, db: Any, table: str) -> str:
    return f"{name}.{db.name}.{table}"


def test_stream_inserts_updates_deletes_multirow_and_key_change(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n INT)")
    name = topic_name("my")
    cfg = make_config(db, name, [f"{db.name}.t"], snapshot="never")
    with Running(cfg, kafka.bootstrap) as r:
        r.wait_streaming()
        _exec(
            db,
            "INSERT INTO t VALUES (1,'a',10),(2,'b',20),(3,'c',30)",
            "UPDATE t SET n = n + 1 WHERE id IN (1, 2)",
            "DELETE FROM t WHERE id = 3",
            "UPDATE t SET id = 5 WHERE id = 2",
        )
        # 3 c + 2 u + (d + tombstone) + (d + tombstone + c) = 10 records
        recs = consume(kafka.bootstrap, _topic(name, db, "t"), count(10))
    vals = payloads(recs)
    ops = [v["op"] for v in vals]
    assert ops == ["c", "c", "c", "u", "u", "d", "d", "c"]
    assert [v["after"] for v in vals[:3]] == [
        {"id": 1, "v": "a", "n": 10},
        {"id": 2, "v": "b", "n": 20},
        {"id": 3, "v": "c", "n": 30},
    ]
    assert vals[3]["before"] == {"id": 1, "v": "a", "n": 10}
    assert vals[3]["after"] == {"id": 1, "v": "a", "n": 11}
    # rows of one multi-row event: same pos, row index 0..n-1
    srcs = [v["source"] for v in vals[:3]]
    assert [s["row"] for s in srcs] == [0, 1, 2]
    assert len({(s["file"], s["pos"]) for s in srcs}) == 1
    assert srcs[0]["connector"] == "mysql" and srcs[0]["db"] == db.name
    assert srcs[0]["table"] == "t" and srcs[0]["server_id"] == 1
    assert srcs[0]["gtid"] and srcs[0]["gtid"].startswith("0-1-")
    assert srcs[0]["query"] == "INSERT INTO t VALUES (1,'a',10),(2,'b',20),(3,'c',30)"
    assert [s["row"] for s in (v["source"] for v in vals[3:5])] == [0, 1]
    assert vals[5]["before"] == {"id": 3, "v": "c", "n": 30} and vals[5]["after"] is None
    # key change: delete of old key, tombstone, create of new key
    assert vals[6]["before"]["id"] == 2 and vals[7]["after"] == {"id": 5, "v": "b", "n": 21}
    keys = [k["payload"] for k, _v in recs]
    assert keys[-3:] == [{"id": 2}, {"id": 2}, {"id": 5}]
    assert recs[-2][1] is None  # tombstone


def test_snapshot_then_stream_with_concurrent_writer_has_no_gap(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE s (id INT PRIMARY KEY, v INT)")
    _exec(db, "INSERT INTO s SELECT seq, seq FROM seq_1_to_3000")
    name = topic_name("my")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        i = 100000
        while not stop.is_set() and i < 100600:
            _exec(db, f"INSERT INTO s VALUES ({i}, {i})")
            written.append(i)
            i += 1

    cfg = make_config(db, name, [f"{db.name}.s"], snapshot_batch_rows=500)
    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.05)
    with Running(cfg, kafka.bootstrap) as r:
        time.sleep(0.5)
        stop.set()
        w.join()
        expected = set(range(1, 3001)) | set(written)
        ids: set[int] = set()

        def done(recs: list[Any]) -> bool:
            ids.update(v["after"]["id"] for v in payloads(recs[len(ids_seen) :]) if v["after"])
            ids_seen.extend(recs[len(ids_seen) :])
            return expected <= ids

        ids_seen: list[Any] = []
        consume(kafka.bootstrap, _topic(name, db, "s"), done, timeout=60)
        assert r.source.snapshot_status()[f"{db.name}.s"]["rows"] >= 3000
    assert expected <= ids
    vals = payloads(ids_seen)
    snap = [v for v in vals if v["op"] == "r"]
    assert snap[0]["source"]["snapshot"] == "first"
    assert snap[-1]["source"]["snapshot"] == "last"
    assert all(v["source"]["snapshot"] == "false" for v in vals if v["op"] == "c")


def test_resume_after_restart_continues_without_loss(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE r (id INT PRIMARY KEY)")
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.r"], snapshot="never")
    with Running(cfg, kafka.bootstrap, store) as r:
        r.wait_streaming()
        _exec(db, "INSERT INTO r VALUES (1),(2)")
        consume(kafka.bootstrap, _topic(name, db, "r"), count(2))
        time.sleep(1.2)
    saved = store.data[name]
    assert saved["gtids"].startswith("0-1-")
    _exec(db, "INSERT INTO r VALUES (3)", "INSERT INTO r VALUES (4)")
    with Running(cfg, kafka.bootstrap, store) as r:
        recs = consume(kafka.bootstrap, _topic(name, db, "r"), count(4))
    assert [v["after"]["id"] for v in payloads(recs)] == [1, 2, 3, 4]


def test_only_configured_tables_and_mixed_transactions(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    import pymysql

    db = mariadb_database
    _exec(db, "CREATE TABLE yes (id INT PRIMARY KEY)", "CREATE TABLE no (id INT PRIMARY KEY)")
    name = topic_name("my")
    cfg = make_config(db, name, [f"{db.name}.yes"], snapshot="never", skip_ops=["d"])
    with Running(cfg, kafka.bootstrap) as r:
        r.wait_streaming()
        conn = pymysql.connect(**db.connect_kwargs())
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("INSERT INTO no VALUES (1)")
            cur.execute("INSERT INTO yes VALUES (1)")
            cur.execute("INSERT INTO no VALUES (2)")
            cur.execute("INSERT INTO yes VALUES (2)")
            conn.commit()
            cur.execute("DELETE FROM yes WHERE id = 1")  # skipped: skip_ops = ["d"]
            cur.execute("INSERT INTO yes VALUES (3)")
            conn.commit()
        recs = consume(kafka.bootstrap, _topic(name, db, "yes"), count(3))
        time.sleep(0.5)
        admin_topics = r.producer.admin.list_topics()
    vals = payloads(recs)
    assert [(v["op"], v["after"]["id"]) for v in vals] == [("c", 1), ("c", 2), ("c", 3)]
    # both rows of the first transaction carry its GTID and its start position
    assert vals[0]["source"]["gtid"] == vals[1]["source"]["gtid"]
    assert vals[0]["source"]["pos"] == vals[1]["source"]["pos"]
    assert vals[2]["source"]["gtid"] != vals[0]["source"]["gtid"]
    assert _topic(name, db, "no") not in admin_topics


def test_initial_only_snapshots_and_returns(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(
        db,
        "CREATE TABLE io (id INT PRIMARY KEY, v JSON)",
        "INSERT INTO io VALUES (1, '[1]'), (2, NULL)",
    )
    name = topic_name("my")
    store = MemoryOffsetStore()
    cfg = make_config(db, name, [f"{db.name}.io"], snapshot="initial_only", schemas=False)
    r = Running(cfg, kafka.bootstrap, store)
    r.thread.start()
    r.thread.join(30)
    assert not r.thread.is_alive() and r.error is None
    r.producer.close()
    recs = consume(kafka.bootstrap, _topic(name, db, "io"), count(2))
    assert [v for _k, v in recs] == [
        {**recs[0][1], "after": {"id": 1, "v": "[1]"}},
        {**recs[1][1], "after": {"id": 2, "v": None}},
    ]
    assert recs[0][0] == {"id": 1}  # schemas off: bare key payload
    assert recs[0][1]["op"] == "r" and store.data[name].get("snapshot") is None


def test_table_without_key_snapshots_in_batches_and_streams_with_null_keys(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE nk (v INT)", "INSERT INTO nk SELECT seq FROM seq_1_to_350")
    name = topic_name("my")
    cfg = make_config(db, name, [f"{db.name}.nk"], snapshot_batch_rows=100)
    with Running(cfg, kafka.bootstrap) as r:
        r.wait_streaming()
        _exec(db, "INSERT INTO nk VALUES (351)", "DELETE FROM nk WHERE v = 1")
        recs = consume(kafka.bootstrap, _topic(name, db, "nk"), count(352))
    vals = payloads(recs)
    assert sorted(v["after"]["v"] for v in vals if v["op"] == "r") == list(range(1, 351))
    assert [(v["op"], (v["after"] or v["before"])["v"]) for v in vals[-2:]] == [
        ("c", 351),
        ("d", 1),
    ]
    assert all(k is None for k, _v in recs)  # no key: null keys, and no tombstones
