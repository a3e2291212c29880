"""The MySQL / MariaDB capture adapter: snapshot, then the row binlog as Debezium events.

Streaming groups events by transaction (GTID / BEGIN ... XID / COMMIT) and hands them to
Kafka in batches, each with the ``MySqlOffset`` that is safe once the batch is confirmed: the
end of the last whole transaction, or -- for a transaction larger than ``max_batch_rows`` --
its start plus the number of row events already delivered. After any error the stream
reconnects from the last offset it handed over, so nothing is skipped and nothing is emitted
twice by one process; only a crash replays (what Kafka confirmed after the last checkpoint).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

import orjson
import pymysql
from pymysqlreplication.gtid import Gtid as MySqlGtid
from pymysqlreplication.gtid import GtidSet

from cdc_bridge.envelope import CONNECTOR_VERSION, source_schema
from cdc_bridge.errors import ConfigError, FatalError, RetriableError
from cdc_bridge.events import (
    CONNECTOR_MYSQL,
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    SNAPSHOT_FALSE,
    ChangeEvent,
)
from cdc_bridge.sources.base import Source, SourceContext
from cdc_bridge.sources.mysql.binlog import (
    BinlogError,
    BinlogStream,
    Gtid,
    Heartbeat,
    Idle,
    PositionPurgedError,
    Query,
    Rotate,
    Rows,
    RowsQuery,
    ServerIdClashError,
    TableMap,
    UnsupportedBinlogError,
    Xid,
)
from cdc_bridge.sources.mysql.checks import ServerInfo, binlog_status, check_server, connect
from cdc_bridge.sources.mysql.config import MySqlSourceConfig
from cdc_bridge.sources.mysql.offset import GtidTracker, MySqlOffset, merge_mariadb_gtid
from cdc_bridge.sources.mysql.schema import TableState, load_columns, merge_table_map
from cdc_bridge.sources.mysql.snapshot import run_snapshot
from cdc_bridge.types.mysql import TypeOptions

__all__ = ["MySqlSource", "current_position", "merge_gtid"]

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
_TXN_CONTROL = ("SAVEPOINT", "ROLLBACK TO", "RELEASE SAVEPOINT", "XA START", "XA END")
_TXN_END = ("XA COMMIT", "XA ROLLBACK")
FLUSH_INTERVAL_S = 0.005
CHECKPOINT_INTERVAL_S = 1.0


def merge_gtid(state: str | None, gtid: str, mariadb: bool) -> str:
    """The GTID position after the transaction ``gtid`` committed."""
    if mariadb:
        return merge_mariadb_gtid(state or "", gtid)
    gset = GtidSet(state or "")
    gset.merge_gtid(MySqlGtid(gtid))
    return str(gset)


def current_position(connect_args: dict[str, Any], mariadb: bool, gtid_on: bool) -> MySqlOffset:
    """The server's current end of binlog (for ``snapshot = "never"`` on first start)."""
    conn = connect(connect_args, "sources.mysql")
    try:
        cur = conn.cursor()
        row = binlog_status(cur)
        if row is None:
            raise ConfigError("sources.mysql: the server's binary log is off")
        gtids: str | None = None
        if gtid_on:
            if mariadb:
                cur.execute("SELECT @@global.gtid_binlog_pos")
                gtids = str(cur.fetchone()[0] or "")
            else:
                gtids = str(row[4] or "").replace("\n", "") if len(row) > 4 else None
        return MySqlOffset(str(row[0]), int(row[1]), gtids or None)
    finally:
        conn.close()


class MySqlSource(Source):
    """Streams row changes of MySQL 8 / MariaDB 10.6+ to ``<name>.<database>.<table>``."""

    kind = "mysql"

    def __init__(self, config: MySqlSourceConfig) -> None:
        super().__init__(config)
        self.config: MySqlSourceConfig = config
        self.opts = TypeOptions(
            decimal=config.decimal_handling,
            binary=config.binary_handling,
            bigint_unsigned=config.bigint_unsigned_handling,
            zero_dates=config.zero_dates,
        )
        self.info: ServerInfo | None = None
        self.stream: BinlogStream | None = None
        self.emitted: MySqlOffset | None = None
        self.snapshot_progress: dict[str, Any] = {}
        self.reconnects = 0
        self._info_cache: dict[tuple[str, str], Any] = {}
        self._wanted: set[tuple[str, str]] = set()
        # How the binlog connection registers with the server (SHOW SLAVE HOSTS): names the
        # source, so a restarted bridge recognises its own dead connection.
        self.report_host = f"cdc-bridge/{config.name}"

    # -- Source interface ----------------------------------------------------------------

    def check(self) -> None:
        self.server_info()

    def server_info(self) -> ServerInfo:
        """Run the setup checks; returns what they learned about the server."""
        cfg = self.config
        self.info = check_server(
            cfg.connect_args(),
            cfg.tables,
            cfg.server_id,
            f"sources.{cfg.name}",
            cfg.gtid,
            report_host=self.report_host,
        )
        if not self.info.row_metadata_full:
            log.warning(
                "source %s: binlog_row_metadata is not FULL: column names come from "
                "information_schema, so rows logged before an ALTER TABLE that the bridge has "
                "not read yet cannot be labelled; set binlog_row_metadata=FULL",
                cfg.name,
            )
        return self.info

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def run(self, ctx: SourceContext) -> None:
        cfg = self.config
        info = self.server_info()
        self._wanted = set(info.tables)
        args = cfg.connect_args()
        stored = ctx.load_offset()
        offset = MySqlOffset.from_dict(stored) if stored else None
        mode = cfg.snapshot
        if offset is None or offset.snapshot:
            if mode == "never":
                offset = (
                    replace(offset, snapshot=False)
                    if offset
                    else current_position(args, info.mariadb, info.gtid_on)
                )
                ctx.emit([], offset)
            else:
                offset = self._snapshot(ctx, info, offset)
                if offset is None:
                    return
        if mode == "initial_only":
            self._drain(ctx)
            return
        backoff = 1.0
        while not ctx.stopping.is_set():
            progress_mark = self.emitted
            try:
                self._stream(ctx, info, self.emitted or offset)
                if ctx.stopping.is_set():
                    return
                # A blocking stream only ends when told to stop; anything else is a
                # disconnect: resume from what was handed over.
                raise BinlogError(2013, "the binlog stream ended")
            except PositionPurgedError as exc:
                where = self.emitted or offset
                if mode == "when_needed":
                    log.warning(
                        "source %s: binlog position %s:%s is purged (%s); taking a new snapshot",
                        cfg.name,
                        where.file,
                        where.pos,
                        exc.message,
                    )
                    self.emitted = None
                    new = self._snapshot(ctx, info, None)
                    if new is None:
                        return
                    offset = new
                    continue
                gt = f" (GTIDs {where.gtids})" if where.gtids else ""
                raise FatalError(
                    f"source {cfg.name}: the saved binlog position {where.file}:{where.pos}{gt} "
                    "is no longer on the server: its binlogs were purged (binlog_expire_logs_"
                    "seconds / expire_logs_days), so changes since then cannot be read. To "
                    'recover, set snapshot = "when_needed" on this source (it re-snapshots '
                    "the tables and continues), or run `cdc-bridge resnapshot --source "
                    f"{cfg.name} --config <routes.toml>` and start again; keep binlogs longer "
                    "than the bridge can be down."
                ) from None
            except UnsupportedBinlogError as exc:
                raise FatalError(f"source {cfg.name}: {exc.message}") from None
            except ServerIdClashError:
                raise FatalError(
                    f"sources.{cfg.name}.server_id = {cfg.server_id} is used by another replica "
                    "of this server: choose a server_id no other replica uses"
                ) from None
            except (BinlogError, RetriableError, OSError, pymysql.err.MySQLError) as exc:
                self.reconnects += 1
                if self.emitted is not progress_mark:
                    backoff = 1.0  # it streamed for a while: a fresh failure
                log.warning("source %s: binlog stream broke (%s); reconnecting", cfg.name, exc)
                if ctx.stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
            finally:
                self.close()

    # -- snapshot --------------------------------------------------------------------------

    def _snapshot(
        self, ctx: SourceContext, info: ServerInfo, resume: MySqlOffset | None
    ) -> MySqlOffset | None:
        cfg = self.config

        def progress(p: dict[str, Any]) -> None:
            self.snapshot_progress = p

        try:
            offset = run_snapshot(
                ctx,
                cfg.connect_args(),
                info.tables,
                source_name=cfg.name,
                server_id=info.server_id,
                mariadb=info.mariadb,
                gtid_on=info.gtid_on,
                opts=self.opts,
                batch_rows=cfg.snapshot_batch_rows,
                resume=resume,
                progress=progress,
                publish="r" not in cfg.skip_ops,
            )
        except InterruptedError:
            self._drain(ctx)
            return None
        self.emitted = offset
        return offset

    def _drain(self, ctx: SourceContext) -> None:
        deadline = time.monotonic() + 30
        while ctx.producer.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.checkpoint()

    # -- streaming -------------------------------------------------------------------------

    def _table_state(self, tm: TableMap, info: ServerInfo) -> TableState:
        key = (tm.schema, tm.table)
        cached = self._info_cache.get(key)
        if cached is None or (not tm.has_names and len(cached[0]) != len(tm.columns)):
            conn = connect(self.config.connect_args(), f"sources.{self.config.name}")
            try:
                cached = load_columns(conn.cursor(), tm.schema, tm.table)
            finally:
                conn.close()
            self._info_cache[key] = cached
        merged = merge_table_map(tm.columns, tm.has_names, tm.primary_key, cached)
        if merged is None:
            have = len(cached[0]) if cached else 0
            raise FatalError(
                f"source {self.config.name}: cannot name the columns of {tm.schema}.{tm.table}: "
                f"the binlog row has {len(tm.columns)} columns, information_schema now {have}, "
                "and the server does not log column names: set binlog_row_metadata=FULL "
                "(MySQL 8.0.14+, MariaDB 10.5+) in the [mysqld] section of my.cnf"
            )
        cols, pk = merged
        return TableState(self.config.name, tm.schema, tm.table, cols, pk, self.opts)

    def _want(self, schema: str, table: str) -> bool:
        if self.config.tables is None:
            return schema not in SYSTEM_SCHEMAS
        return (schema, table) in self._wanted

    def _schema_change(self, ctx: SourceContext, q: Query, gtid: str | None, file: str) -> Any:
        source = {
            "version": CONNECTOR_VERSION,
            "connector": CONNECTOR_MYSQL,
            "name": self.config.name,
            "ts_ms": q.ts * 1000,
            "snapshot": SNAPSHOT_FALSE,
            "db": q.db,
            "sequence": None,
            "ts_us": q.ts * 1_000_000,
            "ts_ns": q.ts * 1_000_000_000,
            "table": None,
            "server_id": q.server_id,
            "gtid": gtid,
            "file": file,
            "pos": q.pos,
            "row": 0,
            "thread": q.thread_id,
            "query": None,
        }
        key = {"databaseName": q.db}
        value = {
            "source": source,
            "ts_ms": int(time.time() * 1000),
            "databaseName": q.db,
            "schemaName": None,
            "ddl": q.query,
            "tableChanges": [],
        }
        if ctx.encoder.schemas:
            key_schema = {
                "type": "struct",
                "fields": [{"type": "string", "optional": False, "field": "databaseName"}],
                "optional": False,
                "name": "io.debezium.connector.mysql.SchemaChangeKey",
                "version": 1,
            }
            value_schema = {
                "type": "struct",
                "fields": [
                    source_schema(CONNECTOR_MYSQL),
                    {"type": "int64", "optional": False, "field": "ts_ms"},
                    {"type": "string", "optional": True, "field": "databaseName"},
                    {"type": "string", "optional": True, "field": "schemaName"},
                    {"type": "string", "optional": True, "field": "ddl"},
                    {
                        "type": "array",
                        "items": {"type": "string", "optional": False},
                        "optional": False,
                        "field": "tableChanges",
                    },
                ],
                "optional": False,
                "name": "io.debezium.connector.mysql.SchemaChangeValue",
                "version": 1,
            }
            return (
                self.config.name,
                orjson.dumps({"schema": key_schema, "payload": key}),
                orjson.dumps({"schema": value_schema, "payload": value}),
            )
        return (self.config.name, orjson.dumps(key), orjson.dumps(value))

    def _captured_db(self, db: str, query: str) -> bool:
        if self.config.tables is None:
            return db not in SYSTEM_SCHEMAS
        dbs = {d for d, _ in self._wanted}
        return db in dbs or any(f"{d}." in query or f"`{d}`." in query for d in dbs)

    def _stream(self, ctx: SourceContext, info: ServerInfo, start: MySqlOffset) -> None:
        cfg = self.config
        use_gtid = info.gtid_on and bool(start.gtids)
        stream = BinlogStream(
            cfg.connect_args(),
            cfg.server_id,
            file=start.file,
            pos=start.pos,
            gtid=start.gtids if use_gtid else None,
            mariadb=info.mariadb,
            heartbeat_s=cfg.heartbeat_s,
            want_table=self._want,
            zero_dates=cfg.zero_dates,
            annotate=cfg.include_query,
            report_host=self.report_host,
        )
        self.stream = stream
        stream.connect()
        log.info(
            "source %s: streaming from %s",
            cfg.name,
            f"GTID {start.gtids}" if use_gtid else f"{start.file}:{start.pos}",
        )
        mariadb = info.mariadb
        include_query = cfg.include_query
        max_batch = cfg.max_batch_rows
        stopping = ctx.stopping
        skip_ops = frozenset(cfg.skip_ops)

        gtids = GtidTracker(start.gtids, mariadb)
        file = start.file
        skip_events, skip_rows = start.events, start.row
        txn_pos = start.pos
        txn_gtid: str | None = None
        in_txn = False
        begun = False
        ev_idx = 0
        thread: int | None = None
        query: str | None = None
        batch: list[ChangeEvent] = []
        extra: list[Any] = []
        # The offset safe after ``batch``: (file, pos) of a transaction end (GTIDs added when
        # the offset is built, to keep commits cheap) or a ready MySqlOffset (mid-transaction).
        pending: tuple[str, int] | MySqlOffset | None = None
        last_flush = time.monotonic()
        last_ckpt = last_flush

        def flush() -> None:
            nonlocal batch, extra, pending, last_flush, last_ckpt
            if pending is None and not batch:
                return
            offset = (
                MySqlOffset(pending[0], pending[1], gtids.state())
                if isinstance(pending, tuple)
                else pending
            )
            if extra:
                ctx.emit(batch, None)
                ctx.emit_records(extra, offset)
            else:
                ctx.emit(batch, offset)
            if offset is not None:
                self.emitted = offset
            batch, extra, pending = [], [], None
            last_flush = time.monotonic()
            if last_flush - last_ckpt >= CHECKPOINT_INTERVAL_S:
                checkpoint(last_flush)

        def checkpoint(now: float) -> None:
            nonlocal last_ckpt
            with contextlib.suppress(RetriableError):
                ctx.checkpoint()
            last_ckpt = now

        def commit(end_pos: int) -> None:
            nonlocal in_txn, begun, txn_gtid, skip_events, skip_rows, pending, txn_pos
            if txn_gtid:
                gtids.add(txn_gtid)
            pending = (file, end_pos)
            in_txn = begun = False
            txn_gtid = None
            txn_pos = end_pos
            skip_events = skip_rows = 0
            if len(batch) >= max_batch or time.monotonic() - last_flush >= FLUSH_INTERVAL_S:
                flush()

        for ev in stream.events():
            t = type(ev)
            if t is Rows:
                assert isinstance(ev, Rows)
                if skip_events:  # resuming: already delivered before the restart
                    skip_events -= 1
                    ev_idx += 1
                    continue
                if ev.op in skip_ops:
                    skip_rows = 0
                    ev_idx += 1
                    continue
                state: TableState = ev.table.user
                schema = state.schema
                make = state.row
                base = {
                    "table": ev.table.table,
                    "server_id": ev.server_id,
                    "gtid": txn_gtid,
                    "file": file,
                    "pos": txn_pos,
                    "row": 0,
                    "thread": thread,
                    "query": query,
                }
                ts_us = ev.ts * 1_000_000
                rows = ev.rows
                op = ev.op
                if op == OP_UPDATE:
                    for k in range(skip_rows, len(rows) // 2):
                        src = base.copy()
                        src["row"] = k
                        batch.append(
                            ChangeEvent(
                                schema,
                                OP_UPDATE,
                                make(rows[2 * k]),
                                make(rows[2 * k + 1]),
                                ts_us,
                                src,
                            )
                        )
                elif op == OP_CREATE:
                    for k in range(skip_rows, len(rows)):
                        src = base.copy()
                        src["row"] = k
                        batch.append(
                            ChangeEvent(schema, OP_CREATE, None, make(rows[k]), ts_us, src)
                        )
                else:
                    for k in range(skip_rows, len(rows)):
                        src = base.copy()
                        src["row"] = k
                        batch.append(
                            ChangeEvent(schema, OP_DELETE, make(rows[k]), None, ts_us, src)
                        )
                skip_rows = 0
                ev_idx += 1
                if len(batch) >= max_batch:
                    # Mid-transaction: safe to resume at this transaction, minus what is sent.
                    # (This offset also covers the whole transactions before it in the batch.)
                    pending = MySqlOffset(file, txn_pos, gtids.state(), events=ev_idx)
                    flush()
            elif t is TableMap:
                assert isinstance(ev, TableMap)
                ev.user = self._table_state(ev, info)
            elif t is Gtid:
                assert isinstance(ev, Gtid)
                txn_pos = ev.pos
                txn_gtid = ev.gtid or None
                in_txn = True
                # MariaDB's GTID event replaces BEGIN unless the group is one statement (DDL);
                # MySQL's is followed by a BEGIN query for transactions.
                begun = mariadb and not ev.standalone
                ev_idx = 0
                thread = None
                query = None
            elif t is Xid:
                assert isinstance(ev, Xid)
                commit(ev.end_pos)
                if stopping.is_set():
                    break
            elif t is Query:
                assert isinstance(ev, Query)
                q = ev.query.strip()
                head = q[:20].upper()
                if head == "BEGIN":
                    if not in_txn:
                        txn_pos = ev.pos
                        txn_gtid = None
                        in_txn = True
                        ev_idx = 0
                        query = None
                    begun = True
                    thread = ev.thread_id
                elif head in ("COMMIT", "ROLLBACK") or head.startswith(_TXN_END):
                    commit(ev.end_pos)
                elif head.startswith(_TXN_CONTROL):
                    continue
                elif begun:
                    # A statement logged inside an open transaction (not DDL: DDL commits
                    # implicitly and is logged on its own): the transaction goes on.
                    continue
                else:
                    self._info_cache.clear()
                    if self._captured_db(ev.db, q):
                        if batch:
                            extra_flush = batch
                            batch = []
                            ctx.emit(extra_flush, None)
                        extra.append(self._schema_change(ctx, ev, txn_gtid, file))
                    commit(ev.end_pos)
                    flush()
            elif t is RowsQuery:
                if include_query:
                    assert isinstance(ev, RowsQuery)
                    query = ev.query
            elif t is Rotate:
                assert isinstance(ev, Rotate)
                file = ev.file
                if not in_txn and not ev.fake:
                    # Between transactions: the next one starts in the new file.
                    txn_pos = ev.pos
                    pending = (file, ev.pos)
            elif t is Idle or t is Heartbeat:
                if batch or pending is not None:
                    flush()
                now = time.monotonic()
                if now - last_ckpt >= CHECKPOINT_INTERVAL_S:
                    checkpoint(now)
                if stopping.is_set():
                    break
        # Stopped (or end of a non-blocking stream): hand over the whole transactions read.
        flush()
        self._drain(ctx)

    def __repr__(self) -> str:
        return f"MySqlSource(name={self.name!r})"
