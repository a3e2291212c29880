"""Consistent snapshot of the captured tables, tied to the binlog coordinates it belongs to.

MariaDB: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and the ``binlog_snapshot_file/
position`` status it sets (no lock at all); the GTID comes from ``BINLOG_GTID_POS()``. MySQL:
a brief ``FLUSH TABLES WITH READ LOCK`` around starting the snapshot and reading
``SHOW MASTER STATUS``. Rows are read by primary-key ranges in batches, emitted as ``op: r``
with an offset that lets a crashed snapshot continue where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Context, Decimal
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import FIELD_TYPE

from cdc_bridge.events import (
    OP_READ,
    SNAPSHOT_FIRST,
    SNAPSHOT_LAST,
    SNAPSHOT_TRUE,
    ChangeEvent,
)
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.mysql.offset import MySqlOffset
from cdc_bridge.sources.mysql.rows import ColumnInfo, T, parse_datetime, parse_time, zero_value
from cdc_bridge.sources.mysql.schema import TableState, load_columns
from cdc_bridge.sources.mysql.schema_change import snapshot_preamble
from cdc_bridge.types.mysql import TypeOptions

__all__ = ["SnapshotPosition", "canonical_converter", "run_snapshot", "snapshot_connection"]

log = logging.getLogger(__name__)

FIRST_IN_DATA_COLLECTION = "first_in_data_collection"
LAST_IN_DATA_COLLECTION = "last_in_data_collection"

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


class SnapshotPosition:
    """Binlog coordinates a consistent snapshot belongs to."""

    def __init__(self, file: str, pos: int, gtids: str | None) -> None:
        self.file, self.pos, self.gtids = file, pos, gtids


def _start_consistent(cur: Any, mariadb: bool, gtid_on: bool) -> SnapshotPosition:
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
        return SnapshotPosition(file, pos, gtids)
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
    return SnapshotPosition(_text(row[0]), int(row[1]), gt if gtid_on else None)


def _jsonable(v: Any) -> bool:
    return isinstance(v, int | str) and not isinstance(v, bool)


def run_snapshot(
    ctx: SourceContext,
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
    progress: Callable[[dict[str, Any]], None] | None = None,
    publish: bool = True,
) -> MySqlOffset:
    """Emit every row of ``tables`` as ``op: r``; returns the offset streaming starts from.

    ``resume`` is the offset of an interrupted snapshot: finished tables are skipped, the
    interrupted one continues after its last emitted key, and streaming starts at the
    *first* attempt's coordinates (later changes replay, nothing is missed).
    """
    conn = snapshot_connection(connect_args)
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION time_zone = '+00:00'")
        here = _start_consistent(cur, mariadb, gtid_on)
        base = resume if resume is not None and resume.snapshot else None
        file, pos = (base.file, base.pos) if base else (here.file, here.pos)
        gtids = base.gtids if base else here.gtids
        done = list(base.snapshot_done) if base else []
        if base is None and publish:
            ctx.emit_records(
                snapshot_preamble(cur, source_name, list(tables), file, pos, ctx.encoder.schemas)
            )
        total_est = 0
        for db, tb in tables:
            cur.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (db, tb),
            )
            r = cur.fetchone()
            total_est += int(r[0] or 0) if r else 0
        started = time.monotonic()
        ts_us = time.time_ns() // 1000
        emitted = 0
        held: list[ChangeEvent] = []
        held_offset: MySqlOffset | None = None
        first = True

        def flush(final: bool) -> None:
            nonlocal held, held_offset
            if not held:
                return
            if final:
                held[-1].snapshot = SNAPSHOT_LAST
            ctx.emit(held if publish else [], held_offset)
            held, held_offset = [], None

        for db, tb in tables:
            full = f"{db}.{tb}"
            if full in done:
                continue
            loaded = load_columns(cur, db, tb)
            if loaded is None:
                raise LookupError(f"table {full} does not exist")
            cols, key = loaded
            state = TableState(source_name, db, tb, cols, key, opts, snapshot=True)
            convs: list[tuple[int, Callable[[Any], Any]]] = []
            for i, x in enumerate(cols):
                cv = canonical_converter(x, opts.zero_dates)
                if cv is not None:
                    convs.append((i, cv))
            src_tmpl = {
                "table": tb,
                "server_id": 0,  # as Debezium: no binlog event has been read yet
                "gtid": None,
                "file": file,
                "pos": pos,
                "row": 0,
                "thread": None,
                "query": None,
            }
            collist = ", ".join(f"`{c.name}`" for c in cols)
            key_idx = [state.names.index(k) for k in key]
            after: list[Any] | None = None
            if base and base.snapshot_table == full and base.snapshot_after is not None:
                after = list(base.snapshot_after)
            keyset = bool(key)
            scan: Any = None
            table_first = True
            while True:
                if keyset:
                    order = ", ".join(f"`{k}`" for k in key)
                    if after is None:
                        cur.execute(
                            f"SELECT {collist} FROM `{db}`.`{tb}` ORDER BY {order} LIMIT %s",
                            (batch_rows,),
                        )
                    else:
                        marks = ", ".join(["%s"] * len(key))
                        cur.execute(
                            f"SELECT {collist} FROM `{db}`.`{tb}` WHERE ({order}) > ({marks}) "
                            f"ORDER BY {order} LIMIT %s",
                            (*after, batch_rows),
                        )
                    rows = cur.fetchall()
                else:
                    # No key to page by: one unbuffered scan, read in batches.
                    if scan is None:
                        scan = conn.cursor(pymysql.cursors.SSCursor)
                        scan.execute(f"SELECT {collist} FROM `{db}`.`{tb}`")
                    rows = scan.fetchmany(batch_rows)
                if not rows:
                    if scan is not None:
                        scan.close()
                    break
                events = []
                for raw in rows:
                    values = list(raw)
                    for i, conv in convs:
                        v = values[i]
                        if v is not None:
                            values[i] = conv(v)
                    ev = ChangeEvent(
                        state.schema,
                        OP_READ,
                        None,
                        state.row(values),
                        ts_us,
                        dict(src_tmpl),
                        SNAPSHOT_TRUE,
                    )
                    events.append(ev)
                # Debezium's markers: first / first_in_data_collection / true /
                # last_in_data_collection / last.
                if first:
                    events[0].snapshot = SNAPSHOT_FIRST
                    first = False
                elif table_first:
                    events[0].snapshot = FIRST_IN_DATA_COLLECTION
                table_first = False
                last_key = [rows[-1][i] for i in key_idx]
                resumable = keyset and all(_jsonable(v) for v in last_key)
                flush(False)
                held = events
                held_offset = MySqlOffset(
                    file,
                    pos,
                    gtids,
                    snapshot=True,
                    snapshot_done=tuple(done),
                    snapshot_table=full if resumable else None,
                    snapshot_after=last_key if resumable else None,
                )
                emitted += len(rows)
                elapsed = max(time.monotonic() - started, 1e-6)
                rate = emitted / elapsed
                info = {
                    "table": full,
                    "rows": emitted,
                    "rows_per_s": round(rate),
                    "eta_s": round(max(total_est - emitted, 0) / rate, 1) if rate else None,
                }
                if progress is not None:
                    progress(info)
                log.info(
                    "snapshot %s: %d rows, %.0f rows/s, ETA %ss",
                    full,
                    emitted,
                    rate,
                    info["eta_s"],
                )
                if ctx.stopping.is_set():
                    flush(False)
                    raise InterruptedError("stopped during snapshot")
                if keyset and len(rows) < batch_rows:
                    break
                after = last_key
            done.append(full)
            if not table_first and held:
                held[-1].snapshot = LAST_IN_DATA_COLLECTION
            if held:
                held_offset = MySqlOffset(
                    file, pos, gtids, snapshot=True, snapshot_done=tuple(done)
                )
        flush(True)
        with contextlib.suppress(Exception):
            conn.commit()
        final = MySqlOffset(file, pos, gtids)
        ctx.emit([], final)
        log.info("snapshot finished: %d rows in %.1fs", emitted, time.monotonic() - started)
        return final
    finally:
        with contextlib.suppress(Exception):
            conn.close()
