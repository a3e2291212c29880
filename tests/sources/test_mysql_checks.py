"""Setup checks of the MySQL source: each misconfiguration ends in one clear message."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from cdc_bridge.errors import ConfigError
from cdc_bridge.sources.mysql.binlog import BinlogError, BinlogStream
from cdc_bridge.sources.mysql.checks import check_server
from cdc_bridge.testing import services


def _exec(db: Any, *sql: str) -> None:
    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
    with contextlib.closing(conn), conn.cursor() as cur:
        for s in sql:
            cur.execute(s)


def _args(db: Any, user: str | None = None, password: str = "pw") -> dict[str, Any]:
    a = db.connect_kwargs()
    a.pop("database", None)
    if user is not None:
        a["user"], a["password"] = user, password
    return a


@pytest.fixture
def user(mariadb_database: Any) -> Iterator[str]:
    name = "u" + uuid.uuid4().hex[:8]
    _exec(mariadb_database, f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw'")
    yield name
    _exec(mariadb_database, f"DROP USER '{name}'@'%'")


def _table(db: Any) -> str:
    _exec(db, "CREATE TABLE IF NOT EXISTS k (id INT PRIMARY KEY)")
    return f"{db.name}.k"


def test_all_good(mariadb_database: Any) -> None:
    info = check_server(_args(mariadb_database), [_table(mariadb_database)], 4242)
    assert info.mariadb and info.gtid_on and info.row_metadata_full
    assert info.tables == [(mariadb_database.name, "k")]


def test_missing_replication_slave(mariadb_database: Any, user: str) -> None:
    db = mariadb_database
    _exec(db, f"GRANT SELECT ON *.* TO '{user}'@'%'")
    with pytest.raises(ConfigError, match="lacks the REPLICATION SLAVE privilege") as e:
        check_server(_args(db, user), [_table(db)], 4242)
    assert "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*" in str(e.value)


def test_missing_replication_client(mariadb_database: Any, user: str) -> None:
    db = mariadb_database
    _exec(db, f"GRANT SELECT, REPLICATION SLAVE ON *.* TO '{user}'@'%'")
    with pytest.raises(ConfigError, match="lacks the REPLICATION CLIENT"):
        check_server(_args(db, user), [_table(db)], 4242)


def test_missing_select(mariadb_database: Any, user: str) -> None:
    db = mariadb_database
    _exec(db, f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'")
    with pytest.raises(ConfigError, match=r"may not SELECT from .*GRANT SELECT ON"):
        check_server(_args(db, user), [_table(db)], 4242)


def test_unknown_table(mariadb_database: Any) -> None:
    with pytest.raises(ConfigError, match=r"table .*\.nope does not exist"):
        check_server(_args(mariadb_database), [f"{mariadb_database.name}.nope"], 4242)


def test_wrong_password(mariadb_database: Any, user: str) -> None:
    with pytest.raises(ConfigError, match="access denied"):
        check_server(_args(mariadb_database, user, "wrong"), None, 4242)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("binlog_format", "STATEMENT", "binlog_format is STATEMENT, cdc-bridge needs ROW"),
        ("binlog_format", "MIXED", "binlog_format is MIXED"),
        ("binlog_row_image", "MINIMAL", "binlog_row_image is MINIMAL, cdc-bridge needs FULL"),
    ],
)
def test_binlog_settings(mariadb_database: Any, variable: str, value: str, message: str) -> None:
    db = mariadb_database
    _exec(db, f"SET GLOBAL {variable} = '{value}'")
    try:
        with pytest.raises(ConfigError, match=message):
            check_server(_args(db), [_table(db)], 4242)
    finally:
        _exec(db, f"SET GLOBAL {variable} = '{'ROW' if variable == 'binlog_format' else 'FULL'}'")


def test_server_id_of_the_server_itself(mariadb_database: Any) -> None:
    with pytest.raises(ConfigError, match="server_id = 1 is the server's own server_id"):
        check_server(_args(mariadb_database), [_table(mariadb_database)], 1)


def test_server_id_clash_with_connected_replica(mariadb_database: Any) -> None:
    db = mariadb_database
    # From the binlog's current end: other tests purge binlogs, after which a dump from an
    # empty GTID state is refused ("required binlog files have been purged").
    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    stream = BinlogStream(_args(db), 4343, file=file, pos=int(pos), annotate=False)
    stream.connect()

    ended: list[BaseException] = []

    def read() -> None:
        try:
            for _ev in stream.events():
                pass
        except BinlogError as exc:  # closed by the test, or the server refused the dump
            ended.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        # The server lists the replica once its dump thread runs (not always at once).
        conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
        with contextlib.closing(conn), conn.cursor() as cur:
            deadline = time.monotonic() + 10
            while True:
                cur.execute("SHOW SLAVE HOSTS")
                if any(int(r[0]) == 4343 for r in cur.fetchall()):
                    break
                assert time.monotonic() < deadline, f"the replica never registered: {ended}"
                time.sleep(0.05)
        with pytest.raises(ConfigError, match="server_id = 4343 is already used by another"):
            check_server(_args(db), [_table(db)], 4343)
    finally:
        stream.close()
        t.join(5)


def test_binlog_off(monkeypatch: pytest.MonkeyPatch) -> None:
    if services.use_testcontainers() or os.environ.get(services.ENV_MYSQL):
        pytest.skip("needs a private MariaDB to start without a binlog")
    from cdc_bridge.testing import _mysql

    monkeypatch.setattr(_mysql, "MARIADB_BINLOG_OPTIONS", ["--server-id=1", "--skip-log-bin"])
    with services.start_mariadb() as server:
        args = server.connect_kwargs()
        with pytest.raises(ConfigError, match=r"binary log is off: add `log_bin=mysql-bin`"):
            check_server(args, None, 4242)


def test_compressed_binlog_is_refused(mariadb_database: Any) -> None:
    db = mariadb_database
    _exec(db, "SET GLOBAL log_bin_compress = ON")
    try:
        with pytest.raises(ConfigError, match=r"log_bin_compress is ON .* `log_bin_compress=OFF`"):
            check_server(_args(db), [_table(db)], 4242)
    finally:
        _exec(db, "SET GLOBAL log_bin_compress = OFF")
