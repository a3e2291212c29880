"""The watermark state machine of incremental snapshots (sources/incremental.py) against
the orderings a real database produces, with scripted hooks: which chunk rows may be emitted.

The orderings come from how commits become visible. A transaction's commit record can reach
the log (and the stream) before the transaction is visible to new snapshots: PostgreSQL
writes the commit record before it leaves the proc array, InnoDB writes the binlog before the
engine commit. So a change can arrive in the stream *before the low watermark* although the
chunk read after that watermark did not see it, or even before the chunk read itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdc_bridge.events import OP_READ, ChangeEvent, TableSchema
from cdc_bridge.sources.incremental import (
    SIGNAL_WINDOW_CLOSE,
    SIGNAL_WINDOW_OPEN,
    Chunk,
    IncrementalSnapshotter,
    IncrementalState,
)

TABLE = TableSchema(
    connector="postgresql",
    source_name="s",
    database="db",
    namespace="public",
    table="t",
    columns=(),
)


def _event(key: int, v: int) -> ChangeEvent:
    return ChangeEvent(TABLE, OP_READ, None, {"id": key, "v": v}, 0, {}, "incremental")


class ScriptedHooks:
    """Chunks of the table as a dict id -> version, read as the test sets it up."""

    def __init__(self, rows: dict[int, int]) -> None:
        self.rows = rows
        self.marks: list[tuple[str, str]] = []

    def read_chunk(self, table: str, after: Any, limit: int, where: str | None) -> Chunk:
        keys = sorted(k for k in self.rows if after is None or k > after[0])[:limit]
        return Chunk([_event(k, self.rows[k]) for k in keys], keys, [keys[-1]] if keys else None)

    def write_watermark(self, signal_id: str, kind: str, forget: Sequence[str]) -> None:
        self.marks.append((signal_id, kind))

    def estimate(self, table: str) -> int:
        return len(self.rows)


def _snapshotter(hooks: ScriptedHooks, chunk_size: int) -> IncrementalSnapshotter:
    return IncrementalSnapshotter(
        "s", hooks, IncrementalState(known=("public.t",)), chunk_size=chunk_size
    )


def _watermarks(hooks: ScriptedHooks) -> tuple[str, str]:
    (open_id, k1), (close_id, k2) = hooks.marks[-2:]
    assert (k1, k2) == (SIGNAL_WINDOW_OPEN, SIGNAL_WINDOW_CLOSE)
    return open_id, close_id


def _emitted(events: list[ChangeEvent]) -> dict[int, int]:
    return {e.after["id"]: e.after["v"] for e in events if e.after is not None}


def _window(
    snap: IncrementalSnapshotter,
    hooks: ScriptedHooks,
    before_open: tuple[int, ...] = (),
    after_open: tuple[int, ...] = (),
) -> dict[int, int]:
    """Stream one window: changes of ``before_open`` keys, the low watermark, changes of
    ``after_open`` keys, the high watermark; returns the chunk rows emitted there."""
    open_id, close_id = _watermarks(hooks)
    for key in before_open:
        snap.on_change(key)
    assert snap.on_signal(open_id, SIGNAL_WINDOW_OPEN, None) == []
    for key in after_open:
        snap.on_change(key)
    return _emitted(snap.on_signal(close_id, SIGNAL_WINDOW_CLOSE, None))


def test_the_first_window_of_a_table_reads_nothing_and_guards_the_first_chunk() -> None:
    hooks = ScriptedHooks({1: 0, 2: 0, 3: 0})
    snap = _snapshotter(hooks, 10)
    snap.request(["public.t"])
    # row 2 changed (and was published) while the first window was open; the read after it
    # still sees version 0 (the change is not visible to reads yet)
    assert _window(snap, hooks, after_open=(2,)) == {}
    assert _window(snap, hooks) == {1: 0, 3: 0}
    assert not snap.running and snap.state.rows == 2


def test_a_change_streamed_before_the_low_watermark_but_unseen_by_the_read_is_dropped() -> None:
    hooks = ScriptedHooks({1: 0, 2: 0, 3: 0})
    snap = _snapshotter(hooks, 10)
    snap.request(["public.t"])
    assert _window(snap, hooks) == {}  # the first window reads nothing
    # the chunk was read at the previous high watermark: row 2 at version 0. Row 2's update
    # (to version 1) committed before the low watermark in log order but was not yet visible
    # to the read: the stream delivers it before the low watermark
    assert _window(snap, hooks, before_open=(2,)) == {1: 0, 3: 0}


def test_a_change_streamed_in_the_previous_window_is_dropped_from_the_next_chunk() -> None:
    hooks = ScriptedHooks({1: 0, 2: 0, 3: 0, 4: 0})
    snap = _snapshotter(hooks, 2)
    snap.request(["public.t"])
    assert _window(snap, hooks) == {}
    # row 4's update was streamed (and published) during the first chunk's window, but the
    # second chunk is read before that update is visible to reads: it still holds version 0
    assert _window(snap, hooks, after_open=(4,)) == {1: 0, 2: 0}
    assert _window(snap, hooks) == {3: 0}
    assert _window(snap, hooks) == {}  # a full chunk: one more (empty) read ends the table
    assert not snap.running and snap.state.queue == ()


def test_unchanged_rows_are_all_emitted_once() -> None:
    hooks = ScriptedHooks({k: 0 for k in range(1, 8)})
    snap = _snapshotter(hooks, 3)
    snap.request(["public.t"])
    out: dict[int, int] = {}
    while snap.running:
        assert snap.on_signal("stale-close", SIGNAL_WINDOW_CLOSE, None) == []  # an older run's
        chunk = _window(snap, hooks)
        assert not set(chunk) & set(out)
        out.update(chunk)
    assert out == {k: 0 for k in range(1, 8)}
    assert snap.state.rows == 7
