"""Integration tests of the Postgres source: a private PostgreSQL, the embedded broker, and
the events compared field by field with Debezium's."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg

from cdc_bridge.testing.services import KafkaService
from tests.connect_schema import validate
from tests.sources.pg_harness import make_config, payload, read_topic, run_source

_names = itertools.count(1)


def src_name() -> str:
    return f"pg{next(_names)}"


def sql(dsn: str, *stmts: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in stmts:
            conn.execute(s)


def ops(records: list[tuple[Any, Any]]) -> list[str | None]:
    return [payload(r)["op"] if r[1] is not None else None for r in records]


def test_insert_update_delete_truncate(pg_database: str, kafka: KafkaService) -> None:
    sql(pg_database, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int)")
    name = src_name()
    # truncates are skipped by default (Debezium's skipped.operations=t): publish them
    cfg = make_config(pg_database, name, tables=["public.items"], snapshot="never", skip_ops=[])
    with run_source(kafka.bootstrap, cfg):
        sql(
            pg_database,
            "INSERT INTO items VALUES (1, 'one', 10), (2, 'two', NULL)",
            "UPDATE items SET qty = 11 WHERE id = 1",
            "DELETE FROM items WHERE id = 2",
            "TRUNCATE items",
        )
        recs = read_topic(kafka.bootstrap, f"{name}.public.items", 6)
    assert ops(recs) == ["c", "c", "u", "d", None, "t"]
    key, value = recs[0]
    assert key["payload"] == {"id": 1}
    assert key["schema"]["name"] == f"{name}.public.items.Key"
    validate(value["schema"], value["payload"])
    p = value["payload"]
    assert p["before"] is None and p["after"] == {"id": 1, "name": "one", "qty": 10}
    src = p["source"]
    assert list(src) == [
        "version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us",
        "ts_ns", "schema", "table", "txId", "lsn", "xmin", "origin", "origin_lsn",
    ]  # fmt: skip
    assert src["connector"] == "postgresql" and src["name"] == name
    assert src["schema"] == "public" and src["table"] == "items" and src["snapshot"] == "false"
    assert isinstance(src["txId"], int) and isinstance(src["lsn"], int)
    seq = __import__("json").loads(src["sequence"])
    assert len(seq) == 2 and seq[1] == str(src["lsn"])
    assert payload(recs[1])["source"]["txId"] == src["txId"]  # same transaction
    assert payload(recs[2])["before"] is None  # REPLICA IDENTITY DEFAULT, key unchanged
    assert payload(recs[2])["after"]["qty"] == 11
    d = payload(recs[3])
    # DEFAULT identity sends only the key: a NOT NULL column gets Debezium's fallback ("")
    assert d["before"] == {"id": 2, "name": "", "qty": None} and d["after"] is None
    validate(recs[3][1]["schema"], d)
    assert recs[4] == (recs[3][0], None)  # tombstone with the same key
    t = payload(recs[5])
    assert recs[5][0] is None and t["before"] is None and t["after"] is None
    fields = {f["field"]: f for f in value["schema"]["fields"][0]["fields"]}
    assert fields["id"]["optional"] is False and fields["name"]["optional"] is False
    assert fields["qty"]["optional"] is True


def test_primary_key_change_and_replica_identity_full(
    pg_database: str, kafka: KafkaService
) -> None:
    sql(
        pg_database,
        "CREATE TABLE d (id int PRIMARY KEY, v text)",
        "CREATE TABLE f (id int PRIMARY KEY, v text)",
        "ALTER TABLE f REPLICA IDENTITY FULL",
    )
    name = src_name()
    cfg = make_config(pg_database, name, tables=["public.d", "public.f"], snapshot="never")
    with run_source(kafka.bootstrap, cfg):
        for t in ("d", "f"):
            sql(
                pg_database,
                f"INSERT INTO {t} VALUES (1, 'a')",
                f"UPDATE {t} SET id = 2 WHERE id = 1",
                f"UPDATE {t} SET v = 'b' WHERE id = 2",
                f"DELETE FROM {t} WHERE id = 2",
            )
        d = read_topic(kafka.bootstrap, f"{name}.public.d", 7)
        f = read_topic(kafka.bootstrap, f"{name}.public.f", 7)
    # insert, pk change as d + tombstone + c, update, delete + tombstone
    assert ops(d) == ["c", "d", None, "c", "u", "d", None]
    assert [r[0]["payload"] for r in d] == [{"id": i} for i in (1, 1, 1, 2, 2, 2, 2)]
    assert payload(d[1])["before"] == {"id": 1, "v": None}  # DEFAULT: old key only
    assert payload(d[3])["before"] is None and payload(d[3])["after"] == {"id": 2, "v": "a"}
    assert payload(d[4])["before"] is None
    assert payload(d[5])["before"] == {"id": 2, "v": None}
    assert ops(f) == ops(d)
    assert payload(f[1])["before"] == {"id": 1, "v": "a"}  # FULL: the whole old row
    assert payload(f[4])["before"] == {"id": 2, "v": "a"}
    assert payload(f[4])["after"] == {"id": 2, "v": "b"}
    assert payload(f[5])["before"] == {"id": 2, "v": "b"}


def test_unchanged_toast_gets_placeholder(pg_database: str, kafka: KafkaService) -> None:
    sql(
        pg_database,
        "CREATE TABLE docs (id int PRIMARY KEY, body text, data bytea, tags text[], n int)",
        "ALTER TABLE docs ALTER body SET STORAGE EXTERNAL, ALTER data SET STORAGE EXTERNAL,"
        " ALTER tags SET STORAGE EXTERNAL",
    )
    name = src_name()
    cfg = make_config(
        pg_database, name, tables=["public.docs"], snapshot="never", toast_placeholder="__gone"
    )
    big = "x" * 20000
    with run_source(kafka.bootstrap, cfg):
        sql(
            pg_database,
            f"INSERT INTO docs VALUES (1, '{big}', decode(repeat('ab', 20000), 'hex'),"
            f" ARRAY[repeat('y', 20000)], 1)",
            "UPDATE docs SET n = 2 WHERE id = 1",
        )
        recs = read_topic(kafka.bootstrap, f"{name}.public.docs", 2)
    assert payload(recs[0])["after"]["body"] == big
    after = payload(recs[1])["after"]
    import base64

    assert after["body"] == "__gone"
    assert after["data"] == base64.b64encode(b"__gone").decode()
    assert after["tags"] == ["__gone"]
    assert after["n"] == 2


def test_alter_table_mid_stream_and_multi_table_transaction(
    pg_database: str, kafka: KafkaService
) -> None:
    sql(
        pg_database,
        "CREATE TABLE a (id int PRIMARY KEY, x int)",
        "CREATE TABLE b (id int PRIMARY KEY)",
    )
    name = src_name()
    cfg = make_config(pg_database, name, tables=["public.a", "public.b"], snapshot="never")
    with run_source(kafka.bootstrap, cfg):
        sql(
            pg_database,
            "INSERT INTO a VALUES (1, 1)",
            "ALTER TABLE a ADD COLUMN note varchar(20) NOT NULL DEFAULT 'n'",
            "INSERT INTO a VALUES (2, 2, 'two')",
            "ALTER TABLE a DROP COLUMN x",
            "INSERT INTO a VALUES (3, 'three')",
            "BEGIN; INSERT INTO a VALUES (4, 'four'); INSERT INTO b VALUES (4);"
            " UPDATE a SET note = 'FOUR' WHERE id = 4; COMMIT",
        )
        a = read_topic(kafka.bootstrap, f"{name}.public.a", 5)
        b = read_topic(kafka.bootstrap, f"{name}.public.b", 1)
    assert [payload(r)["after"] for r in a] == [
        {"id": 1, "x": 1},
        {"id": 2, "x": 2, "note": "two"},
        {"id": 3, "note": "three"},
        {"id": 4, "note": "four"},
        {"id": 4, "note": "FOUR"},
    ]
    fields = [f["field"] for f in a[1][1]["schema"]["fields"][0]["fields"]]
    assert fields == ["id", "x", "note"]
    note = a[1][1]["schema"]["fields"][0]["fields"][2]
    assert note["optional"] is False and note["type"] == "string"
    tx = {payload(r)["source"]["txId"] for r in (a[3], a[4], b[0])}
    assert len(tx) == 1
    lsns = [
        payload(a[3])["source"]["lsn"],
        payload(b[0])["source"]["lsn"],
        payload(a[4])["source"]["lsn"],
    ]
    assert lsns == sorted(lsns)


def test_restart_resumes_without_loss(pg_database: str, kafka: KafkaService) -> None:
    from tests.sources.pg_harness import OffsetStoreDouble

    sql(pg_database, "CREATE TABLE r (id int PRIMARY KEY)")
    name = src_name()
    cfg = make_config(pg_database, name, tables=["public.r"], snapshot="never",
                      status_interval_ms=100)  # fmt: skip
    store = OffsetStoreDouble()
    with run_source(kafka.bootstrap, cfg, store):
        sql(pg_database, "INSERT INTO r SELECT generate_series(1, 100)")
        read_topic(kafka.bootstrap, f"{name}.public.r", 100)
    sql(pg_database, "INSERT INTO r SELECT generate_series(101, 200)")  # while stopped
    with run_source(kafka.bootstrap, cfg, store):
        sql(pg_database, "INSERT INTO r SELECT generate_series(201, 300)")
        recs = read_topic(kafka.bootstrap, f"{name}.public.r", 300)
    ids = [payload(r)["after"]["id"] for r in recs]
    assert sorted(set(ids)) == list(range(1, 301))
    assert len(ids) == 300  # the slot was confirmed at the last commit: nothing replayed


def test_heartbeat_advances_slot_while_tables_idle(pg_database: str, kafka: KafkaService) -> None:
    sql(pg_database, "CREATE TABLE quiet (id int PRIMARY KEY)", "CREATE TABLE busy (id int)")
    name = src_name()
    cfg = make_config(
        pg_database, name, tables=["public.quiet"], snapshot="never",
        heartbeat_interval_ms=200, status_interval_ms=100,
    )  # fmt: skip
    slot = cfg.slot

    def confirmed() -> int:
        with psycopg.connect(pg_database) as c:
            row = c.execute(
                "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint"
                " FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            ).fetchone()
            assert row is not None
            return int(row[0])

    from tests.sources.pg_harness import wait_for

    with run_source(kafka.bootstrap, cfg):
        start = confirmed()
        sql(pg_database, "INSERT INTO busy SELECT generate_series(1, 20000)")
        with psycopg.connect(pg_database) as c:
            row = c.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
            ).fetchone()
            assert row is not None
            target = int(row[0])
        assert wait_for(lambda: confirmed() >= target, 15), (start, target, confirmed())


def test_protocol_v2_streamed_transactions(pg_database: str, kafka: KafkaService) -> None:
    """Large in-progress transactions streamed by the server (logical_decoding_work_mem tiny):
    committed ones arrive whole, aborted ones (and aborted subtransactions) never."""
    dbname = pg_database.rsplit("/", 1)[1]
    sql(
        pg_database,
        f"ALTER DATABASE {dbname} SET logical_decoding_work_mem = '64kB'",
        "CREATE TABLE big (id int PRIMARY KEY, v text)",
    )
    name = src_name()
    cfg = make_config(
        pg_database, name, tables=["public.big"], snapshot="never", streaming=True,
        stream_batch_size=700,
    )  # fmt: skip
    with run_source(kafka.bootstrap, cfg) as running:
        with psycopg.connect(pg_database) as c:  # one transaction, with a rolled-back savepoint
            c.execute("INSERT INTO big SELECT g, repeat('v', 50) FROM generate_series(1, 3000) g")
            c.execute("SAVEPOINT s")
            c.execute("INSERT INTO big SELECT g, 'gone' FROM generate_series(10001, 13000) g")
            c.execute("ROLLBACK TO SAVEPOINT s")
            c.execute("INSERT INTO big SELECT g, 'w' FROM generate_series(3001, 5000) g")
            c.commit()
        with psycopg.connect(pg_database) as c:
            c.execute("INSERT INTO big SELECT g, 'gone' FROM generate_series(20001, 25000) g")
            c.rollback()
        sql(pg_database, "INSERT INTO big VALUES (5001, 'last')")
        recs = read_topic(kafka.bootstrap, f"{name}.public.big", 5001, settle=1.0)
        assert running.source.stats["streamed_transactions"] >= 1
    ids = [payload(r)["after"]["id"] for r in recs]
    assert ids == list(range(1, 5002))
    assert len({payload(r)["source"]["txId"] for r in recs[:5000]}) == 1


def test_table_without_key_and_all_tables(pg_database: str, kafka: KafkaService) -> None:
    sql(
        pg_database,
        "CREATE TABLE logs (msg text, n int)",
        "ALTER TABLE logs REPLICA IDENTITY FULL",
        "CREATE TABLE other (id int PRIMARY KEY)",
    )
    name = src_name()
    cfg = make_config(pg_database, name, snapshot="never")  # no `tables`: all tables
    with run_source(kafka.bootstrap, cfg):
        sql(
            pg_database,
            "INSERT INTO logs VALUES ('a', 1)",
            "UPDATE logs SET n = 2",
            "DELETE FROM logs",
            "INSERT INTO other VALUES (7)",
        )
        logs = read_topic(kafka.bootstrap, f"{name}.public.logs", 4)
        other = read_topic(kafka.bootstrap, f"{name}.public.other", 1)
    assert ops(logs) == ["c", "u", "d", None]  # a tombstone with a null key, as Debezium
    assert all(r[0] is None for r in logs)
    assert payload(logs[1])["before"] == {"msg": "a", "n": 1}
    assert payload(logs[2])["before"] == {"msg": "a", "n": 2}
    assert other[0][0]["payload"] == {"id": 7}


def test_skip_ops_and_tombstones_off(pg_database: str, kafka: KafkaService) -> None:
    sql(pg_database, "CREATE TABLE k (id int PRIMARY KEY)")
    name = src_name()
    cfg = make_config(
        pg_database, name, tables=["public.k"], snapshot="never", skip_ops=["t", "u"],
        tombstones=False, schemas=False,
    )  # fmt: skip
    with run_source(kafka.bootstrap, cfg):
        sql(
            pg_database,
            "INSERT INTO k VALUES (1)",
            "UPDATE k SET id = 1",
            "DELETE FROM k",
            "TRUNCATE k",
            "INSERT INTO k VALUES (2)",
        )
        recs = read_topic(kafka.bootstrap, f"{name}.public.k", 3)
    assert [r[1]["op"] for r in recs] == ["c", "d", "c"]  # bare payloads, no tombstone
    assert recs[0][0] == {"id": 1}


def test_reconnects_after_walsender_is_terminated(pg_database: str, kafka: KafkaService) -> None:
    sql(pg_database, "CREATE TABLE rc (id int PRIMARY KEY)")
    name = src_name()
    cfg = make_config(pg_database, name, tables=["public.rc"], snapshot="never")
    from tests.sources.pg_harness import wait_for

    with run_source(kafka.bootstrap, cfg) as running:
        sql(pg_database, "INSERT INTO rc SELECT generate_series(1, 100)")
        read_topic(kafka.bootstrap, f"{name}.public.rc", 100)
        sql(
            pg_database,
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            f" WHERE slot_name = '{cfg.slot}'",
            "INSERT INTO rc SELECT generate_series(101, 200)",
        )
        assert wait_for(
            lambda: running.source.repl is None or not running.source.repl.streaming, 10
        )
        recs = read_topic(kafka.bootstrap, f"{name}.public.rc", 200, timeout=30)
        assert running.error is None and running.thread.is_alive()
    ids = {payload(r)["after"]["id"] for r in recs}
    assert ids == set(range(1, 201))


def test_enum_gains_a_label_mid_stream(pg_database: str, kafka: KafkaService) -> None:
    sql(
        pg_database,
        "CREATE TYPE color AS ENUM ('red', 'green')",
        "CREATE TABLE paint (id int PRIMARY KEY, c color)",
    )
    name = src_name()
    cfg = make_config(pg_database, name, tables=["public.paint"], snapshot="never")
    with run_source(kafka.bootstrap, cfg):
        sql(pg_database, "INSERT INTO paint VALUES (1, 'red')")
        read_topic(kafka.bootstrap, f"{name}.public.paint", 1)  # schema built before the ALTER
        sql(pg_database, "ALTER TYPE color ADD VALUE 'blue'")
        sql(pg_database, "INSERT INTO paint VALUES (2, 'blue')")
        recs = read_topic(kafka.bootstrap, f"{name}.public.paint", 2)

    def allowed(rec: tuple[Any, Any]) -> str:
        fields = rec[1]["schema"]["fields"][1]["fields"]
        return next(f for f in fields if f["field"] == "c")["parameters"]["allowed"]

    assert allowed(recs[0]) == "red,green"
    assert payload(recs[1])["after"]["c"] == "blue"
    assert allowed(recs[1]) == "red,green,blue"


def test_huge_transaction_is_sent_in_chunks_and_confirmed_at_commit(
    pg_database: str, kafka: KafkaService
) -> None:
    sql(pg_database, "CREATE TABLE huge (id int PRIMARY KEY)")
    name = src_name()
    cfg = make_config(
        pg_database, name, tables=["public.huge"], snapshot="never", stream_batch_size=1000,
        proto_version=1, status_interval_ms=100,
    )  # fmt: skip
    with run_source(kafka.bootstrap, cfg) as running:
        sql(pg_database, "INSERT INTO huge SELECT generate_series(1, 20000)")
        recs = read_topic(kafka.bootstrap, f"{name}.public.huge", 20000)
        from tests.sources.pg_harness import wait_for

        # the transaction's commit is the only offset: safe once all 20 chunks are confirmed
        assert wait_for(lambda: running.ctx.safe_offset() is not None, 10)
        assert running.ctx.safe_offset().lsn > 0
    assert [payload(r)["after"]["id"] for r in recs] == list(range(1, 20001))
    assert len({payload(r)["source"]["txId"] for r in recs}) == 1
