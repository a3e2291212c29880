"""The embedded test servers really work: broker round trip, logical decoding, row binlog."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pymysql
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cdc_bridge.testing import _process, services
from cdc_bridge.testing.services import (
    KafkaService,
    MariaDBService,
    MySQLDatabase,
    PostgresService,
    ServiceError,
)


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
        future.result(timeout=10)


def _consume(bootstrap: str, topic: str, count: int, **conf: object) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **conf,
        }
    )
    out: list[tuple[bytes, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def test_kafka_round_trip(kafka: KafkaService, topic_name: Callable[..., str]) -> None:
    topic = topic_name("roundtrip")
    _create_topic(kafka.bootstrap, topic)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    for i in range(3):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(10) == 0
    assert _consume(kafka.bootstrap, topic, 3) == [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2")]


def test_kafka_consumer_group_join(kafka: KafkaService, topic_name: Callable[..., str]) -> None:
    topic = topic_name("group")
    _create_topic(kafka.bootstrap, topic)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(topic, key=b"a", value=b"1")
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 2000,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value()) == (b"a", b"1")
    finally:
        consumer.close()


def test_kafka_pause_blocks_delivery_until_resume(
    kafka: KafkaService, topic_name: Callable[..., str]
) -> None:
    if kafka.external:
        pytest.skip("pause/resume needs a private broker or a container")
    topic = topic_name("pause")
    _create_topic(kafka.bootstrap, topic)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "message.timeout.ms": 60000})
    assert producer.flush(10) == 0
    kafka.pause()
    try:
        producer.produce(topic, key=b"p", value=b"while-paused")
        assert producer.flush(1.5) == 1  # still in flight: the broker is frozen
    finally:
        kafka.resume()
    assert producer.flush(30) == 0
    assert _consume(kafka.bootstrap, topic, 1) == [(b"p", b"while-paused")]


def test_postgres_is_ready_for_logical_decoding(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert int(conn.execute("SHOW max_replication_slots").fetchone()[0]) >= 10
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("CREATE PUBLICATION pub FOR TABLE t")
        conn.execute("SELECT pg_create_logical_replication_slot('svc_test', 'pgoutput')")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
        changes = conn.execute(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes("
            "'svc_test', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')"
        ).fetchone()
        assert changes is not None and changes[0] >= 3  # BEGIN, RELATION, INSERT, COMMIT


def test_postgres_replication_connection(postgres: PostgresService, pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True, replication="database") as conn:
        row = conn.execute("IDENTIFY_SYSTEM").fetchone()
        assert row is not None and row[3] == pg_database.rsplit("/", 1)[1]


def test_pg_database_is_dropped_with_its_slots(postgres: PostgresService) -> None:
    dsn = postgres.create_database("svc_drop_me")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('svc_drop_slot', 'pgoutput')")
    postgres.drop_database("svc_drop_me")
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'svc_drop_me'"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'svc_drop_slot'"
        ).fetchone() == (0,)


def test_mariadb_binlog_settings(mariadb: MariaDBService) -> None:
    with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, "
            "@@gtid_strict_mode"
        )
        assert cur.fetchone() == (1, "ROW", "FULL", "FULL", 1)


def test_mariadb_insert_shows_up_in_binlog(
    mariadb: MariaDBService, mariadb_database: MySQLDatabase
) -> None:
    with contextlib.closing(pymysql.connect(**mariadb_database.connect_kwargs())) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute("INSERT INTO t VALUES (1, 'a')")
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            last_log = cur.fetchall()[-1][0]
            cur.execute(f"SHOW BINLOG EVENTS IN '{last_log}'")
            events = cur.fetchall()
    kinds = [(row[2], row[5]) for row in events]
    table_map = "table_id: "
    assert any(k == "Table_map" and f"({mariadb_database.name}.t)" in info for k, info in kinds)
    assert any(k == "Write_rows_v1" and info.startswith(table_map) for k, info in kinds)


def test_mariadb_root_over_tcp_has_all_privileges(mariadb: MariaDBService) -> None:
    with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall())
    assert "ALL PRIVILEGES ON *.*" in grants


def test_mariadb_privileges_are_enforced(
    mariadb: MariaDBService, mariadb_database: MySQLDatabase
) -> None:
    user = f"u{os.getpid()}"
    with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT SELECT ON `{mariadb_database.name}`.* TO '{user}'@'%'")
    try:
        with (
            contextlib.closing(
                pymysql.connect(host=mariadb.host, port=mariadb.port, user=user, password="pw")
            ) as conn,
            conn.cursor() as cur,
        ):
            with pytest.raises(pymysql.err.OperationalError) as err:
                cur.execute("SHOW MASTER STATUS")  # needs BINLOG MONITOR / REPLICATION CLIENT
            assert err.value.args[0] == 1227
    finally:
        with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def test_private_servers_clean_up_their_files() -> None:
    if os.environ.get(services.ENV_POSTGRES) or services.use_testcontainers():
        pytest.skip("checks the private-server mode")
    pg = services.start_postgres()
    workdir = pg._workdir
    assert workdir is not None and workdir.is_dir()
    pg.stop()
    pg.stop()  # idempotent
    assert not workdir.exists()


def test_leftovers_of_dead_runs_are_removed() -> None:
    stale = Path(tempfile.mkdtemp(prefix=f"{_process.DIR_PREFIX}stale-"))
    (stale / "owner.pid").write_text("999999999")  # no such process: its run died
    server = subprocess.Popen(["sleep", "60"], cwd=stale, start_new_session=True)
    (stale / "server.pid").write_text(str(server.pid))
    try:
        _process.clean_leftovers()
        assert server.wait(timeout=5) == -signal.SIGKILL
        assert not stale.exists()
    finally:
        server.kill()
        shutil.rmtree(stale, ignore_errors=True)


def test_live_runs_are_not_treated_as_leftovers(postgres: PostgresService) -> None:
    if postgres.external:
        pytest.skip("checks the private-server mode")
    _process.clean_leftovers()
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_external_service_that_is_down_gives_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _process.free_port()
    monkeypatch.setenv(services.ENV_POSTGRES, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    with pytest.raises(ServiceError, match=services.ENV_POSTGRES):
        services.start_postgres()


def test_mongodb_replica_set_accepts_change_streams(mongodb_uri: str) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        mongodb_uri, serverSelectionTimeoutMS=10000
    )
    try:
        coll = client["cdc_bridge_svc_test"]["c"]
        with coll.watch(max_await_time_ms=500) as stream:
            coll.insert_one({"_id": 1, "v": "a"})
            change = stream.try_next()
            deadline = time.monotonic() + 10
            while change is None and time.monotonic() < deadline:
                change = stream.try_next()
        assert change is not None
        assert change["operationType"] == "insert" and change["documentKey"] == {"_id": 1}
    finally:
        client.drop_database("cdc_bridge_svc_test")
        client.close()


def _private_only() -> None:
    if (
        os.environ.get(services.ENV_POSTGRES)
        or os.environ.get(services.ENV_MYSQL)
        or services.use_testcontainers()
    ):
        pytest.skip("crash/restart needs private servers")


def test_postgres_survives_kill_and_restart() -> None:
    _private_only()
    with services.start_postgres() as pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("SELECT pg_create_logical_replication_slot('crash_slot', 'pgoutput')")
        pg.kill()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.dsn, connect_timeout=2)
        pg.restart()
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]
            assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == [
                ("crash_slot",)
            ]


def test_mariadb_survives_kill_and_restart() -> None:
    _private_only()
    with services.start_mariadb() as db:
        with contextlib.closing(db.connect()) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE d")
            cur.execute("CREATE TABLE d.t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO d.t VALUES (1)")
            cur.execute("SELECT @@gtid_binlog_pos")
            (gtid_before,) = cur.fetchone()
        db.kill()
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(**db.connect_kwargs(), connect_timeout=2)
        db.restart()
        with contextlib.closing(db.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM d.t")
            assert cur.fetchall() == ((1,),)
            cur.execute("SELECT @@gtid_binlog_pos")
            assert cur.fetchone() == (gtid_before,)


def test_server_that_dies_at_startup_reports_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = _process.spawn(
        ["sh", "-c", "echo 'FATAL: pretend config error' >&2; exit 3"],
        user=None,
        log=log,
        cwd=tmp_path,
    )
    with pytest.raises(ServiceError, match=r"exit 3\).*\n.*FATAL: pretend config error"):
        _process.wait_until(lambda: False, proc=proc, timeout=10, what="pretend server", log=log)


def test_setup_command_failure_reports_its_output(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"initdb failed \(exit 1\).*\n.*no space left"):
        _process.run_checked(
            ["sh", "-c", "echo 'no space left'; exit 1"],
            user=None,
            log=tmp_path / "setup.log",
            what="initdb",
        )


def test_mariadb_database_drop_gets_past_an_open_transaction(mariadb: MariaDBService) -> None:
    db = mariadb.create_database("svc_locked")
    holder = pymysql.connect(**db.connect_kwargs())
    try:
        with holder.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            cur.execute("BEGIN")
            cur.execute("SELECT * FROM t")  # holds a metadata lock until commit
        mariadb.drop_database("svc_locked")
        with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'svc_locked'")
            assert cur.fetchall() == ()
    finally:
        with contextlib.suppress(pymysql.Error):
            holder.close()
