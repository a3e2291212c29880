"""The MySQL / MariaDB capture adapter: snapshot, then the row binlog as Debezium events.

Streaming groups events by transaction (GTID / BEGIN ... XID / COMMIT) and hands them to
Kafka in batches, each with the ``MySqlOffset`` that is safe once the batch is confirmed: the
end of the last whole transaction, or -- for a transaction larger than ``stream_batch_size`` --
its start plus the number of row events already delivered. After any error the stream
reconnects from the last offset it handed over, so nothing is skipped and nothing is emitted
twice by one process; only a crash replays (what Kafka confirmed after the last checkpoint).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pymysql

from cdc_bridge.errors import ConfigError, FatalError, RetriableError
from cdc_bridge.events import (
    OP_CREATE,
    OP_DELETE,
    OP_READ,
    OP_UPDATE,
    SNAPSHOT_FALSE,
    ChangeEvent,
)
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.coordinator import CaptureAdapter, PositionLost
from cdc_bridge.sources.incremental import (
    SNAPSHOT_INCREMENTAL,
    Chunk,
    IncrementalSnapshotError,
    IncrementalSnapshotter,
)
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
from cdc_bridge.sources.mysql.offset import GtidTracker, MySqlOffset
from cdc_bridge.sources.mysql.schema import TableState, load_columns, merge_table_map
from cdc_bridge.sources.mysql.schema_change import (
    ddl_events,
    schema_change_record,
    snapshot_preamble,
    source_block,
)
from cdc_bridge.sources.mysql.snapshot import MySqlSnapshotReader, canonical_converter
from cdc_bridge.types.mysql import TypeOptions

__all__ = ["MySqlSource", "current_position"]

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
_TXN_CONTROL = ("SAVEPOINT", "ROLLBACK TO", "RELEASE SAVEPOINT", "XA START", "XA END")
_TXN_END = ("XA COMMIT", "XA ROLLBACK")
FLUSH_INTERVAL_S = 0.005


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


class MySqlSource(CaptureAdapter):
    """Streams row changes of MySQL 8 / MariaDB 10.6+ to ``<name>.<database>.<table>``."""

    kind = "mysql"
    offset_type = MySqlOffset

    def __init__(self, config: MySqlSourceConfig) -> None:
        super().__init__(config)
        self.config: MySqlSourceConfig = config
        self.opts = TypeOptions(
            decimal=config.decimal_handling,
            binary=config.binary_handling,
            bigint_unsigned=config.bigint_unsigned_handling,
            zero_dates=config.zero_dates,
            mariadb_json=config.mariadb_json,
            replace_null_with_default=config.replace_null_with_default,
        )
        self.info: ServerInfo | None = None
        self.binlog: BinlogStream | None = None
        self.emitted: MySqlOffset | None = None
        self.reconnects = 0
        self.domain_skipped_events = 0  # row events of skip_gtid_domains (two-way sync echoes)
        self._info_cache: dict[tuple[str, str], Any] = {}
        self._wanted: set[tuple[str, str]] = set()
        # How the binlog connection registers with the server (SHOW SLAVE HOSTS): names the
        # source, so a restarted bridge recognises its own dead connection.
        self.report_host = f"cdc-bridge/{config.name}"
        self.incremental: IncrementalSnapshotter | None = None
        self._chunks: _MyChunks | None = None
        sig = config.signal_table.split(".") if config.signal_table else None
        self._signal: tuple[str, str] | None = (sig[0], sig[1]) if sig else None

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
        if self.binlog is not None:
            self.binlog.close()
            self.binlog = None
        if self._chunks is not None:
            self._chunks.close()
            self._chunks = None

    # -- adapter pieces (run by sources/coordinator.py) ---------------------------------------

    def prepare(self, ctx: SourceContext | None) -> None:
        self._wanted = set(self.server_info().tables)

    def _info(self) -> ServerInfo:
        return self.info or self.server_info()

    def position_now(self, ctx: SourceContext) -> MySqlOffset:
        info = self._info()
        return current_position(self.config.connect_args(), info.mariadb, info.gtid_on)

    def open_snapshot(self, ctx: SourceContext, resume: MySqlOffset | None) -> MySqlSnapshotReader:
        cfg, info = self.config, self._info()
        self.emitted = None
        reader = MySqlSnapshotReader(
            cfg.connect_args(),
            [t for t in info.tables if t != self._signal],
            source_name=cfg.name,
            server_id=info.server_id,
            mariadb=info.mariadb,
            gtid_on=info.gtid_on,
            opts=self.opts,
            batch_rows=cfg.snapshot_batch_size,
            resume=resume,
        )
        if (resume is None or resume.snapshot is None) and "r" not in cfg.skip_ops:
            # A new snapshot starts with the schema-change records Debezium writes before
            # the rows (a resumed one wrote them already).
            try:
                hand_off = reader.hand_off
                ctx.emit_records(
                    snapshot_preamble(
                        reader.cur,
                        cfg.name,
                        list(info.tables),
                        hand_off.file,
                        hand_off.pos,
                        ctx.encoder.schemas,
                    )
                )
            except BaseException:
                reader.close()
                raise
        return reader

    def restart_position(self, ctx: SourceContext, last: MySqlOffset) -> MySqlOffset:
        """After a broken stream: the last offset handed over (nothing is emitted twice)."""
        self.reconnects += 1
        return self.emitted or last

    def stream(self, ctx: SourceContext, start: MySqlOffset) -> None:
        cfg = self.config
        try:
            start = replace(start, incremental=self.incremental_state(ctx, start.incremental))
            _BinlogStreamer(self, ctx, self._info(), start).run()
            if not ctx.stopping.is_set():
                # A blocking stream only ends when told to stop; anything else (a server's
                # clean shutdown) is a disconnect: resume from what was handed over.
                raise BinlogError(2013, "the binlog stream ended")
        except PositionPurgedError as exc:
            where = self.emitted or start
            gt = f" (GTIDs {where.gtids})" if where.gtids else ""
            raise PositionLost(
                f"binlog position {where.file}:{where.pos}{gt} is no longer on the server: its "
                f"binlogs were purged ({exc.message})",
                hint="Keep binlogs (binlog_expire_logs_seconds / expire_logs_days) longer than "
                "the bridge can be down.",
            ) from None
        except UnsupportedBinlogError as exc:
            raise FatalError(f"source {cfg.name}: {exc.message}") from None
        except ServerIdClashError:
            raise FatalError(
                f"sources.{cfg.name}.server_id = {cfg.server_id} is used by another replica "
                "of this server: choose a server_id no other replica uses"
            ) from None
        except (BinlogError, OSError, pymysql.err.MySQLError) as exc:
            raise RetriableError(f"binlog stream broke ({exc})") from exc
        finally:
            self.close()

    # -- incremental snapshots (sources/incremental.py) ---------------------------------------

    def captured_tables(self) -> list[str]:
        return [f"{db}.{tb}" for db, tb in self._info().tables if (db, tb) != self._signal]

    def incremental_hooks(self) -> _MyChunks:
        self._chunks = _MyChunks(self)
        return self._chunks

    def insert_signal(self, signal_id: str, kind: str, data: str) -> None:
        assert self._signal is not None
        db, tb = self._signal
        conn = connect(self.config.connect_args(), f"sources.{self.name}")
        try:
            conn.cursor().execute(
                f"INSERT INTO `{db}`.`{tb}` (id, type, data) VALUES (%s, %s, %s)",
                (signal_id, kind, data),
            )
        finally:
            conn.close()

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
        if (schema, table) == self._signal:
            return True
        if self.config.tables is None:
            return schema not in SYSTEM_SCHEMAS
        return (schema, table) in self._wanted

    def _schema_changes(
        self, ctx: SourceContext, q: Query, gtid: str | None, file: str
    ) -> list[Any]:
        """Debezium's schema-change records of one DDL statement (one per table it touches,
        with ``tableChanges`` read from the server as it is after the statement)."""
        conn = connect(self.config.connect_args(), f"sources.{self.config.name}")
        try:
            events = ddl_events(conn.cursor(), q.query, q.db)
        finally:
            conn.close()
        out = []
        for db, table, ddl, changes in events:
            source = source_block(
                self.config.name,
                ts_ms=q.ts * 1000,
                snapshot=SNAPSHOT_FALSE,
                db=db,
                table=table,
                server_id=q.server_id,
                gtid=gtid,
                file=file,
                pos=q.pos,
                thread=q.thread_id,
            )
            out.append(
                schema_change_record(
                    self.config.name, source, db, ddl, changes, ctx.encoder.schemas
                )
            )
        return out

    def _captured_db(self, db: str, query: str) -> bool:
        if self.config.tables is None:
            return db not in SYSTEM_SCHEMAS
        dbs = {d for d, _ in self._wanted}
        return db in dbs or any(f"{d}." in query or f"`{d}`." in query for d in dbs)

    def drain(self, ctx: SourceContext) -> None:
        deadline = time.monotonic() + 30
        while ctx.producer.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.checkpoint()

    def __repr__(self) -> str:
        return f"MySqlSource(name={self.name!r})"


class _MyChunks:
    """The incremental snapshot's MySQL pieces: chunks read on a plain autocommit connection,
    converted as the snapshot reader converts rows; watermarks inserted into the signal table."""

    def __init__(self, source: MySqlSource) -> None:
        self.src = source
        self.conn: Any = None

    def _cur(self) -> Any:
        if self.conn is None:
            self.conn = connect(self.src.config.connect_args(), f"sources.{self.src.name}")
            self.conn.cursor().execute("SET SESSION time_zone = '+00:00'")
        return self.conn.cursor()

    def estimate(self, table: str) -> int:
        db, _, tb = table.partition(".")
        cur = self._cur()
        cur.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (db, tb),
        )
        r = cur.fetchone()
        return int(r[0] or 0) if r else 0

    def read_chunk(self, table: str, after: Any, limit: int, where: str | None) -> Chunk:
        src = self.src
        db, _, tb = table.partition(".")
        cur = self._cur()
        loaded = load_columns(cur, db, tb) if table in src.captured_tables() else None
        if loaded is None or not loaded[1]:
            raise IncrementalSnapshotError(
                f"{table} is not a captured table"
                if loaded is None
                else f"{table} has no primary key"
            )
        cols, key = loaded
        state = TableState(src.name, db, tb, cols, key, src.opts, snapshot=True)
        convs = []
        for i, x in enumerate(cols):
            cv = canonical_converter(x, src.opts.zero_dates)
            if cv is not None:
                convs.append((i, cv))
        collist = ", ".join(f"`{c.name}`" for c in cols)
        order = ", ".join(f"`{k}`" for k in key)
        conds: list[str] = [f"({where})"] if where else []
        params: list[Any] = []
        if isinstance(after, list) and len(after) == len(key):
            conds.append(f"({order}) > ({', '.join(['%s'] * len(key))})")
            params.extend(after)
        query = f"SELECT {collist} FROM `{db}`.`{tb}`"
        if conds:
            query += " WHERE " + " AND ".join(conds)
        query += f" ORDER BY {order} LIMIT %s"
        try:
            cur.execute(query, (*params, limit))
            rows = cur.fetchall()
        except pymysql.err.OperationalError:
            raise
        except pymysql.err.MySQLError as exc:
            raise IncrementalSnapshotError(
                f"reading {table} failed: {exc}" + (f" (condition: {where})" if where else "")
            ) from exc
        key_idx = [state.names.index(k) for k in key]
        ts_us = time.time_ns() // 1000
        binlog = src.emitted
        src_tmpl = {
            "table": tb,
            "server_id": 0,
            "gtid": None,
            "file": binlog.file if binlog else "",
            "pos": binlog.pos if binlog else 0,
            "row": 0,
            "thread": None,
            "query": None,
        }
        events, keys = [], []
        for raw in rows:
            values = list(raw)
            for i, conv in convs:
                if values[i] is not None:
                    values[i] = conv(values[i])
            after_row = state.row(values)
            keys.append(tuple(after_row[k] for k in key))
            events.append(
                ChangeEvent(
                    state.schema,
                    OP_READ,
                    None,
                    after_row,
                    ts_us,
                    dict(src_tmpl),
                    SNAPSHOT_INCREMENTAL,
                )
            )
        last = [rows[-1][i] for i in key_idx] if rows else None
        if last is not None and not all(isinstance(v, int | str) for v in last):
            last = [str(v) for v in last]
        return Chunk(events, keys, last)

    def write_watermark(self, signal_id: str, kind: str, forget: Sequence[str]) -> None:
        assert self.src._signal is not None
        db, tb = self.src._signal
        cur = self._cur()
        try:
            cur.execute("START TRANSACTION")
            if forget:
                marks = ", ".join(["%s"] * len(forget))
                cur.execute(f"DELETE FROM `{db}`.`{tb}` WHERE id IN ({marks})", tuple(forget))
            cur.execute(
                f"INSERT INTO `{db}`.`{tb}` (id, type, data) VALUES (%s, %s, NULL)",
                (signal_id, kind),
            )
            cur.execute("COMMIT")
        except pymysql.err.OperationalError:
            raise
        except pymysql.err.MySQLError as exc:
            cur.execute("ROLLBACK")
            raise IncrementalSnapshotError(
                f"cannot write a watermark into signal table {db}.{tb}: {exc} (grant the "
                "bridge's user SELECT, INSERT, DELETE on it)"
            ) from exc

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


class _BinlogStreamer:
    """The hot loop of one binlog connection: events -> transactions -> batches with offsets.

    ``pending`` is the offset safe after ``batch``: (file, pos) of a transaction end (GTIDs are
    added when the offset is built, to keep commits cheap) or a ready ``MySqlOffset``
    (mid-transaction: its start plus the row events already in the batch).
    """

    def __init__(
        self, source: MySqlSource, ctx: SourceContext, info: ServerInfo, start: MySqlOffset
    ) -> None:
        cfg = source.config
        self.src = source
        self.ctx = ctx
        self.info = info
        self.start = start
        self.mariadb = info.mariadb
        self.include_query = cfg.include_query
        self.max_batch = cfg.stream_batch_size
        self.skip_domains = frozenset(cfg.skip_gtid_domains)
        self.skip_txn = False  # this transaction's GTID domain is skipped (a sink's echo)
        self.skip_ops = frozenset(cfg.skip_ops)
        self.gtids = GtidTracker(start.gtids, info.mariadb)
        self.file = start.file
        self.skip_events, self.skip_rows = start.events, start.row
        self.txn_pos = start.pos
        self.txn_gtid: str | None = None
        self.in_txn = False
        self.begun = False
        self.ev_idx = 0
        self.thread: int | None = None
        self.query: str | None = None
        self.batch: list[ChangeEvent] = []
        self.extra: list[Any] = []
        self.pending: tuple[str, int] | MySqlOffset | None = None
        self.last_flush = time.monotonic()
        # Incremental snapshots: the tables whose row events the snapshotter must see (the
        # signal table, the table whose chunk is open); one set lookup per row event.
        self.incr = source.incremental
        self.inc_state = start.incremental
        self.watched: frozenset[tuple[str, str]] = frozenset()
        if self.incr is not None:
            self._rewatch()

    # -- incremental snapshots ------------------------------------------------------------------

    def start_incremental(self) -> None:
        """After connecting: store the state, continue a pending snapshot, queue new tables."""
        if self.inc_state is not None:
            self.ctx.emit([], self.start)
        if self.incr is not None:
            self.incr.resume(self.src.captured_tables())
            self._rewatch()

    def _rewatch(self) -> None:
        incr = self.incr
        assert incr is not None and self.src._signal is not None
        self.inc_state = incr.state
        watched = {self.src._signal}
        table = incr.watching()
        if table is not None:
            db, _, tb = table.partition(".")
            watched.add((db, tb))
        self.watched = frozenset(watched)

    def _watched(self, ev: Rows, state: TableState) -> bool:
        """Row events of the signal table (consumed: True) or of the table being read."""
        incr = self.incr
        assert incr is not None
        rows = ev.rows
        if (ev.table.schema, ev.table.table) == self.src._signal:
            if ev.op == OP_CREATE:
                for k in range(self.skip_rows, len(rows)):
                    row = state.row(list(rows[k]))
                    data = row.get("data")
                    self.batch.extend(
                        incr.on_signal(
                            str(row.get("id")),
                            str(row.get("type")),
                            data if isinstance(data, str) else None,
                        )
                    )
                self._rewatch()
            return True
        key = state.schema.key_columns
        for raw in rows:
            row = state.row(list(raw))
            incr.on_change(tuple(row[k] for k in key))
        return False

    def connect(self) -> BinlogStream:
        cfg, start, info, src = self.src.config, self.start, self.info, self.src
        use_gtid = info.gtid_on and bool(start.gtids)
        stream = BinlogStream(
            cfg.connect_args(),
            cfg.server_id,
            file=start.file,
            pos=start.pos,
            gtid=start.gtids if use_gtid else None,
            mariadb=info.mariadb,
            heartbeat_s=cfg.heartbeat_interval_ms / 1000,
            want_table=src._want,
            zero_dates=cfg.zero_dates,
            annotate=cfg.include_query,
            report_host=src.report_host,
        )
        src.binlog = stream
        stream.connect()
        self.ctx.stream_established()
        log.info(
            "source %s: streaming from %s",
            cfg.name,
            f"GTID {start.gtids}" if use_gtid else f"{start.file}:{start.pos}",
        )
        return stream

    # -- batches ---------------------------------------------------------------------------

    def flush(self) -> None:
        pending, batch = self.pending, self.batch
        if pending is None and not batch:
            return
        ctx = self.ctx
        offset = (
            MySqlOffset(pending[0], pending[1], self.gtids.state(), incremental=self.inc_state)
            if isinstance(pending, tuple)
            else pending
        )
        if self.extra:
            ctx.emit(batch, None)
            ctx.emit_records(self.extra, offset)
        else:
            ctx.emit(batch, offset)
        if offset is not None:
            self.src.emitted = offset
        self.batch, self.extra, self.pending = [], [], None
        self.last_flush = time.monotonic()
        ctx.maybe_checkpoint()

    def commit(self, end_pos: int) -> None:
        if self.txn_gtid:
            self.gtids.add(self.txn_gtid)
        self.pending = (self.file, end_pos)
        self.in_txn = self.begun = False
        self.skip_txn = False
        self.txn_gtid = None
        self.txn_pos = end_pos
        self.skip_events = self.skip_rows = 0
        if (
            len(self.batch) >= self.max_batch
            or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S
        ):
            self.flush()

    # -- events ----------------------------------------------------------------------------

    def rows(self, ev: Rows) -> None:
        if self.skip_events:  # resuming: already delivered before the restart
            self.skip_events -= 1
            self.ev_idx += 1
            return
        state: TableState = ev.table.user
        # Watched rows first: a skipped (echoed) change is still a newer version of its row,
        # which an open incremental-snapshot chunk must drop.
        if (
            self.watched
            and (ev.table.schema, ev.table.table) in self.watched
            and self._watched(ev, state)
        ) or (ev.op in self.skip_ops or self.skip_txn):
            if self.skip_txn:
                self.src.domain_skipped_events += 1
            self.skip_rows = 0
            self.ev_idx += 1
            return
        schema = state.schema
        make = state.row
        base = {
            "table": ev.table.table,
            "server_id": ev.server_id,
            "gtid": self.txn_gtid,
            "file": self.file,
            "pos": ev.pos,  # the row event's own position, as Debezium
            "row": 0,
            "thread": self.thread,
            "query": self.query,
        }
        ts_us = ev.ts * 1_000_000
        rows = ev.rows
        op = ev.op
        batch = self.batch
        append = batch.append
        if op == OP_UPDATE:
            for k in range(self.skip_rows, len(rows) // 2):
                src = base.copy()
                src["row"] = k
                append(
                    ChangeEvent(
                        schema, OP_UPDATE, make(rows[2 * k]), make(rows[2 * k + 1]), ts_us, src
                    )
                )
        elif op == OP_CREATE:
            for k in range(self.skip_rows, len(rows)):
                src = base.copy()
                src["row"] = k
                append(ChangeEvent(schema, OP_CREATE, None, make(rows[k]), ts_us, src))
        else:
            for k in range(self.skip_rows, len(rows)):
                src = base.copy()
                src["row"] = k
                append(ChangeEvent(schema, OP_DELETE, make(rows[k]), None, ts_us, src))
        self.skip_rows = 0
        self.ev_idx += 1
        if len(batch) >= self.max_batch:
            # Mid-transaction: safe to resume at this transaction, minus what is sent.
            # (This offset also covers the whole transactions before it in the batch.)
            self.pending = MySqlOffset(
                self.file,
                self.txn_pos,
                self.gtids.state(),
                events=self.ev_idx,
                incremental=self.inc_state,
            )
            self.flush()

    def gtid(self, ev: Gtid) -> None:
        self.skip_txn = bool(self.skip_domains) and ev.domain in self.skip_domains
        self.txn_pos = ev.pos
        self.txn_gtid = ev.gtid or None
        self.in_txn = True
        # MariaDB's GTID event replaces BEGIN unless the group is one statement (DDL);
        # MySQL's is followed by a BEGIN query for transactions.
        self.begun = self.mariadb and not ev.standalone
        self.ev_idx = 0
        self.thread = None
        self.query = None

    def statement(self, ev: Query) -> None:
        q = ev.query.strip()
        head = q[:20].upper()
        if head == "BEGIN":
            if not self.in_txn:
                self.txn_pos = ev.pos
                self.txn_gtid = None
                self.in_txn = True
                self.ev_idx = 0
                self.query = None
            self.begun = True
            self.thread = ev.thread_id
        elif head in ("COMMIT", "ROLLBACK") or head.startswith(_TXN_END):
            self.commit(ev.end_pos)
        elif head.startswith(_TXN_CONTROL) or self.begun:
            # Savepoints, or a statement logged inside an open transaction (not DDL: DDL
            # commits implicitly and is logged on its own): the transaction goes on.
            return
        else:
            src = self.src
            src._info_cache.clear()
            if src._captured_db(ev.db, q):
                if self.batch:
                    self.ctx.emit(self.batch, None)
                    self.batch = []
                self.extra.extend(src._schema_changes(self.ctx, ev, self.txn_gtid, self.file))
            self.commit(ev.end_pos)
            self.flush()

    def rotate(self, ev: Rotate) -> None:
        self.file = ev.file
        if not self.in_txn and not ev.fake:
            # Between transactions: the next one starts in the new file.
            self.txn_pos = ev.pos
            self.pending = (self.file, ev.pos)

    # -- loop --------------------------------------------------------------------------------

    def run(self) -> None:
        stream = self.connect()
        self.start_incremental()
        stopping = self.ctx.stopping
        table_state = self.src._table_state
        info = self.info
        # bound once: one lookup per event less on the hot path
        rows, gtid, commit = self.rows, self.gtid, self.commit
        for ev in stream.events():
            t = type(ev)
            if t is Rows:
                rows(ev)  # type: ignore[arg-type]
            elif t is TableMap:
                ev.user = table_state(ev, info)  # type: ignore[union-attr,arg-type]
            elif t is Gtid:
                gtid(ev)  # type: ignore[arg-type]
            elif t is Xid:
                commit(ev.end_pos)  # type: ignore[union-attr]
                if stopping.is_set():
                    break
            elif t is Query:
                self.statement(ev)  # type: ignore[arg-type]
            elif t is RowsQuery:
                if self.include_query:
                    self.query = ev.query  # type: ignore[union-attr]
            elif t is Rotate:
                self.rotate(ev)  # type: ignore[arg-type]
            elif t is Idle or t is Heartbeat:
                if self.batch or self.pending is not None:
                    self.flush()
                self.ctx.maybe_checkpoint()
                if stopping.is_set():
                    break
        # Stopped (or end of a non-blocking stream): hand over the whole transactions read.
        self.flush()
        self.src.drain(self.ctx)
