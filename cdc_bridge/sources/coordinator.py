"""One coordinator runs every capture adapter: snapshot modes, snapshot -> stream hand-off,
retries, checkpoints and lost positions are decided here once, not in each connector.

This is Debezium's ``ChangeEventSourceCoordinator`` idea. A connector (an *adapter*)
subclasses :class:`CaptureAdapter` and supplies only the small pieces that differ between
databases:

- ``offset_type``: its offset class (``PostgresOffset``, ``MySqlOffset``, ``MongoOffset``,
  ...), a dataclass with a ``snapshot: SnapshotCursor | None`` field that round-trips through
  ``to_dict()`` / ``from_dict()``; ``from_dict`` must also read the offsets older versions
  stored (:meth:`SnapshotCursor.from_dict` reads every old cursor shape);
- :meth:`CaptureAdapter.prepare`: connect and check prerequisites (raise ``ConfigError`` with
  a fix-it message, or ``RetriableError`` for a passing failure);
- :meth:`CaptureAdapter.position_now`: where a stream starting now begins (used by
  ``snapshot = "never"`` on a first start);
- :meth:`CaptureAdapter.resume`: validate a stored, finished position against the server;
  raise :class:`PositionLost` when the server no longer has it (dropped slot, purged binlog,
  resume token out of the oplog, replay id out of retention);
- :meth:`CaptureAdapter.open_snapshot`: a :class:`SnapshotReader` over a consistent view,
  which knows the position streaming continues from afterwards (``hand_off``) and reads each
  table in key order, in chunks, after a key;
- :meth:`CaptureAdapter.stream`: read changes from a position until ``ctx.stopping`` is set,
  calling ``ctx.emit(events, offset)`` and ``ctx.stream_established()`` once connected.

The coordinator owns the rest:

- **snapshot modes** (``initial`` / ``never`` / ``initial_only`` / ``when_needed``) and the
  hand-off: every snapshot chunk is emitted with ``hand_off.with_snapshot(cursor)``, so a crash
  resumes after the last chunk Kafka confirmed; the final ``[]`` emit with the cursor cleared
  marks the snapshot done; streaming then starts at ``hand_off``;
- the snapshot markers of ``source.snapshot``, set once here for every kind as Debezium sets
  them: ``first`` on the first row of the first table, ``first_in_data_collection`` /
  ``last_in_data_collection`` on the first / last row of every table, ``last`` on the very last
  row of the snapshot (even when the last tables are empty), ``true`` on the rest (``last``
  wins over ``first``, and ``first`` over ``last_in_data_collection``); and one
  :class:`SnapshotProgress` reporter;
- **one retry policy** (``retry_initial_delay_ms`` / ``retry_max_delay_ms`` /
  ``retry_max_attempts`` on every source): a ``RetriableError`` closes the adapter, waits with
  capped exponential backoff, and runs again from the newest safe position; the backoff starts
  over once ``ctx.stream_established()`` was called again (a successful reconnect). A failure
  in the very first ``prepare`` is raised at once: it is most likely a setup error;
- **one checkpoint cadence** (``checkpoint_interval_ms``): ``ctx.maybe_checkpoint()``;
- **one reaction to a lost position** (``on_position_lost = "fail" | "resnapshot"``; by default
  ``resnapshot`` under ``snapshot = "when_needed"``, else ``fail``), logged or raised with the
  same message naming what was lost, and counted in ``cdc_bridge_source_positions_lost_total``.

A minimal adapter is shown in ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from cdc_bridge import metrics
from cdc_bridge.config import IncrementalSnapshotSettings
from cdc_bridge.errors import ConfigError, FatalError, RetriableError
from cdc_bridge.events import (
    SNAPSHOT_FIRST,
    SNAPSHOT_FIRST_IN_DATA_COLLECTION,
    SNAPSHOT_LAST,
    SNAPSHOT_LAST_IN_DATA_COLLECTION,
    ChangeEvent,
)
from cdc_bridge.sources.base import Source, SourceContext
from cdc_bridge.sources.incremental import (
    SIGNAL_EXECUTE,
    IncrementalHooks,
    IncrementalSnapshotter,
    IncrementalState,
    snapshot_signal,
)

__all__ = [
    "CaptureAdapter",
    "CoordinatedOffset",
    "Coordinator",
    "PositionLost",
    "RetryPolicy",
    "SnapshotChunk",
    "SnapshotCursor",
    "SnapshotProgress",
    "SnapshotReader",
]

log = logging.getLogger(__name__)

# -- the shared pieces of every offset ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotCursor:
    """How far an unfinished snapshot got; embedded in every adapter's offset.

    ``done``: tables (qualified names) read completely. ``table``: the table being read,
    ``last_key``: the JSON-able key of its last row Kafka confirmed (None: start the table
    over). ``rows``: rows read so far by this snapshot (for progress after a restart).
    """

    done: tuple[str, ...] = ()
    table: str | None = None
    last_key: Any = None
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": list(self.done),
            "table": self.table,
            "last_key": self.last_key,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnapshotCursor:
        """Also reads the cursors stored before the coordinator: Postgres ``{"done", "table",
        "after"}``, MongoDB ``{"done", "ns", "last_id", "rows"}``."""
        table = d.get("table", d.get("ns"))
        last_key = d["last_key"] if "last_key" in d else d.get("after", d.get("last_id"))
        if table is None:
            last_key = None
        return cls(tuple(d.get("done") or ()), table, last_key, int(d.get("rows") or 0))

    @property
    def fresh(self) -> bool:
        """Nothing read yet."""
        return not self.done and self.table is None and not self.rows

    def advanced(self, table: str, last_key: Any, rows: int) -> SnapshotCursor:
        return SnapshotCursor(self.done, table, last_key, self.rows + rows)

    def finished(self, table: str) -> SnapshotCursor:
        done = self.done if table in self.done else (*self.done, table)
        return SnapshotCursor(done, None, None, self.rows)


@runtime_checkable
class CoordinatedOffset(Protocol):
    """What the coordinator needs of an adapter's offset type (a frozen dataclass will do).

    ``snapshot`` is None once the snapshot (if any) was handed off to streaming.
    """

    snapshot: SnapshotCursor | None

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self: ...

    def with_snapshot(self, cursor: SnapshotCursor | None) -> Self: ...


class PositionLost(FatalError):
    """The server no longer has the stored position; changes since then cannot be read.

    ``what`` names the position in the user's words (``replication slot 'x' was dropped``,
    ``binlog position mysql-bin.000003:1234 was purged``, ``resume token ... is no longer in
    the oplog``); ``hint``: how to keep it from happening again.
    """

    def __init__(self, what: str, *, hint: str = "") -> None:
        self.what = what
        self.hint = hint
        super().__init__(what)


# -- the adapter's snapshot reader -------------------------------------------------------------


@dataclass(slots=True)
class SnapshotChunk:
    """Rows of one table read in key order: ``op: r`` events and the key of the last row
    (JSON-able; None when the table has no usable key: a restart reads it from the start)."""

    events: list[ChangeEvent]
    last_key: Any = None


class SnapshotReader(ABC):
    """A consistent view of the captured tables, opened by :meth:`CaptureAdapter.open_snapshot`.

    ``hand_off``: the position (cursor cleared) that streaming starts from after this snapshot;
    changes committed after the view was taken are at or after it.
    """

    hand_off: Any

    @abstractmethod
    def tables(self) -> Sequence[str]:
        """Qualified names of the tables to read, in order."""

    def estimate(self, table: str) -> int:
        """Estimated rows of ``table`` (0: unknown), for progress and ETA."""
        return 0

    @abstractmethod
    def read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        """Chunks of ``table`` in key order, starting after key ``after`` (None: from the
        start). Chunks may be empty; the coordinator checks for a stop between chunks."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """End the consistent view (the coordinator calls it after the last table or a stop)."""


# -- progress ------------------------------------------------------------------------------------


@dataclass
class SnapshotProgress:
    """Live progress of one table's snapshot (logs, ``cdc-bridge status``)."""

    table: str
    estimated_rows: int
    rows: int = 0
    started: float = field(default_factory=time.monotonic)
    already: int = 0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.rows - self.already) / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if rate <= 0 or self.estimated_rows <= self.rows:
            return None
        return (self.estimated_rows - self.rows) / rate

    def line(self) -> str:
        eta = self.eta_s
        est = f"/~{self.estimated_rows}" if self.estimated_rows > 0 else ""
        pct = f" ({100 * self.rows / self.estimated_rows:.0f}%)" if self.estimated_rows > 0 else ""
        return f"snapshot {self.table}: {self.rows}{est} rows{pct}, {self.rate:,.0f} rows/s" + (
            f", ETA {eta:,.0f}s" if eta is not None else ""
        )

    def as_dict(self) -> dict[str, Any]:
        eta = self.eta_s
        return {
            "table": self.table,
            "rows": self.rows,
            "estimated_rows": self.estimated_rows,
            "rows_per_s": round(self.rate),
            "eta_s": round(eta, 1) if eta is not None else None,
        }


# -- retries -------------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """Capped exponential backoff; starts over after a successful reconnect."""

    initial_s: float = 0.5
    max_s: float = 30.0
    max_attempts: int = 0  # 0: retry for ever
    attempt: int = 0

    @classmethod
    def from_config(cls, cfg: Any) -> RetryPolicy:
        return cls(
            cfg.retry_initial_delay_ms / 1000, cfg.retry_max_delay_ms / 1000, cfg.retry_max_attempts
        )

    def next_delay(self) -> float | None:
        """The wait before the next attempt, or None when attempts are used up."""
        self.attempt += 1
        if self.max_attempts and self.attempt > self.max_attempts:
            return None
        return min(self.max_s, self.initial_s * 2 ** (self.attempt - 1))

    def reset(self) -> None:
        self.attempt = 0


# -- the adapter interface -------------------------------------------------------------------------


class CaptureAdapter(Source):
    """Base class of every capture adapter run by the :class:`Coordinator`.

    Subclasses set ``kind`` and ``offset_type`` and implement :meth:`prepare`,
    :meth:`position_now`, :meth:`open_snapshot` and :meth:`stream` (and usually
    :meth:`resume`). They never decide about snapshot modes, retries or lost positions: they
    raise ``RetriableError`` / :class:`PositionLost` / ``ConfigError`` and the coordinator acts.
    """

    offset_type: ClassVar[type[Any]]
    #: the ``op: r`` events' limit of unacknowledged records while snapshotting
    max_in_flight: int = 100_000

    coordinator: Coordinator | None = None

    def run(self, ctx: SourceContext) -> None:
        """Run through the coordinator until ``ctx.stopping`` (or the snapshot, for
        ``initial_only``) ends."""
        self.coordinator = Coordinator(self, ctx)
        self.coordinator.run()

    def check(self) -> None:
        self.prepare(None)

    @abstractmethod
    def prepare(self, ctx: SourceContext | None) -> None:
        """Connect and check prerequisites (``ctx`` is None for ``cdc-bridge check``)."""

    @abstractmethod
    def position_now(self, ctx: SourceContext) -> Any:
        """The position (an ``offset_type``) a stream started now begins at."""

    def resume(self, ctx: SourceContext, stored: Any) -> Any:
        """Check a stored, finished position; return where streaming continues (by default
        ``stored``). Raise :class:`PositionLost` when the server no longer has it."""
        return stored

    def forget_position(self, ctx: SourceContext) -> None:
        """Called before re-snapshotting after a lost position (drop an invalidated slot ...)."""

    @abstractmethod
    def open_snapshot(self, ctx: SourceContext, resume: Any | None) -> SnapshotReader:
        """A consistent view of the tables. ``resume``: the offset of an unfinished snapshot
        (keep its hand-off position: streaming must start where the first attempt's view was
        taken), or None for a new snapshot."""

    @abstractmethod
    def stream(self, ctx: SourceContext, start: Any) -> Any | None:
        """Stream changes from ``start`` until ``ctx.stopping`` is set (return None), or return
        a position to reopen the stream at (a MongoDB ``invalidate``)."""

    def restart_position(self, ctx: SourceContext, last: Any) -> Any:
        """Where a stream continues after a retriable failure: by default the newest position
        Kafka confirmed (events in flight repeat, none are skipped)."""
        safe = ctx.safe_offset()
        if isinstance(safe, self.offset_type) and safe.snapshot is None:
            return safe
        return last

    # -- incremental snapshots (optional; sources/incremental.py) --------------------------------
    #
    # An adapter that takes them has ``signal_table`` and ``incremental_chunk_size`` in its
    # config (``IncrementalSnapshotSettings``) and supplies ``captured_tables``,
    # ``incremental_hooks`` and ``insert_signal``; its stream reader calls
    # ``incremental_state`` when it starts, ``incremental.resume`` once connected, and
    # ``incremental.on_signal`` / ``incremental.on_change`` for the rows it watches.

    incremental: IncrementalSnapshotter | None = None

    def captured_tables(self) -> list[str]:
        """Qualified names of the tables (collections) captured now."""
        raise ConfigError(f"source kind {self.kind!r} does not take incremental snapshots")

    def incremental_hooks(self) -> IncrementalHooks:
        """The adapter's chunk reader and watermark writer (a signal table is configured)."""
        raise ConfigError(f"source kind {self.kind!r} does not take incremental snapshots")

    def insert_signal(self, signal_id: str, kind: str, data: str) -> None:
        """Insert one row into the signal table (committed at once)."""
        raise ConfigError(f"source kind {self.kind!r} does not take incremental snapshots")

    def incremental_state(
        self, ctx: SourceContext, stored: IncrementalState | None
    ) -> IncrementalState:
        """The incremental state a stream starts with, from the one its offset stored; sets
        :attr:`incremental` when a signal table is configured. Tables captured since the last
        run are snapshotted by ``incremental.resume`` (or only warned about without one)."""
        tables = self.captured_tables()
        state = stored if stored is not None else IncrementalState(known=tuple(tables))
        self.incremental = None
        settings = self._incremental_settings()
        if settings is None or not settings.signal_table:
            new = [t for t in tables if t not in state.known]
            if new:
                ctx.log.warning(
                    "source %s: table(s) %s added since the last run are streamed without "
                    "their existing rows: set signal_table to snapshot them incrementally",
                    self.name,
                    ", ".join(new),
                )
            return replace(state, known=state.known + tuple(new))
        self.incremental = IncrementalSnapshotter(
            self.name,
            self.incremental_hooks(),
            state,
            chunk_size=settings.incremental_chunk_size,
        )
        return state

    def _incremental_settings(self) -> IncrementalSnapshotSettings | None:
        cfg = self.config
        return cfg if isinstance(cfg, IncrementalSnapshotSettings) else None

    def request_snapshot(self, tables: list[str], where: str | None) -> str:
        """Ask the running source for an incremental snapshot of ``tables`` (rows matching
        ``where``, all when None): inserts Debezium's ``execute-snapshot`` signal into the
        signal table; returns the signal's id."""
        settings = self._incremental_settings()
        if settings is None:
            raise ConfigError(f"source kind {self.kind!r} does not take incremental snapshots")
        if not settings.signal_table:
            raise ConfigError(
                f"source {self.name!r} has no signal_table: set it (see docs: incremental "
                "snapshots) to take incremental snapshots"
            )
        known = set(self.captured_tables())
        unknown = [t for t in tables if t not in known]
        if unknown:
            raise ConfigError(
                f"source {self.name!r} does not capture {', '.join(unknown)} "
                f"(captured: {', '.join(sorted(known))})"
            )
        signal_id = f"cli-{time.time_ns()}"
        self.insert_signal(signal_id, SIGNAL_EXECUTE, snapshot_signal(tables, where))
        return signal_id

    def snapshot_status(self) -> dict[str, Any]:
        """Progress of the running (or last) snapshot, per table, incremental ones included."""
        c = self.coordinator
        out = {t: p.as_dict() for t, p in c.progress.items()} if c else {}
        if self.incremental is not None:
            out.update(self.incremental.status())
        return out


# -- the coordinator ---------------------------------------------------------------------------------


class Coordinator:
    """Runs one adapter: the snapshot-mode state machine, hand-off, retries, lost positions."""

    def __init__(self, adapter: CaptureAdapter, ctx: SourceContext) -> None:
        self.adapter = adapter
        self.ctx = ctx
        cfg = adapter.config
        self.mode: str = cfg.snapshot
        self.on_lost: str = effective_on_position_lost(cfg)
        self.retry = RetryPolicy.from_config(cfg)
        self.publish_reads = "r" not in cfg.skip_ops
        ctx.checkpoint_interval_s = cfg.checkpoint_interval_ms / 1000
        self.progress: dict[str, SnapshotProgress] = {}
        self.progress_interval_s = 5.0
        self.snapshots = 0
        self.resnapshot = False  # a lost position under "resnapshot": snapshot at next _start

    # -- the whole life ----------------------------------------------------------------------------

    def run(self) -> None:
        ctx, adapter = self.ctx, self.adapter
        adapter.prepare(ctx)  # a failure here is most likely a setup error: raised at once
        position: Any = None
        prepared = first = True
        while first or not ctx.stopping.is_set():  # the first attempt runs in any case
            first = False
            established = ctx.established
            try:
                if not prepared:
                    adapter.prepare(ctx)
                prepared = False
                if position is None:
                    position = self._start()
                    if position is None:
                        return
                nxt = adapter.stream(ctx, position)
                if nxt is None:
                    return
                position = nxt
                prepared = True
                continue
            except PositionLost as lost:
                self._lost(lost)  # raises under "fail"; else the next _start re-snapshots
                position = None
                prepared = True  # still connected: re-snapshot at once (a short gap)
            except RetriableError as exc:
                if ctx.stopping.is_set():
                    return
                if ctx.established != established:
                    self.retry.reset()  # it reconnected and ran: a fresh failure
                delay = self.retry.next_delay()
                if delay is None:
                    raise FatalError(
                        f"source {adapter.name}: giving up after {self.retry.max_attempts} "
                        f"attempts (retry_max_attempts): {exc}"
                    ) from exc
                if position is not None:
                    position = adapter.restart_position(ctx, position)
                ctx.log.warning(
                    "source %s: %s; retrying in %.1fs (attempt %d)",
                    adapter.name,
                    exc,
                    delay,
                    self.retry.attempt,
                )
                adapter.close()
                if ctx.stopping.wait(delay):
                    return

    def _stored(self) -> Any | None:
        """The newest known position: this process's confirmed one, else the stored one."""
        ctx, typ = self.ctx, self.adapter.offset_type
        safe = ctx.safe_offset()
        if isinstance(safe, typ):
            return safe
        raw = ctx.load_offset()
        return typ.from_dict(raw) if raw else None

    def _start(self) -> Any | None:
        """Decide between snapshot and stream; returns the stream's start (None: done)."""
        ctx, adapter, mode = self.ctx, self.adapter, self.mode
        if self.resnapshot:
            self.resnapshot = False  # a failure from here on resumes this new snapshot
            adapter.forget_position(ctx)
            return self._after_snapshot(self._snapshot(None))
        stored = self._stored()
        if stored is None:
            if mode == "never":
                position = adapter.position_now(ctx)
                ctx.emit([], position)
                ctx.checkpoint()
            else:
                position = self._snapshot(None)
        elif stored.snapshot is not None:
            if mode == "never":
                ctx.log.info(
                    "source %s: an unfinished snapshot is not continued (snapshot = never)",
                    adapter.name,
                )
                position = adapter.resume(ctx, stored.with_snapshot(None))
                ctx.emit([], position)
            else:
                position = self._snapshot(stored)
        else:
            if mode == "initial_only":
                ctx.log.info(
                    "source %s: snapshot already completed; nothing to do "
                    "(snapshot = initial_only)",
                    adapter.name,
                )
                return None
            position = adapter.resume(ctx, stored)
        return self._after_snapshot(position)

    def _after_snapshot(self, position: Any | None) -> Any | None:
        if position is None:
            return None
        if self.mode == "initial_only":
            self.drain()
            return None
        return position

    def _lost(self, lost: PositionLost) -> None:
        """One reaction to a lost position, the same for every kind."""
        adapter, ctx = self.adapter, self.ctx
        metrics.source_positions_lost.labels(source=adapter.name).inc()
        what = (
            f"source {adapter.name}: position lost: {lost.what}; changes made since then "
            "cannot be read from the server"
        )
        if self.on_lost != "resnapshot":
            # The adapter's own class (HistoryLost, ...) with the one message every kind gives.
            lost.args = (
                f'{what}. To recover: set on_position_lost = "resnapshot" on this source '
                '(or snapshot = "when_needed") to take a new snapshot and continue, or stop '
                f"the bridge, run `cdc-bridge resnapshot --source {adapter.name} --config "
                "<routes.toml>` and start it again" + (f". {lost.hint}" if lost.hint else ""),
            )
            raise lost from None
        ctx.log.warning("%s; taking a new snapshot (on_position_lost = resnapshot)", what)
        self.resnapshot = True

    # -- snapshot ---------------------------------------------------------------------------------

    def _snapshot(self, resume: Any | None) -> Any | None:
        """Read every table (continuing ``resume``'s cursor); the hand-off position, or None
        when stopped before the end."""
        ctx, adapter = self.ctx, self.adapter
        reader = adapter.open_snapshot(ctx, resume)
        try:
            hand_off = reader.hand_off.with_snapshot(None)
            cursor: SnapshotCursor = (
                resume.snapshot if resume is not None and resume.snapshot else SnapshotCursor()
            )
            # The snapshot is pending from here on: a crash must not look like a finished one.
            ctx.emit([], hand_off.with_snapshot(cursor))
            ctx.checkpoint()
            tables = list(reader.tables())
            todo = [t for t in tables if t not in cursor.done]
            if cursor.table in todo:  # the interrupted table first: its cursor stays valid
                todo.remove(cursor.table)
                todo.insert(0, cursor.table)
            self.snapshots += 1
            ctx.log.info(
                "source %s: snapshot of %d table(s) started%s",
                adapter.name,
                len(todo),
                " (resuming)" if not cursor.fresh else "",
            )
            done = self._read_tables(reader, hand_off, cursor, todo)
        finally:
            reader.close()
        if not done:
            self.drain()
            return None
        ctx.emit([], hand_off)
        ctx.checkpoint()
        rows = sum(p.rows for p in self.progress.values())
        ctx.log.info("source %s: snapshot finished (%d rows)", adapter.name, rows)
        return hand_off

    def _read_tables(
        self, reader: SnapshotReader, hand_off: Any, cursor: SnapshotCursor, todo: list[str]
    ) -> bool:
        """Emit every table's chunks one chunk behind, so the last row of a table (and of the
        snapshot) is known and marked before it is sent."""
        ctx, adapter = self.ctx, self.adapter
        publish = self.publish_reads
        fresh = cursor.fresh  # a resumed snapshot has no "first" row any more
        held: list[ChangeEvent] = []
        held_cursor = cursor
        limit = adapter.max_in_flight

        def emit(events: list[ChangeEvent], at: SnapshotCursor) -> None:
            ctx.backpressure(limit)
            ctx.emit(events if publish else [], hand_off.with_snapshot(at))
            ctx.maybe_checkpoint()

        for index, table in enumerate(todo):
            after = cursor.last_key if cursor.table == table else None
            prog = self.progress[table] = SnapshotProgress(table, reader.estimate(table))
            if after is not None:
                ctx.log.info("snapshot %s: resuming after key %s", table, after)
            # Debezium's "first table" is the first of the list, whether or not it has rows.
            first_mark = (
                SNAPSHOT_FIRST if fresh and index == 0 else SNAPSHOT_FIRST_IN_DATA_COLLECTION
            )
            table_first = True  # no row of this table read yet
            next_log = time.monotonic() + self.progress_interval_s
            for chunk in reader.read(table, after):
                if ctx.stopping.is_set():
                    break
                events = chunk.events
                if not events:
                    continue
                if table_first and after is None:
                    events[0].snapshot = first_mark
                table_first = False
                cursor = cursor.advanced(table, chunk.last_key, len(events))
                prog.rows += len(events)
                if held:
                    emit(held, held_cursor)
                held, held_cursor = events, cursor
                now = time.monotonic()
                if now >= next_log:
                    ctx.log.info("%s", prog.line())
                    next_log = now + self.progress_interval_s
            if ctx.stopping.is_set():
                if held:  # hand over what was read: the restart continues after it
                    emit(held, held_cursor)
                return False
            ctx.log.info("%s (done)", prog.line())
            cursor = cursor.finished(table)
            if held:
                if not table_first and held[-1].snapshot != SNAPSHOT_FIRST:
                    held[-1].snapshot = SNAPSHOT_LAST_IN_DATA_COLLECTION
                held_cursor = cursor
            else:
                emit([], cursor)
        if held:  # the very last row, even when it comes from an earlier table
            held[-1].snapshot = SNAPSHOT_LAST
            emit(held, held_cursor)
        return True

    def drain(self, timeout_s: float = 30.0) -> None:
        """Wait (bounded) for Kafka to confirm what was sent, then store the position."""
        ctx = self.ctx
        deadline = time.monotonic() + timeout_s
        while ctx.producer.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.checkpoint()


def effective_on_position_lost(cfg: Any) -> str:
    """``on_position_lost`` of a source config, defaulted from its snapshot mode."""
    if cfg.on_position_lost:
        return str(cfg.on_position_lost)
    return "resnapshot" if cfg.snapshot == "when_needed" else "fail"
