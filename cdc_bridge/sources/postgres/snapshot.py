"""Consistent snapshot of the captured tables: batched reads inside one (exported) snapshot,
``op: r`` events, progress with rows/s and ETA, and resume after a crash (by primary key)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from cdc_bridge.events import (
    OP_READ,
    SNAPSHOT_FIRST,
    SNAPSHOT_FIRST_IN_DATA_COLLECTION,
    SNAPSHOT_LAST,
    SNAPSHOT_LAST_IN_DATA_COLLECTION,
    SNAPSHOT_TRUE,
    ChangeEvent,
)
from cdc_bridge.sources.postgres.slot import TableInfo
from cdc_bridge.sources.postgres.tables import TableCodec, catalog_columns

__all__ = ["SnapshotProgress", "SnapshotReader"]

log = logging.getLogger(__name__)

# (events, progress state that is safe once they are on Kafka)
EmitFn = Callable[[list[ChangeEvent], dict[str, Any]], None]
CodecFn = Callable[[TableInfo, list[Any], tuple[str, ...]], TableCodec]


@dataclass
class SnapshotProgress:
    """Live progress of one table (read by logs and ``status``)."""

    table: str
    estimated_rows: int
    rows: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if rate <= 0 or self.estimated_rows <= self.rows:
            return None
        return (self.estimated_rows - self.rows) / rate

    def line(self) -> str:
        eta = self.eta_s
        est = f"/~{self.estimated_rows}" if self.estimated_rows > 0 else ""
        return f"snapshot {self.table}: {self.rows}{est} rows, {self.rate:,.0f} rows/s" + (
            f", ETA {eta:,.0f}s" if eta is not None else ""
        )


class SnapshotReader:
    """Reads every table inside one REPEATABLE READ snapshot and hands out ``r`` events.

    Events are handed out one batch behind, so they can be marked as Debezium marks them in
    ``source.snapshot``: the very first event ``first``, the very last ``last``, the first and
    last of each other table ``first_in_data_collection`` / ``last_in_data_collection``, the
    rest ``true``. The progress state given with a batch,
    ``{"done": [...], "table": t, "after": [pk text values]}``, lets a restarted bridge resume
    after the last delivered row (tables without a primary key restart from their beginning).
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        tables: list[TableInfo],
        make_codec: CodecFn,
        *,
        fetch_size: int,
        stopping: threading.Event,
        progress_interval_s: float = 5.0,
    ) -> None:
        self.conn = conn
        self.tables = tables
        self.make_codec = make_codec
        self.fetch_size = fetch_size
        self.stopping = stopping
        self.progress_interval_s = progress_interval_s
        self.progress: dict[str, SnapshotProgress] = {}

    def run(
        self,
        emit: EmitFn,
        *,
        snapshot_name: str | None,
        lsn: int,
        resume: dict[str, Any] | None,
    ) -> bool:
        """Read all tables; returns False if stopped before the end."""
        conn = self.conn
        conn.autocommit = False
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if snapshot_name:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
        row = conn.execute("SELECT txid_current()").fetchone()
        txid = int(row[0]) if row else None
        done: list[str] = list((resume or {}).get("done", []))
        resume_table = (resume or {}).get("table")
        resume_after = (resume or {}).get("after")
        held: list[ChangeEvent] = []
        held_state: dict[str, Any] = {}
        first = True
        try:
            for t in self.tables:
                if t.qualified in done:
                    continue
                after = resume_after if resume_table == t.qualified and t.primary_key else None
                table_first = True
                for batch, state in self._read_table(t, txid, lsn, done, after):
                    if self.stopping.is_set():
                        return False
                    if first:
                        batch[0].snapshot = SNAPSHOT_FIRST
                        first = False
                    elif table_first:
                        batch[0].snapshot = SNAPSHOT_FIRST_IN_DATA_COLLECTION
                    table_first = False
                    if held:
                        emit(held, held_state)
                    held, held_state = batch, state
                if not table_first and held[-1].snapshot != SNAPSHOT_FIRST:
                    held[-1].snapshot = SNAPSHOT_LAST_IN_DATA_COLLECTION
                done.append(t.qualified)
                held_state = {"done": list(done), "table": None, "after": None}
            if held:
                held[-1].snapshot = SNAPSHOT_LAST
                emit(held, held_state)
            elif done:
                emit([], {"done": list(done), "table": None, "after": None})
            return True
        finally:
            conn.rollback()
            conn.autocommit = True

    def _read_table(
        self,
        t: TableInfo,
        txid: int | None,
        lsn: int,
        done: list[str],
        after: list[str] | None,
    ) -> Any:
        conn = self.conn
        # generated columns too: Debezium's snapshot events carry them (its streamed ones not)
        cols, _pk, type_names = catalog_columns(conn, t.oid, generated=True)
        codec = self.make_codec(t, cols, t.primary_key)
        est_row = conn.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s", (t.oid,)
        ).fetchone()
        prog = self.progress[t.qualified] = SnapshotProgress(
            t.qualified, int(est_row[0]) if est_row else 0
        )
        # aliased: ORDER BY must see the columns, not their text forms of the same name
        select = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(
                _text_expr(c.name, c.type_oid, c.typmod), sql.Identifier(f"c{i}")
            )
            for i, c in enumerate(cols)
        )
        query = sql.SQL("SELECT {} FROM {}").format(select, sql.Identifier(t.schema, t.name))
        params: list[Any] = []
        pk = list(codec.schema.key_columns)
        if pk:
            pk_idents = sql.SQL(", ").join(sql.Identifier(k) for k in pk)
            if after is not None and len(after) == len(pk):
                bound = sql.SQL(", ").join(
                    sql.SQL("%s::{}").format(sql.SQL(type_names[k])) for k in pk
                )
                query += sql.SQL(" WHERE ({}) > ({})").format(pk_idents, bound)
                params = list(after)
                log.info("snapshot %s: resuming after key %s", t.qualified, after)
            query += sql.SQL(" ORDER BY {}").format(pk_idents)
        now_us = time.time_ns() // 1000
        source = {
            "schema": t.schema,
            "table": t.name,
            "txId": txid,
            "lsn": int(lsn),
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }
        seq = f'[null,"{int(lsn)}"]'
        key_index = codec.key_index
        table_schema = codec.schema
        build = codec.row
        last_log = time.monotonic()
        with conn.cursor(name=f"cdc_bridge_snapshot_{t.oid}") as cur:
            cur.itersize = self.fetch_size
            cur.execute(query, params)
            while True:
                rows = cur.fetchmany(self.fetch_size)
                if not rows:
                    break
                events = [
                    ChangeEvent(
                        table_schema, OP_READ, None, build(r), now_us, source, SNAPSHOT_TRUE, seq
                    )
                    for r in rows
                ]
                prog.rows += len(rows)
                last = rows[-1]
                state = {
                    "done": list(done),
                    "table": t.qualified,
                    "after": [last[i] for i in key_index] if key_index else None,
                }
                yield events, state
                now = time.monotonic()
                if now - last_log >= self.progress_interval_s:
                    log.info(prog.line())
                    last_log = now
        log.info("%s (done)", prog.line())


def _text_expr(name: str, oid: int, typmod: int) -> sql.Composable:
    """The column in its output-function text form, as pgoutput sends it."""
    if oid == 1042 and typmod >= 5:  # char(n): ::text would strip the padding
        return sql.SQL("rpad({}::text, {})").format(sql.Identifier(name), sql.Literal(typmod - 4))
    if oid == 869:  # inet: ::text always adds the netmask, the output function only when needed
        return sql.SQL("inet_out({})::text").format(sql.Identifier(name))
    return sql.SQL("{}::text").format(sql.Identifier(name))
