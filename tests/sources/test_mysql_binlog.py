"""The binlog wire layer against a private MariaDB: positions, GTIDs, big events, errors."""

from __future__ import annotations

import contextlib
from typing import Any

import pymysql
import pytest

from cdc_bridge.sources.mysql.binlog import (
    BinlogError,
    BinlogStream,
    Gtid,
    PositionPurgedError,
    Rotate,
    Rows,
    RowsQuery,
    Xid,
)


def _exec(db: Any, *sql: str) -> list[Any]:
    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
    out = []
    with contextlib.closing(conn), conn.cursor() as cur:
        for s in sql:
            cur.execute(s)
            out.append(cur.fetchall())
    return out


def _args(db: Any) -> dict[str, Any]:
    a = db.connect_kwargs()
    a.pop("database", None)
    return a


def _events(db: Any, **kw: Any) -> list[Any]:
    s = BinlogStream(_args(db), kw.pop("server_id", 7777), blocking=False, **kw)
    try:
        return list(s.events())
    finally:
        s.close()


def test_file_position_and_gtid_start_points_agree(mariadb_database: Any) -> None:
    db = mariadb_database
    _exec(db, "CREATE TABLE b (id INT PRIMARY KEY, v TEXT)")
    status, gtid = _exec(db, "SHOW MASTER STATUS", "SELECT @@gtid_binlog_pos")
    file, pos = status[0][0], int(status[0][1])
    _exec(db, "INSERT INTO b VALUES (1, 'a'), (2, 'b')", "UPDATE b SET v = 'c' WHERE id = 2")
    by_pos = [e for e in _events(db, file=file, pos=pos) if not isinstance(e, Rotate)]
    by_gtid = [e for e in _events(db, gtid=gtid[0][0]) if not isinstance(e, Rotate)]

    def shape(evs: list[Any]) -> list[Any]:
        out = []
        for e in evs:
            if isinstance(e, Rows) and e.table.table == "b":
                out.append((e.op, e.rows, e.pos))
            elif isinstance(e, Gtid | Xid):
                out.append((type(e).__name__, e.pos))
        return out

    assert shape(by_pos) == shape(by_gtid)
    rows = [e for e in by_pos if isinstance(e, Rows)]
    assert [(r.op, r.rows) for r in rows] == [
        ("c", [[1, "a"], [2, "b"]]),
        ("u", [[2, "b"], [2, "c"]]),
    ]
    gtids = [e for e in by_pos if isinstance(e, Gtid)]
    assert gtids[0].pos == pos and gtids[0].gtid.startswith("0-1-")
    assert any(isinstance(e, RowsQuery) and e.query.startswith("INSERT INTO b") for e in by_pos)


def test_event_larger_than_one_packet(mariadb_database: Any) -> None:
    db = mariadb_database
    _exec(db, "SET GLOBAL max_allowed_packet = 67108864")
    try:
        _exec(db, "CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)")
        (status,) = _exec(db, "SHOW MASTER STATUS")
        blob = bytes(range(256)) * (20 * 4096)  # 20 MiB: the event spans two packets
        conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("INSERT INTO big VALUES (1, %s)", (blob,))
        rows = [
            e for e in _events(db, file=status[0][0], pos=int(status[0][1])) if isinstance(e, Rows)
        ]
        assert rows[0].rows[0][1] == blob
    finally:
        _exec(db, "SET GLOBAL max_allowed_packet = 16777216")


def test_unknown_position_and_future_gtid_are_errors_not_silent_restarts(
    mariadb_database: Any,
) -> None:
    db = mariadb_database
    with pytest.raises(PositionPurgedError):
        _events(db, file="mysql-bin.999999", pos=4)
    with pytest.raises(BinlogError, match="not in the master's binlog"):
        _events(db, gtid="0-1-999999999")
