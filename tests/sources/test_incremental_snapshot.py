"""Incremental snapshots of a Postgres source (watermarks through the signal table) while the
stream goes on: a concurrent writer never makes a row go back in time, a table added to the
configuration gets its rows, and a snapshot interrupted mid-way continues at its last chunk.

``CDC_INCSNAP_ROWS`` sets the size of the big table (20,000 by default; the issue's run uses
200,000)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from cdc_bridge.cli import app
from cdc_bridge.sources.postgres.source import PostgresSource
from cdc_bridge.testing.services import KafkaService
from tests.sources.pg_harness import OffsetStoreDouble, make_config, run_source, wait_for

ROWS = int(os.environ.get("CDC_INCSNAP_ROWS", "20000"))
SIGNAL_DDL = (
    "CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, "
    "data varchar(2048) NULL)"
)


class TopicTarget:
    """A target table fed by the topic in order, checking that no row goes back in time."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"t-{topic}-{time.monotonic_ns()}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.rows: dict[int, int] = {}
        self.newest: dict[int, int] = {}  # newest version seen per key (deletes: -1 after)
        self.deleted: set[int] = set()
        self.went_back: list[str] = []
        self.ops: dict[str, int] = {}
        self.incremental_reads = 0

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(2000, timeout=0.1):
                if msg.error() is None and msg.value() is not None:
                    self.apply(orjson.loads(msg.value()))

    def apply(self, value: Any) -> None:
        p = value.get("payload", value)
        op = p["op"]
        self.ops[op] = self.ops.get(op, 0) + 1
        if op == "d":
            k = p["before"]["id"]
            self.rows.pop(k, None)
            self.deleted.add(k)
            return
        a = p["after"]
        k, v = a["id"], a["v"]
        if op == "r" and p["source"]["snapshot"] == "incremental":
            self.incremental_reads += 1
            if k in self.deleted:
                self.went_back.append(f"read of deleted row {k} (v{v})")
        if v < self.newest.get(k, -1):
            self.went_back.append(f"row {k}: v{self.newest[k]} then v{v} ({op})")
        self.newest[k] = max(v, self.newest.get(k, -1))
        self.rows[k] = v

    def until_equal(self, dsn: str, table: str, timeout: float) -> dict[int, int]:
        def fetch() -> dict[int, int]:
            with psycopg.connect(dsn) as c:
                return dict(c.execute(f"SELECT id, v FROM {table}").fetchall())

        return self.until(fetch, timeout)

    def until(self, fetch: Callable[[], dict[int, int]], timeout: float) -> dict[int, int]:
        deadline = time.monotonic() + timeout
        db: dict[int, int] = {}
        while time.monotonic() < deadline:
            self.poll(0.5)
            db = fetch()
            if self.rows == db:
                break
        return db

    def close(self) -> None:
        self.consumer.close()


def _setup(dsn: str, table: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SIGNAL_DDL)
        c.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL, pad text)")
        c.execute(
            f"INSERT INTO {table} SELECT g, 0, md5(g::text) FROM generate_series(1, %s) g",
            (rows,),
        )


def _finished(src: Any) -> bool:
    incr = src.incremental
    return incr is not None and not incr.running and not incr.state.queue and incr.state.rows > 0


def test_incremental_snapshot_under_concurrent_updates_and_deletes(
    pg_database: str, kafka: KafkaService
) -> None:
    _setup(pg_database, "big", ROWS)
    cfg = make_config(
        pg_database,
        "incsnap",
        tables=["public.big"],
        snapshot="never",
        signal_table="public.debezium_signal",
    )
    stop = threading.Event()
    writes = [0]

    def writer() -> None:  # 2,000 rows/s: updates (v + 1) and a few deletes of random rows
        rnd = random.Random(7)
        started = time.monotonic()
        with psycopg.connect(pg_database, autocommit=True) as c:
            while not stop.is_set():
                # the rows due at 2,000/s since the start, in one transaction (at most 200):
                # the rate holds even while the snapshot keeps both cores busy
                due = min(200, int((time.monotonic() - started) * 2000) - writes[0])
                if due <= 0:
                    time.sleep(0.005)
                    continue
                ids = [rnd.randint(1, ROWS) for _ in range(due)]
                gone = ids[: due // 10]
                with c.transaction():
                    c.execute("DELETE FROM big WHERE id = ANY(%s)", (gone,))
                    c.execute("UPDATE big SET v = v + 1 WHERE id = ANY(%s)", (ids[len(gone) :],))
                writes[0] += due

    target = TopicTarget(kafka.bootstrap, "incsnap.public.big")
    w = threading.Thread(target=writer)
    try:
        with run_source(kafka.bootstrap, cfg) as running:
            w.start()
            wait_for(lambda: writes[0] > 500, 20)
            # what `cdc-bridge snapshot --source incsnap --table public.big` does
            cli_side = PostgresSource(cfg)
            try:
                cli_side.request_snapshot(["public.big"], None)
            finally:
                cli_side.close()
            t0, w0 = time.monotonic(), writes[0]
            assert wait_for(lambda: _finished(running.source), 300), "snapshot did not finish"
            took, written = time.monotonic() - t0, writes[0] - w0
            status = running.source.snapshot_status()
            stop.set()
            w.join()
            print(
                f"incremental snapshot of {ROWS:,} rows in {took:.1f} s "
                f"({status['public.big']['rows'] / took:,.0f} rows/s) while the writer changed "
                f"{written / took:,.0f} rows/s"
            )
            db = target.until_equal(pg_database, "big", 60)
    finally:
        stop.set()
        if w.is_alive():
            w.join()
        target.close()
    assert not target.went_back, target.went_back[:10]
    assert target.rows == db
    assert target.incremental_reads <= ROWS and target.incremental_reads > ROWS * 0.5
    assert target.ops.get("u", 0) > 0 and target.ops.get("d", 0) > 0
    assert status["public.big"]["incremental"] and status["public.big"]["rows"] > 0
    with psycopg.connect(pg_database) as c:  # watermarks are cleaned up behind the chunks
        (left,) = c.execute("SELECT count(*) FROM debezium_signal").fetchone() or (0,)
    assert left <= 3


def test_table_added_to_config_is_snapshotted_while_streaming(
    pg_database: str, kafka: KafkaService
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute(SIGNAL_DDL)
        c.execute("CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL)")
        c.execute("CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL)")
        c.execute("INSERT INTO a SELECT g, 0 FROM generate_series(1, 50) g")
        c.execute("INSERT INTO b SELECT g, 0 FROM generate_series(1, 3000) g")
    store = OffsetStoreDouble()
    base = {"signal_table": "public.debezium_signal", "incremental_chunk_size": 500}
    first = make_config(pg_database, "added", tables=["public.a"], **base)
    with run_source(kafka.bootstrap, first, store):
        pass  # initial snapshot of a, then streaming
    second = make_config(pg_database, "added", tables=["public.a", "public.b"], **base)
    a_target = TopicTarget(kafka.bootstrap, "added.public.a")
    b_target = TopicTarget(kafka.bootstrap, "added.public.b")
    try:
        with run_source(kafka.bootstrap, second, store) as running:
            with psycopg.connect(pg_database, autocommit=True) as c:
                for i in range(1, 21):  # the stream goes on while b is read
                    c.execute("UPDATE a SET v = v + 1 WHERE id = %s", (i,))
                    c.execute("UPDATE b SET v = v + 1 WHERE id = %s", (i * 100,))
            assert wait_for(lambda: _finished(running.source), 60)
            b_db = b_target.until_equal(pg_database, "b", 30)
            a_target.until_equal(pg_database, "a", 30)
    finally:
        a_target.close()
        b_target.close()
    assert b_target.rows == b_db and len(b_db) == 3000
    assert b_target.incremental_reads >= 2980 and not b_target.went_back
    assert a_target.ops.get("u", 0) == 20 and a_target.incremental_reads == 0
    assert "public.b" in (store.offsets["added"]["incremental"]["known"])


def test_interrupted_incremental_snapshot_continues_at_its_last_chunk(
    pg_database: str, kafka: KafkaService
) -> None:
    rows = 20000
    _setup(pg_database, "r", rows)
    store = OffsetStoreDouble()
    cfg = make_config(
        pg_database,
        "resume",
        tables=["public.r"],
        snapshot="never",
        signal_table="public.debezium_signal",
        incremental_chunk_size=100,
    )
    crashed: dict[str, Any] = {}

    def mid_snapshot() -> bool:
        running.ctx.checkpoint()  # as the runtime does every second
        inc = (store.offsets.get("resume") or {}).get("incremental") or {}
        if inc.get("queue") and inc.get("rows", 0) >= 1000:
            crashed.update(orjson.loads(orjson.dumps(store.offsets["resume"])))
            return True
        return False

    with run_source(kafka.bootstrap, cfg, store) as running:
        running.source.request_snapshot(["public.r"], "id > 100")
        assert wait_for(mid_snapshot, 60)
    # Restart from the offset stored mid-snapshot, as after a crash at that moment.
    again = OffsetStoreDouble()
    again.offsets["resume"] = crashed
    target = TopicTarget(kafka.bootstrap, "resume.public.r")
    try:
        with run_source(kafka.bootstrap, cfg, again) as running:
            assert wait_for(lambda: _finished(running.source), 60)
            assert running.source.incremental is not None
            second_run = running.source.incremental.status()["public.r"]["rows"]
            target.poll(2)
    finally:
        target.close()
    done_before = crashed["incremental"]["rows"]
    # the second run read only what the first had not confirmed (no start from scratch)
    assert second_run == rows - 100 - done_before
    assert set(target.rows) == set(range(101, rows + 1))  # --where "id > 100" kept
    assert not target.went_back


def test_snapshot_cli_writes_debeziums_execute_snapshot_signal(
    pg_database: str, kafka: KafkaService, tmp_path: Path
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute(SIGNAL_DDL)
        c.execute("CREATE TABLE o (id int PRIMARY KEY)")
    config = tmp_path / "routes.toml"
    source = (
        '[[sources]]\nname = "shop"\nkind = "postgres"\ndsn = "{dsn}"\n'
        'tables = ["public.o"]\n{extra}'
    )
    head = f'[bridge]\nname = "b"\nstate = "sqlite:///{tmp_path}/s.db"\n'
    head += f'[kafka]\nbootstrap_servers = "{kafka.bootstrap}"\n'

    def run(extra: str, *args: str) -> tuple[int, str]:
        config.write_text(head + source.format(dsn=pg_database, extra=extra))
        r = CliRunner().invoke(
            app, ["snapshot", "--config", str(config), "--source", "shop", *args]
        )
        return r.exit_code, r.output

    code, out = run("", "--table", "public.o")
    assert code == 2 and "signal_table" in out
    signal = 'signal_table = "public.debezium_signal"\n'
    code, out = run(signal, "--table", "public.nope")
    assert code == 2 and "does not capture public.nope" in out
    code, out = run(signal, "--table", "public.o", "--where", "id > 5")
    assert code == 0, out
    with psycopg.connect(pg_database) as c:
        rows = c.execute("SELECT type, data FROM debezium_signal").fetchall()
    assert [r[0] for r in rows] == ["execute-snapshot"]
    assert orjson.loads(rows[0][1]) == {
        "data-collections": ["public.o"],
        "type": "incremental",
        "additional-conditions": [{"data-collection": "public.o", "filter": "id > 5"}],
    }


def test_bad_condition_abandons_the_snapshot_not_the_stream(
    pg_database: str, kafka: KafkaService, caplog: pytest.LogCaptureFixture
) -> None:
    _setup(pg_database, "bad", 10)
    cfg = make_config(
        pg_database,
        "bad",
        tables=["public.bad"],
        snapshot="never",
        signal_table="public.debezium_signal",
    )
    target = TopicTarget(kafka.bootstrap, "bad.public.bad")
    try:
        with run_source(kafka.bootstrap, cfg) as running:
            running.source.request_snapshot(["public.bad"], "no_such_column > 1")
            assert wait_for(lambda: "abandoned" in caplog.text, 20), caplog.text
            with psycopg.connect(pg_database, autocommit=True) as c:
                c.execute("UPDATE bad SET v = 1 WHERE id = 3")
            assert wait_for(lambda: (target.poll(0.2), target.ops.get("u"))[1] == 1, 20)
            incr = running.source.incremental
            assert incr is not None and not incr.running and not incr.state.queue
    finally:
        target.close()
    assert "no_such_column" in caplog.text and target.incremental_reads == 0


def test_status_shows_a_running_incremental_snapshot(pg_database: str) -> None:
    from cdc_bridge.sources.postgres.status import probe

    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("SELECT pg_create_logical_replication_slot('cdc_bridge_st', 'pgoutput')")
    try:
        cfg = make_config(pg_database, "st")
        inc = {"queue": ["public.a", "public.b"], "last_key": ["42"], "rows": 1000}
        st = probe(cfg, {"lsn": "0/0", "incremental": inc}, 1 << 30)
        assert st.snapshot == (
            "incremental: public.a, 1000 rows confirmed, after key ['42']; then public.b"
        )
        assert probe(cfg, {"lsn": "0/0"}, 1 << 30).snapshot == "done"
    finally:
        with psycopg.connect(pg_database, autocommit=True) as c:
            c.execute("SELECT pg_drop_replication_slot('cdc_bridge_st')")


def test_mariadb_incremental_snapshot_under_concurrent_updates_and_deletes(
    mariadb_database: Any, kafka: KafkaService
) -> None:
    import pymysql

    from tests.sources import mysql_support

    rows, db = max(2000, ROWS // 4), mariadb_database.name

    def conn() -> Any:
        return pymysql.connect(**mariadb_database.connect_kwargs(), autocommit=True)

    c = conn()
    cur = c.cursor()
    cur.execute(SIGNAL_DDL)
    cur.execute("CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, pad varchar(40))")
    cur.executemany(
        "INSERT INTO big VALUES (%s, 0, md5(%s))", [(i, str(i)) for i in range(1, rows + 1)]
    )
    c.close()
    cfg = mysql_support.make_config(
        mariadb_database,
        "myinc",
        [f"{db}.big"],
        snapshot="never",
        signal_table=f"{db}.debezium_signal",
        incremental_chunk_size=500,
    )
    stop = threading.Event()
    writes = [0]

    def writer() -> None:
        rnd = random.Random(11)
        w = conn()
        wc = w.cursor()
        while not stop.is_set():
            t0 = time.monotonic()
            wc.execute("START TRANSACTION")
            for _ in range(20):
                i = rnd.randint(1, rows)
                if rnd.random() < 0.1:
                    wc.execute("DELETE FROM big WHERE id = %s", (i,))
                else:
                    wc.execute("UPDATE big SET v = v + 1 WHERE id = %s", (i,))
            wc.execute("COMMIT")
            writes[0] += 20
            time.sleep(max(0.0, 0.01 - (time.monotonic() - t0)))
        w.close()

    def fetch() -> dict[int, int]:
        f = conn()
        try:
            fc = f.cursor()
            fc.execute("SELECT id, v FROM big")
            return {int(k): int(v) for k, v in fc.fetchall()}
        finally:
            f.close()

    target = TopicTarget(kafka.bootstrap, f"myinc.{db}.big")
    w = threading.Thread(target=writer)
    try:
        with mysql_support.Running(cfg, kafka.bootstrap) as running:
            running.wait_streaming()
            w.start()
            wait_for(lambda: writes[0] > 300, 20)
            signal_id = running.source.request_snapshot([f"{db}.big"], None)
            assert signal_id.startswith("cli-")
            src: Any = running.source
            assert wait_for(lambda: _finished(src), 120), "snapshot did not finish"
            stop.set()
            w.join()
            table = target.until(fetch, 60)
    finally:
        stop.set()
        if w.is_alive():
            w.join()
        target.close()
    assert not target.went_back, target.went_back[:10]
    assert target.rows == table
    assert rows * 0.5 < target.incremental_reads <= rows
    assert target.ops.get("u", 0) > 0 and target.ops.get("d", 0) > 0


def test_mariadb_interrupted_incremental_snapshot_continues_at_its_last_chunk(
    mariadb_database: Any, kafka: KafkaService
) -> None:
    import pymysql

    from tests.sources import mysql_support

    rows, db = 10000, mariadb_database.name
    c = pymysql.connect(**mariadb_database.connect_kwargs(), autocommit=True)
    cur = c.cursor()
    cur.execute(SIGNAL_DDL)
    cur.execute("CREATE TABLE r (id int PRIMARY KEY, v int NOT NULL)")
    cur.executemany("INSERT INTO r VALUES (%s, 0)", [(i,) for i in range(1, rows + 1)])
    c.close()
    cfg = mysql_support.make_config(
        mariadb_database,
        "myresume",
        [f"{db}.r"],
        snapshot="never",
        signal_table=f"{db}.debezium_signal",
        incremental_chunk_size=100,
    )
    store = OffsetStoreDouble()
    crashed: dict[str, Any] = {}
    with mysql_support.Running(cfg, kafka.bootstrap, store) as running:
        running.wait_streaming()

        def mid_snapshot() -> bool:
            running.ctx.checkpoint()
            inc = (store.offsets.get("myresume") or {}).get("incremental") or {}
            if inc.get("queue") and inc.get("rows", 0) >= 1000:
                crashed.update(orjson.loads(orjson.dumps(store.offsets["myresume"])))
                return True
            return False

        running.source.request_snapshot([f"{db}.r"], None)
        assert wait_for(mid_snapshot, 60)
    again = OffsetStoreDouble()
    again.offsets["myresume"] = crashed
    target = TopicTarget(kafka.bootstrap, f"myresume.{db}.r")
    try:
        with mysql_support.Running(cfg, kafka.bootstrap, again) as running:
            running.wait_streaming()
            src: Any = running.source
            assert wait_for(lambda: _finished(src), 60)
            second_run = src.incremental.status()[f"{db}.r"]["rows"]
            target.poll(2)
    finally:
        target.close()
    assert second_run == rows - crashed["incremental"]["rows"]
    assert set(target.rows) == set(range(1, rows + 1)) and not target.went_back


def test_an_echoed_change_inside_the_window_drops_its_row_from_the_chunk(
    pg_database: str, kafka: KafkaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change the source does not publish (a transaction of a skipped replication origin:
    a sink's own write in two-way sync) is still newer than the chunk's copy of its row: the
    row must leave the chunk, or the target would get the older copy back."""
    from cdc_bridge.sources.postgres import source as pg_source

    _setup(pg_database, "e", 100)
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("SELECT pg_replication_origin_create('echo_sink')")
    real_read = pg_source._PgChunks.read_chunk
    echoed: list[int] = []

    def read_then_echo(self: Any, table: str, after: Any, limit: int, where: str | None) -> Any:
        chunk = real_read(self, table, after, limit, where)
        if not echoed:  # a sink writes row 7 between the chunk read and the high watermark
            with psycopg.connect(pg_database, autocommit=True) as w:
                w.execute("SELECT pg_replication_origin_session_setup('echo_sink')")
                w.execute("UPDATE e SET v = 1 WHERE id = 7")
            echoed.append(7)
        return chunk

    monkeypatch.setattr(pg_source._PgChunks, "read_chunk", read_then_echo)
    cfg = make_config(
        pg_database,
        "echo",
        tables=["public.e"],
        snapshot="never",
        skip_origins=["echo_*"],
        signal_table="public.debezium_signal",
        incremental_chunk_size=1000,
    )
    target = TopicTarget(kafka.bootstrap, "echo.public.e")
    try:
        with run_source(kafka.bootstrap, cfg) as running:
            running.source.request_snapshot(["public.e"], None)
            assert wait_for(lambda: _finished(running.source), 60)
            assert running.source.stats["origin_skipped_changes"] == 1
            target.poll(2)
    finally:
        target.close()
    assert echoed == [7]
    assert target.incremental_reads == 99  # every row but the echoed one
    assert 7 not in target.rows and not target.went_back


def test_mariadb_table_added_to_config_is_snapshotted_while_streaming(
    mariadb_database: Any, kafka: KafkaService
) -> None:
    import pymysql

    from tests.sources import mysql_support

    db = mariadb_database.name
    c = pymysql.connect(**mariadb_database.connect_kwargs(), autocommit=True)
    cur = c.cursor()
    cur.execute(SIGNAL_DDL)
    cur.execute("CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL)")
    cur.execute("CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL)")
    cur.executemany("INSERT INTO a VALUES (%s, 0)", [(i,) for i in range(1, 51)])
    cur.executemany("INSERT INTO b VALUES (%s, 0)", [(i,) for i in range(1, 3001)])
    store = OffsetStoreDouble()
    base = {"signal_table": f"{db}.debezium_signal", "incremental_chunk_size": 500}
    first = mysql_support.make_config(mariadb_database, "myadded", [f"{db}.a"], **base)
    with mysql_support.Running(first, kafka.bootstrap, store) as running:
        running.wait_streaming()  # after the initial snapshot of a
    second = mysql_support.make_config(
        mariadb_database, "myadded", [f"{db}.a", f"{db}.b"], server_id=first.server_id, **base
    )

    def fetch(table: str) -> Callable[[], dict[int, int]]:
        def rows() -> dict[int, int]:
            cur.execute(f"SELECT id, v FROM {table}")
            return {int(k): int(v) for k, v in cur.fetchall()}

        return rows

    a_target = TopicTarget(kafka.bootstrap, f"myadded.{db}.a")
    b_target = TopicTarget(kafka.bootstrap, f"myadded.{db}.b")
    try:
        with mysql_support.Running(second, kafka.bootstrap, store) as running:
            running.wait_streaming()
            for i in range(1, 21):  # the stream goes on while b is read
                cur.execute("UPDATE a SET v = v + 1 WHERE id = %s", (i,))
                cur.execute("UPDATE b SET v = v + 1 WHERE id = %s", (i * 100,))
            src: Any = running.source
            assert wait_for(lambda: _finished(src), 60)
            b_db = b_target.until(fetch("b"), 30)
            a_target.until(fetch("a"), 30)
            assert src.snapshot_status()[f"{db}.b"]["incremental"] is True
    finally:
        a_target.close()
        b_target.close()
        c.close()
    assert b_target.rows == b_db and len(b_db) == 3000
    assert b_target.incremental_reads >= 2980 and not b_target.went_back
    assert a_target.ops.get("u", 0) == 20 and a_target.incremental_reads == 0
    assert f"{db}.b" in store.offsets["myadded"]["incremental"]["known"]


def test_mariadb_status_shows_a_running_incremental_snapshot(mariadb_database: Any) -> None:
    import pymysql

    from cdc_bridge.sources.mysql.status import probe
    from tests.sources import mysql_support

    c = pymysql.connect(**mariadb_database.connect_kwargs(), autocommit=True)
    cur = c.cursor()
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    c.close()
    assert row is not None
    cfg = mysql_support.make_config(mariadb_database, "myst")
    inc = {"queue": ["shop.a", "shop.b"], "last_key": [42], "rows": 1000}
    st = probe(cfg, {"file": row[0], "pos": row[1], "incremental": inc}, 1 << 30)
    assert st.snapshot == "incremental: shop.a, 1000 rows confirmed, after key [42]; then shop.b"
    assert probe(cfg, {"file": row[0], "pos": row[1]}, 1 << 30).snapshot == "done"


class MongoTopicTarget(TopicTarget):
    """TopicTarget for MongoDB records: documents as relaxed Extended JSON, deletes by key."""

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(2000, timeout=0.1):
                if msg.error() is None and msg.value() is not None:
                    p = orjson.loads(msg.value())
                    p = p.get("payload", p)
                    key = orjson.loads(msg.key())
                    doc_id = int(orjson.loads(key.get("payload", key)["id"]))
                    after = orjson.loads(p["after"]) if p.get("after") else None
                    self.apply(
                        {
                            "op": p["op"],
                            "before": {"id": doc_id},
                            "after": {"id": doc_id, "v": int(after["v"])} if after else None,
                            "source": p["source"],
                        }
                    )


@pytest.mark.mongodb
def test_mongodb_incremental_snapshot_under_concurrent_updates_and_deletes(
    mongodb_uri: str, kafka: KafkaService
) -> None:
    import uuid

    from pymongo import MongoClient

    from cdc_bridge.testing.sources import SourceThread

    rows, db = 5000, f"inc_{uuid.uuid4().hex[:8]}"
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    coll = client[db]["big"]
    coll.insert_many([{"_id": i, "v": 0} for i in range(1, rows + 1)])
    client[db]["debezium_signal"].insert_one({"_id": "init", "type": "noop"})
    config = {
        "name": f"minc{uuid.uuid4().hex[:6]}",
        "kind": "mongodb",
        "dsn": mongodb_uri,
        "collections": [f"{db}.big"],
        "snapshot": "never",
        "json_output": "relaxed",
        "heartbeat_interval_ms": 100,
        "signal_table": f"{db}.debezium_signal",
        "incremental_chunk_size": 500,
    }
    stop = threading.Event()
    writes = [0]

    def writer() -> None:
        rnd = random.Random(5)
        while not stop.is_set():
            for _ in range(20):
                i = rnd.randint(1, rows)
                if rnd.random() < 0.1:
                    coll.delete_one({"_id": i})
                else:
                    coll.update_one({"_id": i}, {"$inc": {"v": 1}})
            writes[0] += 20
            time.sleep(0.01)

    def fetch() -> dict[int, int]:
        return {int(d["_id"]): int(d["v"]) for d in coll.find()}

    target = MongoTopicTarget(kafka.bootstrap, f"{config['name']}.{db}.big")
    w = threading.Thread(target=writer)
    try:
        with SourceThread(config, kafka.bootstrap) as running:
            running.wait_streaming()
            w.start()
            wait_for(lambda: writes[0] > 300, 20)
            running.source.request_snapshot([f"{db}.big"], None)  # type: ignore[attr-defined]
            assert wait_for(lambda: _finished(running.source), 120), "snapshot did not finish"
            stop.set()
            w.join()
            table = target.until(fetch, 60)
    finally:
        stop.set()
        if w.is_alive():
            w.join()
        target.close()
        client.drop_database(db)
        client.close()
    assert not target.went_back, target.went_back[:10]
    assert target.rows == table
    assert rows * 0.5 < target.incremental_reads <= rows
