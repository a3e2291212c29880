"""Incremental snapshots while streaming: the watermark algorithm of Netflix's DBLog as Debezium
implements it, written once for every adapter.

A table is read in key-ordered chunks *by the stream reader's thread*, between two watermarks
written through the stream (rows inserted into the source's signal table):

1. write the low watermark (``<chunk id>-open``, type ``snapshot-window-open``);
2. read the next chunk (rows after the last key, in key order) into a buffer keyed by key;
3. write the high watermark (``<chunk id>-close``, type ``snapshot-window-close``).

The stream then sees the low watermark, the changes committed while the chunk was read (each
one drops its key from the buffer: the stream carries a newer version), and the high
watermark: the rows left in the buffer are emitted there as ``op: r`` events with
``source.snapshot = "incremental"``, and the next chunk starts. A chunk row is therefore never
emitted after a newer change of its row.

Unlike DBLog's description, the window opens at the read, not at the low watermark, and the
rows changed in the previous window of the same table are dropped from the next chunk: a
commit reaches the log before it is visible to new reads (PostgreSQL writes the commit record
before the transaction leaves the proc array; InnoDB writes the binlog before the engine
commit), so a change can be streamed before the low watermark, or before the read, and still
be missing from the chunk. Dropping a row the read did see costs nothing: the stream carries
that version. So that the first chunk of a table has a window before it too, the first window
of a table (and of a run) reads nothing. The cursor (tables queued, last key, rows) travels in
the stream's offsets, so a restart continues at the chunk after the last one Kafka confirmed.

Adapters supply :class:`IncrementalHooks` (read a chunk after a key, write a watermark) and
call :meth:`IncrementalSnapshotter.on_signal` / :meth:`IncrementalSnapshotter.on_change` from
their stream reader; the stream reader checks one relation id (or table) per event.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from cdc_bridge import metrics
from cdc_bridge.events import ChangeEvent

__all__ = [
    "SIGNAL_EXECUTE",
    "SIGNAL_WINDOW_CLOSE",
    "SIGNAL_WINDOW_OPEN",
    "Chunk",
    "IncrementalHooks",
    "IncrementalSnapshotError",
    "IncrementalSnapshotter",
    "IncrementalState",
    "describe",
    "snapshot_request",
    "snapshot_signal",
]

log = logging.getLogger(__name__)

SIGNAL_EXECUTE = "execute-snapshot"
SIGNAL_WINDOW_OPEN = "snapshot-window-open"
SIGNAL_WINDOW_CLOSE = "snapshot-window-close"
SNAPSHOT_INCREMENTAL = "incremental"


class IncrementalSnapshotError(Exception):
    """Raised by a hook when the snapshot cannot go on (a bad ``--where``, no privilege on the
    signal table); the snapshot is abandoned with that message, the stream goes on."""


@dataclass(frozen=True, slots=True)
class IncrementalState:
    """Incremental snapshot state embedded in a stream offset.

    ``queue``: tables still to read (the first is being read), ``last_key``: key of the last row
    of the last chunk emitted from it (None: from its start), ``rows``: rows emitted so far,
    ``where``: extra conditions per table (``additional-conditions``), ``known``: the tables
    this source has captured so far (a configured table missing here is new: it gets an
    incremental snapshot).
    """

    queue: tuple[str, ...] = ()
    last_key: Any = None
    rows: int = 0
    where: tuple[tuple[str, str], ...] = ()
    known: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": list(self.queue),
            "last_key": self.last_key,
            "rows": self.rows,
            "where": dict(self.where),
            "known": list(self.known),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IncrementalState:
        return cls(
            tuple(d.get("queue") or ()),
            d.get("last_key"),
            int(d.get("rows") or 0),
            tuple(sorted((d.get("where") or {}).items())),
            tuple(d.get("known") or ()),
        )

    @property
    def table(self) -> str | None:
        return self.queue[0] if self.queue else None

    def condition(self, table: str) -> str | None:
        return dict(self.where).get(table)

    def requested(self, tables: Sequence[str], where: dict[str, str]) -> IncrementalState:
        queue = self.queue + tuple(t for t in tables if t not in self.queue)
        conds = dict(self.where)
        conds.update(where)
        known = self.known + tuple(t for t in tables if t not in self.known)
        return replace(self, queue=queue, where=tuple(sorted(conds.items())), known=known)

    def next_table(self) -> IncrementalState:
        done = self.queue[0]
        where = tuple((t, w) for t, w in self.where if t != done)
        return replace(self, queue=self.queue[1:], last_key=None, where=where)


def snapshot_request(data: str | None) -> tuple[list[str], dict[str, str]]:
    """Tables and conditions of an ``execute-snapshot`` signal's ``data`` (Debezium's JSON:
    ``{"data-collections": [...], "type": "incremental", "additional-conditions":
    [{"data-collection": "...", "filter": "..."}]}``; the older ``additional-condition`` string
    applies to every table)."""
    try:
        doc = orjson.loads(data or "{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"signal data is not JSON: {exc}") from exc
    kind = str(doc.get("type") or "incremental").lower()
    if kind != "incremental":
        raise ValueError(f"only incremental snapshots can be signalled, not {kind!r}")
    tables = [str(t) for t in doc.get("data-collections") or []]
    if not tables:
        raise ValueError("execute-snapshot names no data-collections")
    where: dict[str, str] = {}
    if doc.get("additional-condition"):
        where = {t: str(doc["additional-condition"]) for t in tables}
    for cond in doc.get("additional-conditions") or []:
        where[str(cond["data-collection"])] = str(cond["filter"])
    return tables, where


def snapshot_signal(tables: Sequence[str], where: str | None) -> str:
    """The ``data`` of an ``execute-snapshot`` signal in Debezium's JSON (what
    :func:`snapshot_request` reads back)."""
    data: dict[str, Any] = {"data-collections": list(tables), "type": "incremental"}
    if where:
        data["additional-conditions"] = [{"data-collection": t, "filter": where} for t in tables]
    return orjson.dumps(data).decode()


def describe(offset: dict[str, Any]) -> str | None:
    """One line for ``cdc-bridge status`` about the incremental snapshot of a stored offset
    (None when none is running)."""
    inc = offset.get("incremental") or {}
    queue = list(inc.get("queue") or ())
    if not queue:
        return None
    return (
        f"incremental: {queue[0]}, {inc.get('rows', 0)} rows confirmed"
        + (f", after key {inc['last_key']}" if inc.get("last_key") is not None else "")
        + (f"; then {', '.join(queue[1:])}" if len(queue) > 1 else "")
    )


@dataclass(slots=True)
class Chunk:
    """Rows of one chunk in key order: their events and keys (as the stream reader compares
    them), and the key to continue after (JSON-able)."""

    events: list[ChangeEvent]
    keys: list[Any]
    last_key: Any


class IncrementalHooks(Protocol):
    """What an adapter supplies."""

    def read_chunk(self, table: str, after: Any, limit: int, where: str | None) -> Chunk:
        """Up to ``limit`` rows of ``table`` after key ``after`` (None: from the start)."""
        ...

    def write_watermark(self, signal_id: str, kind: str, forget: Sequence[str]) -> None:
        """Insert a row (``signal_id``, ``kind``) into the signal table (committed at once),
        deleting the rows ``forget`` in the same transaction."""
        ...

    def estimate(self, table: str) -> int:
        """Estimated rows of a table (0: unknown)."""
        ...


@dataclass
class _Progress:
    table: str
    estimated: int
    rows: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        eta = ""
        if rate > 0 and self.estimated > self.rows:
            eta = f", ETA {(self.estimated - self.rows) / rate:,.0f}s"
        est = f"/~{self.estimated}" if self.estimated else ""
        return f"incremental snapshot {self.table}: {self.rows}{est} rows, {rate:,.0f} rows/s{eta}"

    def as_dict(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        eta = (
            (self.estimated - self.rows) / rate if rate > 0 and self.estimated > self.rows else None
        )
        return {
            "table": self.table,
            "incremental": True,
            "rows": self.rows,
            "estimated_rows": self.estimated,
            "rows_per_s": round(rate),
            "eta_s": round(eta, 1) if eta is not None else None,
        }


class IncrementalSnapshotter:
    """The watermark state machine of one stream reader (runs in its thread)."""

    def __init__(
        self,
        source: str,
        hooks: IncrementalHooks,
        state: IncrementalState,
        *,
        chunk_size: int,
        progress_interval_s: float = 5.0,
    ) -> None:
        self.source = source
        self.hooks = hooks
        self.state = state
        self.chunk_size = chunk_size
        self.window: str | None = None  # chunk id whose watermarks are awaited (window open)
        self.buffer: dict[Any, ChangeEvent] = {}
        self.changed: set[Any] = set()  # keys changed in the current window of the table
        self.primed: str | None = None  # the table whose first (read-less) window was taken
        self.chunk_last_key: Any = None
        self.chunk_full = False
        self.forget: list[str] = []
        self.progress: dict[str, _Progress] = {}
        self.progress_interval_s = progress_interval_s
        self._next_log = time.monotonic() + progress_interval_s
        self._rows_metric = metrics.source_incremental_snapshot_rows.labels(source=source)
        self._remaining = metrics.source_incremental_snapshot_remaining.labels(source=source)

    @property
    def running(self) -> bool:
        return self.window is not None

    # -- requests --------------------------------------------------------------------------------

    def request(self, tables: Sequence[str], where: dict[str, str] | None = None) -> None:
        """Queue tables (qualified names) for an incremental snapshot; starts when idle."""
        if not tables:
            return
        self.state = self.state.requested(tables, where or {})
        log.info(
            "source %s: incremental snapshot of %s requested%s",
            self.source,
            ", ".join(tables),
            f" (conditions {where})" if where else "",
        )
        if self.window is None:
            self.next_chunk()

    def next_chunk(self) -> None:
        """Write the low watermark, read the chunk, write the high watermark."""
        try:
            self._next_chunk()
        except IncrementalSnapshotError as exc:
            log.error(
                "source %s: incremental snapshot of %s abandoned: %s",
                self.source,
                ", ".join(self.state.queue),
                exc,
            )
            self.state = replace(self.state, queue=(), last_key=None, where=())
            self.window = None
            self.buffer = {}
            self.changed = set()
            self.primed = None
            self._remaining.set(0)

    def _next_chunk(self) -> None:
        while self.state.queue:
            table = self.state.queue[0]
            if table not in self.progress:
                self.progress[table] = _Progress(table, self.hooks.estimate(table))
            chunk_id = uuid.uuid4().hex[:32]
            self.hooks.write_watermark(f"{chunk_id}-open", SIGNAL_WINDOW_OPEN, self.forget)
            if self.primed != table:
                # The first window of a table (or of a run) reads nothing: it only collects the
                # rows changed until its high watermark, which the first chunk then leaves out,
                # as every later chunk leaves out the rows changed in the window before it.
                self.primed = table
                chunk = Chunk([], [], self.state.last_key)
                full = True
            else:
                chunk = self.hooks.read_chunk(
                    table, self.state.last_key, self.chunk_size, self.state.condition(table)
                )
                full = len(chunk.events) >= self.chunk_size and chunk.last_key is not None
            self.buffer = dict(zip(chunk.keys, chunk.events, strict=True))
            # Rows changed in the previous window of this table: the stream may have carried
            # a change before the read could see it (a commit reaches the log before it is
            # visible to new reads), so the chunk's copy may be older than what was published.
            for key in self.changed:
                self.buffer.pop(key, None)
            self.changed = set()
            self.chunk_last_key = chunk.last_key
            self.chunk_full = full
            # The window is open from the read on, not only from the low watermark: a change
            # streamed before the low watermark may still be newer than the chunk (same reason).
            # Dropping a row the read did see is harmless: the stream carries that version.
            self.window = chunk_id
            self.forget = [f"{chunk_id}-open", f"{chunk_id}-close"]
            self.hooks.write_watermark(f"{chunk_id}-close", SIGNAL_WINDOW_CLOSE, ())
            return
        self.window = None

    def resume(self, captured: Sequence[str]) -> None:
        """At the start of a stream: continue a pending snapshot at the chunk after the last
        one Kafka confirmed, and queue the captured tables new since the last run."""
        state = self.state
        new = [t for t in captured if t not in state.known]
        if state.queue:
            log.info(
                "source %s: continuing the incremental snapshot of %s after key %s",
                self.source,
                state.queue[0],
                state.last_key,
            )
            self.next_chunk()
        if new:
            log.info(
                "source %s: table(s) %s added since the last run: snapshotting them "
                "incrementally while streaming",
                self.source,
                ", ".join(new),
            )
        self.request(new)

    # -- called by the stream reader ---------------------------------------------------------------

    def on_signal(self, signal_id: str, kind: str, data: str | None) -> list[ChangeEvent]:
        """A row inserted into the signal table; returns events to emit at this point."""
        if kind == SIGNAL_WINDOW_OPEN:
            return []  # the window opened at the read (see _next_chunk)
        if kind == SIGNAL_WINDOW_CLOSE:
            if self.window is None or signal_id != f"{self.window}-close":
                return []  # a watermark of an earlier run (replayed after a restart)
            return self._close()
        if kind == SIGNAL_EXECUTE:
            try:
                tables, where = snapshot_request(data)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("source %s: ignoring signal %s: %s", self.source, signal_id, exc)
                return []
            self.request(tables, where)
            return []
        log.info("source %s: ignoring signal %s of type %r", self.source, signal_id, kind)
        return []

    def on_change(self, key: Any) -> None:
        """A streamed change of the table being read: its row in the open chunk is stale, and
        so is its row in the next chunk of the table if that one is read too early to see it."""
        if self.window is not None:
            self.buffer.pop(key, None)
            self.changed.add(key)

    def watching(self) -> str | None:
        """The table whose streamed changes must be passed to :meth:`on_change`."""
        return self.state.table if self.window is not None else None

    def _close(self) -> list[ChangeEvent]:
        events = list(self.buffer.values())
        self.buffer = {}
        state = self.state
        table = state.queue[0]
        prog = self.progress[table]
        prog.rows += len(events)
        self._rows_metric.inc(len(events))
        if self.chunk_full:
            self.state = replace(state, last_key=self.chunk_last_key, rows=state.rows + len(events))
        else:
            self.state = replace(state.next_table(), rows=state.rows + len(events))
            self.changed = set()  # keys of that table
            self.primed = None
            log.info("source %s: %s (done)", self.source, prog.line())
        self._remaining.set(max(0, prog.estimated - prog.rows) if self.state.queue else 0)
        now = time.monotonic()
        if now >= self._next_log and self.state.queue:
            log.info("source %s: %s", self.source, prog.line())
            self._next_log = now + self.progress_interval_s
        self.window = None
        self.next_chunk()
        if self.window is None:
            log.info("source %s: incremental snapshot finished", self.source)
        return events

    def status(self) -> dict[str, Any]:
        return {t: p.as_dict() for t, p in self.progress.items()}
