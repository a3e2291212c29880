"""Consistent snapshot of the captured tables, tied to the binlog coordinates it belongs to.

MariaDB: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and the ``binlog_snapshot_file/
position`` status it sets (no lock at all); the GTID comes from ``BINLOG_GTID_POS()``. MySQL:
a brief ``FLUSH TABLES WITH READ LOCK`` around starting the snapshot and reading
``SHOW MASTER STATUS``. Rows are read by primary-key ranges in chunks; the coordinator emits
them as ``op: r`` with an offset that lets a crashed snapshot continue where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Context, Decimal
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import FIELD_TYPE

from cdc_bridge.errors import FatalError
from cdc_bridge.events import OP_READ, SNAPSHOT_TRUE, ChangeEvent
from cdc_bridge.sources.coordinator import SnapshotChunk, SnapshotReader
from cdc_bridge.sources.mysql.offset import MySqlOffset
from cdc_bridge.sources.mysql.rows import parse_datetime, parse_time, zero_value
from cdc_bridge.sources.mysql.schema import TableState, load_columns
from cdc_bridge.types.mysql import TypeOptions
from cdc_bridge.types.mysql_columns import ColumnInfo, T

__all__ = ["MySqlSnapshotReader", "canonical_converter", "snapshot_connection"]

log = logging.getLogger(__name__)

# DECIMAL has up to 65 digits; the default context (28) would round.
_WIDE = Context(prec=100)

# Temporal and decimal values arrive as their text so zero dates survive and nothing is
# rounded through Python objects; canonical_converter parses them.
_RAW_TYPES = (
    FIELD_TYPE.DATE,
    FIELD_TYPE.NEWDATE,
    FIELD_TYPE.DATETIME,
    FIELD_TYPE.TIMESTAMP,
    FIELD_TYPE.TIME,
    FIELD_TYPE.DECIMAL,
    FIELD_TYPE.NEWDECIMAL,
)


def snapshot_connection(connect_args: dict[str, Any]) -> Any:
    conv = dict(pymysql.converters.conversions)
    for t in _RAW_TYPES:
        conv.pop(t, None)
    return pymysql.connect(**connect_args, conv=conv, charset="utf8mb4", autocommit=False)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes | bytearray) else str(v)


def canonical_converter(col: ColumnInfo, zero_dates: str) -> Callable[[Any], Any] | None:
    """PyMySQL text-protocol value -> the canonical value the binlog decoder produces."""
    t = col.type
    zero = zero_value(col, zero_dates)
    if t == T.NEWDECIMAL:
        scale = col.scale
        return lambda v: int(Decimal(_text(v)).scaleb(scale, _WIDE))
    if t == T.DATE:

        def date(v: Any) -> Any:
            is_zero, us = parse_datetime(_text(v))
            return zero if is_zero else us // 86_400_000_000

        return date
    if t in (T.DATETIME2, T.TIMESTAMP2):

        def dtm(v: Any) -> Any:
            is_zero, us = parse_datetime(_text(v))
            return zero if is_zero else us

        return dtm
    if t == T.TIME2:
        return lambda v: parse_time(_text(v))
    if t == T.BIT:
        return lambda v: int.from_bytes(v, "big") if isinstance(v, bytes | bytearray) else int(v)
    if t == T.JSON or col.is_json:
        return _text
    if t == T.SET:
        order = col.set_values or ()
        return lambda v: ",".join(x for x in order if x in v) if isinstance(v, set) else _text(v)
    if t in (T.STRING, T.VARCHAR, T.BLOB, T.ENUM) and not col.binary:
        return lambda v: v if isinstance(v, str) else _text(v)
    return None


def _start_consistent(cur: Any, mariadb: bool, gtid_on: bool) -> tuple[str, int, str | None]:
    """Start a consistent-snapshot transaction; the binlog coordinates (file, pos, GTIDs) it
    belongs to."""
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    if mariadb:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = {k.lower(): v for k, v in cur.fetchall()}
        file = _text(status["binlog_snapshot_file"])
        pos = int(status["binlog_snapshot_position"])
        gtids = None
        if gtid_on:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            gtids = _text(cur.fetchone()[0] or "")
        return file, pos, gtids
    cur.execute("FLUSH TABLES WITH READ LOCK")
    try:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            cur.execute("SHOW BINARY LOG STATUS")
        except pymysql.err.ProgrammingError:
            cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    finally:
        cur.execute("UNLOCK TABLES")
    gt = _text(row[4]).replace("\n", "") if gtid_on and len(row) > 4 and row[4] else None
    return _text(row[0]), int(row[1]), gt if gtid_on else None


def _jsonable(v: Any) -> bool:
    return isinstance(v, int | str) and not isinstance(v, bool)


class MySqlSnapshotReader(SnapshotReader):
    """Reads the tables inside one consistent-snapshot transaction, by primary-key ranges of
    ``batch_rows`` (tables without a key: one unbuffered scan, read in batches).

    ``hand_off``: the binlog coordinates of the snapshot, or those of ``resume`` (an
    interrupted snapshot): streaming starts at the *first* attempt's coordinates, so later
    changes replay and nothing is missed. A chunk's last key is resumable when every key value
    is an int or a string (else the table restarts from its beginning after a crash).
    """

    def __init__(
        self,
        connect_args: dict[str, Any],
        tables: Sequence[tuple[str, str]],
        *,
        source_name: str,
        server_id: int,
        mariadb: bool,
        gtid_on: bool,
        opts: TypeOptions,
        batch_rows: int,
        resume: MySqlOffset | None = None,
    ) -> None:
        self.conn = snapshot_connection(connect_args)
        try:
            cur = self.cur = self.conn.cursor()
            cur.execute("SET SESSION time_zone = '+00:00'")
            file, pos, gtids = _start_consistent(cur, mariadb, gtid_on)
        except BaseException:
            self.close()
            raise
        if resume is not None and resume.snapshot is not None:
            file, pos, gtids = resume.file, resume.pos, resume.gtids
        self.hand_off = MySqlOffset(file, pos, gtids)
        self.by_name = {f"{db}.{tb}": (db, tb) for db, tb in tables}
        self.source_name = source_name
        self.server_id = server_id
        self.opts = opts
        self.batch_rows = batch_rows
        self.ts_us = time.time_ns() // 1000

    def tables(self) -> list[str]:
        return list(self.by_name)

    def estimate(self, table: str) -> int:
        db, tb = self.by_name[table]
        self.cur.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (db, tb),
        )
        r = self.cur.fetchone()
        return int(r[0] or 0) if r else 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.commit()
        with contextlib.suppress(Exception):
            self.conn.close()

    def read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        db, tb = self.by_name[table]
        cur, batch_rows = self.cur, self.batch_rows
        loaded = load_columns(cur, db, tb)
        if loaded is None:
            raise FatalError(f"source {self.source_name}: table {table} does not exist")
        cols, key = loaded
        state = TableState(self.source_name, db, tb, cols, key, self.opts, snapshot=True)
        convs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, x in enumerate(cols):
            cv = canonical_converter(x, self.opts.zero_dates)
            if cv is not None:
                convs.append((i, cv))
        hand_off = self.hand_off
        src_tmpl = {
            "table": tb,
            "server_id": 0,  # as Debezium: no binlog event has been read yet
            "gtid": None,
            "file": hand_off.file,
            "pos": hand_off.pos,
            "row": 0,
            "thread": None,
            "query": None,
        }
        collist = ", ".join(f"`{c.name}`" for c in cols)
        key_idx = [state.names.index(k) for k in key]
        order = ", ".join(f"`{k}`" for k in key)
        last: list[Any] | None = list(after) if key and isinstance(after, list) else None
        scan: Any = None
        ts_us, schema, make = self.ts_us, state.schema, state.row
        try:
            while True:
                if key:
                    if last is None:
                        cur.execute(
                            f"SELECT {collist} FROM `{db}`.`{tb}` ORDER BY {order} LIMIT %s",
                            (batch_rows,),
                        )
                    else:
                        marks = ", ".join(["%s"] * len(key))
                        cur.execute(
                            f"SELECT {collist} FROM `{db}`.`{tb}` WHERE ({order}) > ({marks}) "
                            f"ORDER BY {order} LIMIT %s",
                            (*last, batch_rows),
                        )
                    rows = cur.fetchall()
                else:
                    # No key to page by: one unbuffered scan, read in batches.
                    if scan is None:
                        scan = self.conn.cursor(pymysql.cursors.SSCursor)
                        scan.execute(f"SELECT {collist} FROM `{db}`.`{tb}`")
                    rows = scan.fetchmany(batch_rows)
                if not rows:
                    return
                events = []
                for raw in rows:
                    values = list(raw)
                    for i, conv in convs:
                        v = values[i]
                        if v is not None:
                            values[i] = conv(v)
                    events.append(
                        ChangeEvent(
                            schema,
                            OP_READ,
                            None,
                            make(values),
                            ts_us,
                            dict(src_tmpl),
                            SNAPSHOT_TRUE,
                        )
                    )
                last_key = [rows[-1][i] for i in key_idx]
                resumable = bool(key) and all(_jsonable(v) for v in last_key)
                yield SnapshotChunk(events, last_key if resumable else None)
                if key and len(rows) < batch_rows:
                    return
                last = last_key
        finally:
            if scan is not None:
                with contextlib.suppress(Exception):
                    scan.close()
