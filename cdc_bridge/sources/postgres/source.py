"""The ``postgres`` source: consistent snapshot, then the pgoutput stream as ChangeEvents,
acknowledging to the slot only what Kafka confirmed."""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from cdc_bridge.errors import ConfigError, ConfigProblem, FatalError, RetriableError
from cdc_bridge.events import (
    OP_CREATE,
    OP_DELETE,
    OP_READ,
    OP_TRUNCATE,
    OP_UPDATE,
    SNAPSHOT_FALSE,
    ChangeEvent,
)
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.coordinator import CaptureAdapter, PositionLost, SnapshotCursor
from cdc_bridge.sources.incremental import (
    SNAPSHOT_INCREMENTAL,
    Chunk,
    IncrementalSnapshotError,
    IncrementalSnapshotter,
    IncrementalState,
)
from cdc_bridge.sources.postgres import pgoutput as po
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.sources.postgres.lsn import LSN
from cdc_bridge.sources.postgres.replication import (
    Keepalive,
    ReplicationConnection,
    ReplicationStreamEnded,
    XLogData,
)
from cdc_bridge.sources.postgres.slot import (
    TableInfo,
    check_prerequisites,
    drop_problems,
    drop_publication,
    drop_slot,
    ensure_publication,
    resolve_tables,
    slot_lag,
    slot_state,
)
from cdc_bridge.sources.postgres.snapshot import PgSnapshotReader, chunk_query
from cdc_bridge.sources.postgres.tables import ColumnDef, TableCodec, TypeCatalog, catalog_columns
from cdc_bridge.types.postgres import SESSION_OPTIONS, TypeOptions

__all__ = ["PostgresOffset", "PostgresSource"]

log = logging.getLogger(__name__)

_SLOT_RELEASE_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class PostgresOffset:
    """Position of a Postgres source: the WAL position safe to confirm to the slot, and the
    cursor of an unfinished snapshot (None once it was handed off to streaming)."""

    lsn: int
    snapshot: SnapshotCursor | None = None
    #: the incremental snapshot's cursor and the tables captured so far (None: unknown)
    incremental: IncrementalState | None = None

    @property
    def snapshot_done(self) -> bool:
        return self.snapshot is None

    def with_snapshot(self, cursor: SnapshotCursor | None) -> PostgresOffset:
        return PostgresOffset(self.lsn, cursor, self.incremental)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lsn": str(LSN(self.lsn))}
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot.to_dict()
        if self.incremental is not None:
            out["incremental"] = self.incremental.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PostgresOffset:
        """Reads this shape and the one stored before the coordinator (``snapshot_done``)."""
        raw = d.get("snapshot")
        if "snapshot_done" in d:  # before the coordinator: a bool plus an optional progress
            if d["snapshot_done"]:
                raw = None
            elif raw is None:
                raw = {}
        cursor = SnapshotCursor.from_dict(raw) if raw is not None else None
        inc = d.get("incremental")
        return cls(LSN.parse(d["lsn"]), cursor, IncrementalState.from_dict(inc) if inc else None)


class PostgresSource(CaptureAdapter):
    """Captures committed changes of the configured tables (see docs: Postgres source)."""

    kind = "postgres"
    offset_type = PostgresOffset

    def __init__(self, config: PostgresSourceConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.conninfo = config.dsn.get_secret_value()
        self.options = TypeOptions(
            decimal_handling=config.decimal_handling,
            binary_handling=config.binary_handling,
            toast_placeholder=config.toast_placeholder,
            include_unknown_types=config.include_unknown_types,
            replace_null_with_default=config.replace_null_with_default,
        )
        self.skip = frozenset(config.skip_ops)
        self.meta: psycopg.Connection | None = None
        self.repl: ReplicationConnection | None = None
        self.database = ""
        self.catalog = TypeCatalog(None)
        self._codecs: dict[tuple[Any, ...], TableCodec] = {}
        self.relations: dict[int, TableCodec] = {}
        self.relation_msgs: dict[int, po.Relation] = {}
        # A slot created by this process that no stream has read yet: Debezium's ``sequence``
        # then starts with null (no commit seen), after a restart with the resume position.
        self._new_slot = False
        self.max_in_flight = config.max_in_flight_events
        self.incremental: IncrementalSnapshotter | None = None
        self.stats: dict[str, Any] = {
            "slot_lag_bytes": None,
            "events": 0,
            "transactions": 0,
            "streamed_transactions": 0,
            "origin_skipped_transactions": 0,
            "origin_skipped_changes": 0,
        }

    # -- connections -----------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.Connection.connect(
                self.conninfo,
                autocommit=True,
                options=SESSION_OPTIONS,
                application_name=f"cdc-bridge {self.name}",
            )
        except psycopg.OperationalError as exc:
            raise RetriableError(
                f"cannot connect to PostgreSQL for source {self.name!r}: {str(exc).strip()}; "
                "check `dsn` and that the server is reachable"
            ) from exc

    def _meta(self) -> psycopg.Connection:
        if self.meta is None or self.meta.closed:
            self.meta = self._connect()
            self.catalog.conn = self.meta
            row = self.meta.execute("SELECT current_database()").fetchone()
            self.database = row[0] if row else ""
        return self.meta

    def _repl(self) -> ReplicationConnection:
        try:
            return ReplicationConnection(
                self.conninfo,
                application_name=f"cdc-bridge {self.name}",
                options=SESSION_OPTIONS,
            )
        except psycopg.OperationalError as exc:
            msg = str(exc).strip()
            if "replication" in msg and ("pg_hba" in msg or "permission" in msg):
                raise ConfigError(
                    f"PostgreSQL refused a replication connection for source {self.name!r}: "
                    f"{msg}; allow it in pg_hba.conf (`host replication <user> ...`) and give the "
                    "user the REPLICATION attribute"
                ) from exc
            raise RetriableError(f"replication connection failed: {msg}") from exc

    # -- adapter pieces (run by sources/coordinator.py) -----------------------------------------

    def _tables(self) -> list[TableInfo]:
        tables = resolve_tables(self._meta(), self.cfg.tables)
        signal = self.cfg.signal_table
        return [t for t in tables if t.qualified != signal] if signal else tables

    def _signal_info(self) -> TableInfo | None:
        """The signal table (None: not configured); a missing one is a ConfigError."""
        if not self.cfg.signal_table:
            return None
        return resolve_tables(self._meta(), [self.cfg.signal_table])[0]

    def prepare(self, ctx: SourceContext | None) -> None:
        conn = self._meta()
        tables = self._tables()
        if ctx is not None:
            # A previous process of ours may still hold the slot for a moment (its walsender
            # exits when it notices the closed connection): wait before calling it a conflict.
            deadline = time.monotonic() + _SLOT_RELEASE_WAIT_S
            while (
                (state := slot_state(conn, self.cfg.slot)) is not None
                and state.active
                and time.monotonic() < deadline
                and not ctx.stopping.wait(0.25)
            ):
                pass
        # What ``start`` needs, checked the same way for ``check``: server settings,
        # privileges, the slot, creating or changing the publication (unless snapshot only).
        check_prerequisites(
            conn, slot=self.cfg.slot, tables=tables, source=self.name, **self._publication_args()
        )

    def _publication_args(self) -> dict[str, Any]:
        if self.cfg.snapshot == "initial_only":
            return {}
        return {"publication": self.cfg.publication, "all_tables": self.cfg.tables is None}

    def _publication(self) -> None:
        tables = self._tables()
        signal = self._signal_info()
        if signal is not None:
            tables.append(signal)  # its inserts (watermarks, signals) must reach the stream
        ensure_publication(
            self._meta(), self.cfg.publication, None if self.cfg.tables is None else tables
        )

    def position_now(self, ctx: SourceContext) -> PostgresOffset:
        """The slot's position; a new slot (without a snapshot) when there is none."""
        self._publication()
        state = slot_state(self._meta(), self.cfg.slot)
        if state is not None and not state.invalidated and state.restart_lsn is not None:
            ctx.log.info(
                "slot %s exists but no stored position was found: streaming from the slot",
                self.cfg.slot,
            )
            return PostgresOffset(state.confirmed_flush or LSN(0))
        self.forget_position(ctx)
        slot = self._repl_conn().create_slot(self.cfg.slot, snapshot="nothing")
        self._new_slot = True
        ctx.log.info("created replication slot %s at %s", self.cfg.slot, slot.consistent_point)
        return PostgresOffset(slot.consistent_point)

    def _slot_or_lost(self, stored: PostgresOffset) -> Any:
        state = slot_state(self._meta(), self.cfg.slot)
        if state is None:
            raise PositionLost(
                f"replication slot {self.cfg.slot!r} no longer exists (the stored position "
                f"was {LSN(stored.lsn)})",
                hint="Do not drop the slot while the bridge is stopped.",
            )
        if state.invalidated or state.restart_lsn is None:
            raise PositionLost(
                f"replication slot {self.cfg.slot!r} was invalidated: the server removed WAL it "
                f"still needed (max_slot_wal_keep_size; the stored position was "
                f"{LSN(stored.lsn)})",
                hint="To take the new snapshot by hand instead: stop the bridge, run "
                f"`cdc-bridge resnapshot --source {self.name} --config <routes.toml>` (that is "
                f"`cdc-bridge postgres drop-slot --source {self.name} --config <routes.toml>` "
                "plus forgetting the stored position) and start it again. Raise "
                "max_slot_wal_keep_size so the slot survives longer outages.",
            )
        return state

    def resume(self, ctx: SourceContext, stored: PostgresOffset) -> PostgresOffset:
        self._publication()
        state = self._slot_or_lost(stored)
        confirmed = int(state.confirmed_flush or 0)
        return replace(stored, lsn=max(confirmed, stored.lsn))

    def forget_position(self, ctx: SourceContext) -> None:
        """Drop the slot if it exists but is invalidated (it can never be read again)."""
        conn = self._meta()
        state = slot_state(conn, self.cfg.slot)
        if state is not None and (state.invalidated or state.restart_lsn is None):
            ctx.log.warning("dropping invalidated replication slot %s", self.cfg.slot)
            drop_slot(conn, self.cfg.slot)

    def open_snapshot(self, ctx: SourceContext, resume: PostgresOffset | None) -> PgSnapshotReader:
        tables = self._tables()
        snapshot_name: str | None = None
        if self.cfg.snapshot == "initial_only":
            lsn = LSN(resume.lsn if resume else 0)  # no slot: nothing streams afterwards
        else:
            self._publication()
            state = slot_state(self._meta(), self.cfg.slot)
            if state is None:
                # Persist "snapshot pending" before the slot exists: a crash after creating
                # the slot must not look like a finished snapshot on restart.
                ctx.emit([], PostgresOffset(0, SnapshotCursor()))
                ctx.checkpoint()
                slot = self._repl_conn().create_slot(self.cfg.slot, snapshot="export")
                self._new_slot = True
                ctx.log.info(
                    "created replication slot %s at %s", self.cfg.slot, slot.consistent_point
                )
                # The exported snapshot lives until the next command on the replication
                # connection: the reader's transaction imports it right now.
                lsn, snapshot_name = slot.consistent_point, slot.snapshot_name
                resume = None
            else:
                # The slot replays every change since its confirmed position: a new snapshot
                # of the tables now, streamed from there, misses nothing.
                lsn = state.confirmed_flush or LSN(0)
        self._meta()

        def make_codec(t: TableInfo, cols: list[Any], key: tuple[str, ...]) -> TableCodec:
            return self._codec(t.schema, t.name, cols, key)

        return PgSnapshotReader(
            self._connect(),
            tables,
            make_codec,
            fetch_size=self.cfg.snapshot_batch_size,
            hand_off=PostgresOffset(lsn),
            snapshot_name=snapshot_name,
        )

    def stream(self, ctx: SourceContext, start: PostgresOffset) -> None:
        self._slot_or_lost(start)
        repl = self._repl_conn()
        new_slot, self._new_slot = self._new_slot, False
        self._stream(ctx, repl, start, new_slot=new_slot)

    # -- incremental snapshots (sources/incremental.py) -------------------------------------------

    def captured_tables(self) -> list[str]:
        return [t.qualified for t in self._tables()]

    def incremental_hooks(self) -> _PgChunks:
        signal = self._signal_info()
        assert signal is not None
        return _PgChunks(self, signal)

    def insert_signal(self, signal_id: str, kind: str, data: str) -> None:
        assert self.cfg.signal_table is not None
        schema, name = self.cfg.signal_table.split(".")
        self._meta().execute(
            sql.SQL("INSERT INTO {} (id, type, data) VALUES (%s, %s, %s)").format(
                sql.Identifier(schema, name)
            ),
            (signal_id, kind, data),
        )

    def _repl_conn(self) -> ReplicationConnection:
        if self.repl is None:
            self.repl = self._repl()
        return self.repl

    def close(self) -> None:
        for c in (self.repl,):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        self.repl = None
        if self.meta is not None:
            try:
                self.meta.close()
            except Exception:
                pass
            self.meta = None

    # -- table codecs ----------------------------------------------------------------------------

    def _codec(
        self, namespace: str, table: str, columns: Sequence[ColumnDef], key: tuple[str, ...]
    ) -> TableCodec:
        sig = (namespace, table, tuple(columns), key)
        codec = self._codecs.get(sig)
        if codec is None:
            codec = TableCodec(
                self.name,
                self.database,
                namespace,
                table,
                columns,
                key,
                self.options,
                self.catalog,
            )
            self._codecs[sig] = codec
        return codec

    def _on_relation(self, rel: po.Relation) -> None:
        """A Relation message: (re)build the table's codec from it plus catalog facts."""
        not_null: dict[str, bool] = {}
        defaults: dict[str, str | None] = {}
        pk: tuple[str, ...] = ()
        try:
            cols, pk, _ = catalog_columns(self._meta(), rel.relid)
            not_null = {c.name: c.not_null for c in cols}
            defaults = {c.name: c.default for c in cols}
        except psycopg.Error as exc:
            log.warning("catalog lookup of %s.%s failed: %s", rel.namespace, rel.name, exc)
        if not pk and rel.replica_identity in ("d", "i") and not not_null:
            pk = tuple(c.name for c in rel.columns if c.is_key)
        columns = [
            ColumnDef(
                c.name, c.type_oid, c.typmod, not_null.get(c.name, False), defaults.get(c.name)
            )
            for c in rel.columns
        ]
        self.relations[rel.relid] = self._codec(rel.namespace, rel.name, columns, pk)
        self.relation_msgs[rel.relid] = rel

    def _refresh_relation(self, relid: int) -> None:
        codec = self.relations.get(relid)
        rel = self.relation_msgs.get(relid)
        if codec is None or rel is None:
            return
        for c in codec.columns:
            self._on_type(c.type_oid)
        self._on_relation(rel)
        self.relations[relid].stale = False  # once: never loop on an unknown value

    def _on_type(self, oid: int) -> None:
        """A Type message (e.g. after ALTER TYPE ... ADD VALUE): forget what we knew about it,
        so the next Relation message builds the schema with the new enum labels."""
        self.catalog.invalidate(oid)
        self._codecs = {
            sig: codec
            for sig, codec in self._codecs.items()
            if all(c.type_oid != oid for c in codec.columns)
        }

    # -- streaming -------------------------------------------------------------------------------

    def _stream(
        self,
        ctx: SourceContext,
        repl: ReplicationConnection,
        offset: PostgresOffset,
        new_slot: bool = False,
    ) -> None:
        cfg = self.cfg
        start = LSN(offset.lsn)
        incremental = self.incremental_state(ctx, offset.incremental)
        server_version = repl.conn.info.server_version
        proto = cfg.proto_version if server_version >= 140000 else 1
        streaming = cfg.streaming and proto >= 2
        try:
            repl.start_replication(
                cfg.slot,
                start,
                publications=[cfg.publication],
                proto_version=proto,
                streaming=streaming,
                messages=False,
            )
        except psycopg.errors.ObjectInUse as exc:
            raise ConfigError(
                f"replication slot {cfg.slot!r} is in use by another process; is another bridge "
                f"running source {self.name!r}? ({exc.diag.message_primary})"
            ) from exc
        except psycopg.Error as exc:
            raise FatalError(f"START_REPLICATION failed: {str(exc).strip()}") from exc
        ctx.stream_established()
        ctx.log.info(
            "streaming from slot %s at %s (pgoutput v%d%s)",
            cfg.slot,
            start,
            proto,
            ", streaming" if streaming else "",
        )
        try:
            _Streamer(self, ctx, repl, start, proto, new_slot, incremental).loop()
        except (psycopg.OperationalError, ReplicationStreamEnded) as exc:
            raise RetriableError(
                f"replication stream of {self.name!r} broke: {str(exc).strip()}"
            ) from exc
        except po.PgOutputError as exc:
            raise FatalError(f"cannot decode the replication stream: {exc}") from exc

    # -- operations ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Slot state and lag, for ``cdc-bridge status``."""
        conn = self._meta()
        state = slot_state(conn, self.cfg.slot)
        return {
            "source": self.name,
            "slot": self.cfg.slot,
            "publication": self.cfg.publication,
            "slot_exists": state is not None,
            "active": state.active if state else False,
            "confirmed_flush_lsn": str(state.confirmed_flush)
            if state and state.confirmed_flush
            else None,
            "lag_bytes": slot_lag(conn, self.cfg.slot) if state else None,
            "snapshot": self.snapshot_status(),
        }

    def drop_slot_and_publication(self) -> tuple[bool, bool]:
        """Explicit cleanup (CLI): drop the slot and the publication; returns what existed.
        Checks first that it can drop both: it drops both or neither."""
        conn = self._meta()
        problems = drop_problems(conn, self.cfg.slot, self.cfg.publication)
        if problems:
            raise ConfigError(
                f"nothing was dropped for source {self.name!r}:",
                [ConfigProblem("", p) for p in problems],
            )
        return drop_slot(conn, self.cfg.slot), drop_publication(conn, self.cfg.publication)


_ROW_MESSAGES = frozenset({po.Insert, po.Update, po.Delete, po.Truncate})


class _PgChunks:
    """The incremental snapshot's Postgres pieces: chunks read on the metadata connection
    (READ COMMITTED, autocommit), watermarks inserted into the signal table."""

    def __init__(self, source: PostgresSource, signal: TableInfo) -> None:
        self.src = source
        self.signal = sql.Identifier(signal.schema, signal.name)
        self.by_name = {t.qualified: t for t in source._tables()}

    def estimate(self, table: str) -> int:
        t = self.by_name.get(table)
        if t is None:
            return 0
        row = (
            self.src._meta()
            .execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s", (t.oid,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def read_chunk(self, table: str, after: Any, limit: int, where: str | None) -> Chunk:
        src = self.src
        t = self.by_name.get(table)
        if t is None or not t.primary_key:
            log.warning(
                "source %s: cannot snapshot %s incrementally: %s",
                src.name,
                table,
                "not a captured table" if t is None else "it has no primary key",
            )
            return Chunk([], [], None)
        conn = src._meta()

        def make_codec(t: TableInfo, cols: list[Any], key: tuple[str, ...]) -> TableCodec:
            return src._codec(t.schema, t.name, cols, key)

        query, params, codec = chunk_query(conn, t, make_codec, after, where=where, limit=limit)
        try:
            rows = conn.execute(query, params).fetchall()
        except psycopg.OperationalError:
            raise  # the connection broke: the stream is retried
        except psycopg.Error as exc:  # a bad condition, no privilege: the stream goes on
            raise IncrementalSnapshotError(
                f"reading {table} failed: {str(exc).strip()}"
                + (f" (condition: {where})" if where else "")
            ) from exc
        now_us = time.time_ns() // 1000
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        lsn = int(LSN.parse(row[0])) if row else 0
        source = {
            "schema": t.schema,
            "table": t.name,
            "txId": None,
            "lsn": lsn,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }
        seq = f'[null,"{lsn}"]'
        schema, build, key_index = codec.schema, codec.row, codec.key_index
        events = [
            ChangeEvent(schema, OP_READ, None, build(r), now_us, source, SNAPSHOT_INCREMENTAL, seq)
            for r in rows
        ]
        keys = [tuple(r[i] for i in key_index) for r in rows]
        return Chunk(events, keys, list(keys[-1]) if keys else None)

    def write_watermark(self, signal_id: str, kind: str, forget: Sequence[str]) -> None:
        conn = self.src._meta()
        try:
            self._write(conn, signal_id, kind, forget)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise IncrementalSnapshotError(
                f"cannot write a watermark into signal table {self.src.cfg.signal_table}: "
                f"{str(exc).strip()} (grant the bridge's user SELECT, INSERT, DELETE on it)"
            ) from exc

    def _write(
        self, conn: psycopg.Connection, signal_id: str, kind: str, forget: Sequence[str]
    ) -> None:
        with conn.transaction():
            if forget:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self.signal),
                    (list(forget),),
                )
            conn.execute(
                sql.SQL("INSERT INTO {} (id, type, data) VALUES (%s, %s, NULL)").format(
                    self.signal
                ),
                (signal_id, kind),
            )


class _Streamer:
    """The hot loop: decode, batch across transactions, emit at commit boundaries, feed back."""

    def __init__(
        self,
        source: PostgresSource,
        ctx: SourceContext,
        repl: ReplicationConnection,
        start: LSN,
        proto: int,
        new_slot: bool = False,
        incremental: IncrementalState | None = None,
    ) -> None:
        self.src = source
        self.ctx = ctx
        self.repl = repl
        self.decoder = po.PgOutputDecoder(protocol_version=proto)
        self.pending: list[ChangeEvent] = []
        self.pending_offset: PostgresOffset | None = None
        self.last_offset_lsn = int(start)
        self.last_commit: int | None = None if new_slot else int(start) or None
        self.in_tx = False
        self.xid: int | None = None
        self.commit_us = 0
        self.streams: dict[int, list[tuple[int, po.Message]]] = {}
        self.stream_xid: int | None = None
        self.max_batch = source.cfg.stream_batch_size
        # transactions of a skipped replication origin (a sink of this bridge wrote them)
        patterns = source.cfg.skip_origins
        self.skip_origin = (
            (lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)) if patterns else None
        )
        self.skip_tx = False
        self.origin_name: str | None = None  # the current transaction's replication origin
        self.origin_lsn: int | None = None
        # Incremental snapshots: the relids whose changes the snapshotter must see (the signal
        # table, the table whose chunk is open); one set lookup per change event.
        self.inc_state = incremental
        self.incr = source.incremental
        self.watched: frozenset[int] = frozenset()
        self.signal_relid = -1
        self.watch_keys: dict[int, list[int]] = {}
        if self.incr is not None:
            signal = source._signal_info()
            assert signal is not None
            self.signal_relid = signal.oid
            self.oids = {t.qualified: t for t in source._tables()}
            self._rewatch()

    # incremental snapshots -------------------------------------------------------------------------

    def start_incremental(self) -> None:
        """After START_REPLICATION: continue a pending incremental snapshot, queue new tables."""
        if self.inc_state is not None:  # stored at once: the tables known from now on
            self.ctx.emit([], PostgresOffset(self.last_offset_lsn, None, self.inc_state))
        if self.incr is not None:
            self.incr.resume(list(self.oids))
            self._rewatch()

    def _rewatch(self) -> None:
        incr = self.incr
        assert incr is not None
        self.inc_state = incr.state
        watched = {self.signal_relid}
        table = incr.watching()
        if table is not None and table in self.oids:
            watched.add(self.oids[table].oid)
        self.watched = frozenset(watched)

    def _watched(self, msg: po.Insert | po.Update | po.Delete) -> bool:
        """A change of the signal table (consumed: True) or of the table being read."""
        incr = self.incr
        assert incr is not None
        rel = self.src.relation_msgs.get(msg.relid)
        if rel is None:
            return msg.relid == self.signal_relid
        if msg.relid == self.signal_relid:
            if type(msg) is po.Insert:
                row = {c.name: v for c, v in zip(rel.columns, msg.new, strict=False)}
                events = incr.on_signal(
                    str(row.get("id")), str(row.get("type")), _str_or_none(row.get("data"))
                )
                self.pending.extend(events)
                self._rewatch()
            return True
        positions = self.watch_keys.get(msg.relid)
        if positions is None:
            table = incr.watching()
            pk = self.oids[table].primary_key if table in self.oids else ()
            names = [c.name for c in rel.columns]
            positions = self.watch_keys[msg.relid] = [names.index(k) for k in pk if k in names]
        for tup in (getattr(msg, "new", None), getattr(msg, "old", None)):
            if tup is not None:
                incr.on_change(tuple(tup[i] for i in positions))
        return False

    # emit ---------------------------------------------------------------------------------------

    def flush(self) -> None:
        if self.pending or self.pending_offset is not None:
            self.ctx.backpressure(self.src.max_in_flight)
            self.ctx.emit(self.pending, self.pending_offset)
            self.src.stats["events"] += len(self.pending)
            self.pending = []
            self.pending_offset = None

    def feedback(self) -> None:
        safe = self.ctx.safe_offset()
        if isinstance(safe, PostgresOffset) and safe.snapshot_done:
            self.repl.set_flushed(safe.lsn)
        self.repl.send_status()

    # events -------------------------------------------------------------------------------------

    def _event(self, codec: TableCodec, op: str, before: Any, after: Any, lsn: int) -> ChangeEvent:
        lsn = int(lsn)
        src = {
            "schema": codec.namespace,
            "table": codec.table,
            "txId": self.xid,
            "lsn": lsn,
            "xmin": None,
            "origin": self.origin_name,
            "origin_lsn": self.origin_lsn,
        }
        return ChangeEvent(
            codec.schema,
            op,
            before,
            after,
            self.commit_us,
            src,
            SNAPSHOT_FALSE,
            f'{self.seq_prefix}"{lsn}"]',
        )

    @property
    def last_commit(self) -> int | None:
        return self._last_commit

    @last_commit.setter
    def last_commit(self, lsn: int | None) -> None:
        """Debezium's ``sequence`` starts with the end LSN of the last commit this connector
        saw (null on a new slot before the first commit; the resume position after a restart)."""
        self._last_commit = lsn
        self.seq_prefix = f'["{int(lsn)}",' if lsn is not None else "[null,"

    def _codec(self, relid: int) -> TableCodec:
        codec = self.src.relations.get(relid)
        if codec is None:
            raise po.PgOutputError(f"change for relation {relid} before its Relation message")
        return codec

    def handle(self, msg: po.Message, lsn: int) -> None:
        skip = self.src.skip
        if self.skip_tx and type(msg) in _ROW_MESSAGES:
            # an echoed change is not published, but it is still a newer version of its row:
            # an open incremental-snapshot chunk must drop that row (else the target would get
            # the chunk's older copy after its own newer write)
            if isinstance(msg, po.Insert | po.Update | po.Delete) and msg.relid in self.watched:
                self._watched(msg)
            self.src.stats["origin_skipped_changes"] += 1
            return
        if type(msg) is po.Insert:
            if msg.relid in self.watched and self._watched(msg):
                return
            if OP_CREATE not in skip:
                c = self._codec(msg.relid)
                self.pending.append(self._event(c, OP_CREATE, None, c.row(msg.new), lsn))
                if c.stale:
                    self._redo(msg, lsn)
        elif type(msg) is po.Update:
            if msg.relid in self.watched and self._watched(msg):
                return
            if OP_UPDATE not in skip:
                c = self._codec(msg.relid)
                new = msg.new
                old = msg.old
                if old is not None and po.UNCHANGED_TOAST in new:
                    # REPLICA IDENTITY FULL sent the old value: use it instead of a placeholder
                    new = [
                        o if n is po.UNCHANGED_TOAST and isinstance(o, str) else n
                        for n, o in zip(new, old, strict=False)
                    ]
                if old is None:
                    before = None
                elif msg.old_kind == "K":
                    before = c.key_row(old)
                else:
                    before = c.row(old)
                self.pending.append(self._event(c, OP_UPDATE, before, c.row(new), lsn))
                if c.stale:
                    self._redo(msg, lsn)
        elif type(msg) is po.Delete:
            if msg.relid in self.watched and self._watched(msg):
                return
            if OP_DELETE not in skip:
                c = self._codec(msg.relid)
                before = c.key_row(msg.old) if msg.old_kind == "K" else c.row(msg.old)
                self.pending.append(self._event(c, OP_DELETE, before, None, lsn))
                if c.stale:
                    self._redo(msg, lsn)
        elif type(msg) is po.Origin:
            # Debezium's source.origin / origin_lsn: the replication origin of the transaction
            self.origin_name, self.origin_lsn = msg.name, int(msg.commit_lsn)
            if self.skip_origin is not None and self.skip_origin(msg.name):
                self.skip_tx = True
                self.src.stats["origin_skipped_transactions"] += 1
        elif type(msg) is po.Begin:
            self.skip_tx = False
            self.origin_name = self.origin_lsn = None
            self.in_tx = True
            self.xid = msg.xid
            self.commit_us = po.pg_timestamp_to_unix_us(msg.commit_ts)
        elif type(msg) is po.Commit:
            self._commit(msg.commit_lsn, msg.end_lsn)
        elif type(msg) is po.Relation:
            self.src._on_relation(msg)
            self.watch_keys.pop(msg.relid, None)
        elif type(msg) is po.TypeInfo:
            self.src._on_type(msg.oid)
        elif type(msg) is po.Truncate and OP_TRUNCATE not in skip:
            for relid in msg.relids:
                c = self._codec(relid)
                self.pending.append(self._event(c, OP_TRUNCATE, None, None, lsn))
        if len(self.pending) >= self.max_batch:
            # A huge transaction: send what we have; the slot advances only at a commit.
            self.flush()

    def _redo(self, msg: po.Insert | po.Update | po.Delete, lsn: int) -> None:
        """A value the table's schema does not know (an enum label added by ALTER TYPE, which
        sends no Relation message): rebuild the schema from the catalog and convert again."""
        self.pending.pop()
        self.src._refresh_relation(msg.relid)
        self.handle(msg, lsn)

    def _commit(self, commit_lsn: int, end_lsn: int) -> None:
        self.in_tx = False
        self.last_commit = end_lsn
        self.pending_offset = PostgresOffset(end_lsn, None, self.inc_state)
        self.last_offset_lsn = max(self.last_offset_lsn, end_lsn)
        self.src.stats["transactions"] += 1

    def handle_stream(self, msg: po.Message, lsn: int) -> bool:
        """Protocol v2 streamed transactions: buffer until Stream Commit, drop on abort."""
        if type(msg) is po.StreamStart:
            self.stream_xid = msg.xid
            self.streams.setdefault(msg.xid, [])
            return True
        if type(msg) is po.StreamStop:
            self.stream_xid = None
            return True
        if type(msg) is po.StreamAbort:
            xid, sub = msg.xid, msg.subxid
            if xid == sub:
                self.streams.pop(xid, None)
            elif xid in self.streams:
                self.streams[xid] = [
                    (lsn_, m) for lsn_, m in self.streams[xid] if getattr(m, "xid", None) != sub
                ]
            return True
        if type(msg) is po.StreamCommit:
            buffered = self.streams.pop(msg.xid, [])
            self.src.stats["streamed_transactions"] += 1
            self.skip_tx = False  # the buffered messages carry the transaction's Origin
            self.origin_name = self.origin_lsn = None
            self.in_tx = True
            self.xid = msg.xid
            self.commit_us = po.pg_timestamp_to_unix_us(msg.commit_ts)
            for lsn_, m in buffered:
                self.handle(m, lsn_)
            self._commit(msg.commit_lsn, msg.end_lsn)
            return True
        if self.stream_xid is not None:
            if type(msg) is po.Relation:
                self.src._on_relation(msg)
            self.streams[self.stream_xid].append((lsn, msg))
            return True
        return False

    # loop ---------------------------------------------------------------------------------------

    def loop(self) -> None:
        cfg = self.src.cfg
        ctx, repl, decode = self.ctx, self.repl, self.decoder.decode
        stopping = ctx.stopping
        status_every = cfg.status_interval_ms / 1000
        heartbeat_every = cfg.heartbeat_interval_ms / 1000
        lag_every = cfg.slot_lag_log_interval_ms / 1000
        now = time.monotonic()
        next_status = now + status_every
        next_heartbeat = now + heartbeat_every if heartbeat_every else float("inf")
        next_lag = now + min(lag_every, 5) if lag_every else float("inf")
        handle, handle_stream = self.handle, self.handle_stream
        self.start_incremental()
        n = 0
        while not stopping.is_set():
            msg = repl.read(0 if (self.pending or self.pending_offset) else 0.2)
            if msg is None:
                self.flush()
            elif type(msg) is Keepalive:
                wal_end = msg.wal_end
                if (
                    heartbeat_every
                    and not self.in_tx
                    and not self.pending
                    and wal_end > self.last_offset_lsn
                ):
                    # Idle: nothing of ours lies before wal_end, so it may become safe once
                    # everything sent earlier is confirmed (ordered behind it).
                    self.flush()
                    self.last_offset_lsn = wal_end
                    ctx.emit([], PostgresOffset(wal_end, None, self.inc_state))
            else:
                assert type(msg) is XLogData
                m = decode(msg.payload)
                lsn = msg.data_start
                if not (self.decoder.in_stream or m.__class__ in _STREAM_CONTROL) or not (
                    handle_stream(m, lsn)
                ):
                    handle(m, lsn)
                n += 1
                if n & 1023:
                    continue
            now = time.monotonic()
            if now >= next_status:
                self.flush()
                self.feedback()
                next_status = now + status_every
            if now >= next_heartbeat:
                if not self.in_tx and not self.pending:
                    repl.send_status(reply=True)  # the server answers with its WAL position
                next_heartbeat = now + heartbeat_every
            if now >= next_lag:
                self._log_lag()
                next_lag = now + lag_every
        # stopping: hand over what we have, report what is confirmed.
        self.flush()
        deadline = time.monotonic() + 5
        while ctx.producer.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.feedback()

    def _log_lag(self) -> None:
        try:
            lag = slot_lag(self.src._meta(), self.src.cfg.slot)
        except psycopg.Error as exc:
            log.debug("slot lag query failed: %s", exc)
            return
        self.src.stats["slot_lag_bytes"] = lag
        self.ctx.log.info(
            "slot %s: %s bytes of WAL behind (%d transactions, %d events so far)",
            self.src.cfg.slot,
            lag,
            self.src.stats["transactions"],
            self.src.stats["events"],
        )


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


_STREAM_CONTROL = frozenset({po.StreamStart, po.StreamStop, po.StreamCommit, po.StreamAbort})
