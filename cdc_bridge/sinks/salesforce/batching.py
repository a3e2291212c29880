"""Batch planning: collapse changes per key to the last state, group, chunk, pick the API.

Pure functions and a small state machine, no I/O: the sink hands in mapped operations with
their batch indexes and gets back what to send. Collapsing is what makes the API economy: a
row updated ten times in a batch costs one record in one call, and every index of that key
shares the outcome of that record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from cdc_bridge.sinks.salesforce.mapping import DELETE, UPSERT, SfOp

__all__ = [
    "COLLECTIONS_MAX",
    "Collapsed",
    "ModeSwitch",
    "Plan",
    "chunks",
    "collapse",
    "order_by_parents",
]

log = logging.getLogger(__name__)

COLLECTIONS_MAX = 200  # records per sObject Collections call (Salesforce's limit)


@dataclass(slots=True)
class Collapsed:
    """The last operation of one key in a batch, and every batch index it stands for."""

    op: SfOp
    indexes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """What one batch becomes: upserts and deletes, each collapsed per external-ID value."""

    upserts: list[Collapsed]
    deletes: list[Collapsed]

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


def collapse(ops: Iterable[tuple[int, SfOp]], *, fold_case: bool = False) -> Plan:
    """Collapse per external-ID value to the last operation, in first-seen key order.

    ``fold_case``: external IDs that differ only in case are one key (Salesforce matches
    external IDs case-insensitively unless the field is case-sensitive).

    An upsert after a delete of the same key is just the upsert (the record is re-created or
    updated); a delete after upserts is just the delete. Upserts of one key are merged field
    by field, so a later change that leaves a column out (a MongoDB partial update, a TOASTed
    value the route skipped) does not lose an earlier change's value.
    """
    last: dict[str, Collapsed] = {}
    for index, op in ops:
        key = op.ext_value.lower() if fold_case else op.ext_value
        cur = last.get(key)
        if cur is None:
            last[key] = Collapsed(op, [index])
            continue
        cur.indexes.append(index)
        if op.kind == UPSERT and cur.op.kind == UPSERT:
            cur.op = SfOp(UPSERT, op.ext_value, {**cur.op.values, **op.values})
        else:
            cur.op = op
    upserts = [c for c in last.values() if c.op.kind == UPSERT]
    deletes = [c for c in last.values() if c.op.kind == DELETE]
    return Plan(upserts, deletes)


def chunks(
    items: Sequence[Collapsed], size: int = COLLECTIONS_MAX
) -> Iterator[Sequence[Collapsed]]:
    """Slices of at most ``size`` items (one Collections call each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def order_by_parents(deps: dict[str, set[str]]) -> list[str]:
    """SObjects ordered parents first (``deps``: sobject -> sobjects it looks up).

    Cycles (self-lookups, mutual lookups) are broken in declaration order.
    """
    out: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) is not None:
            return
        state[name] = 0
        for parent in sorted(deps.get(name, ())):
            if parent in deps and state.get(parent) is None:
                visit(parent)
        state[name] = 1
        out.append(name)

    for name in deps:
        visit(name)
    return out


class ModeSwitch:
    """Collections or Bulk API 2.0, with hysteresis so a borderline backlog does not flap.

    Enters bulk when a batch (after collapsing) reaches ``enter``; leaves it when a batch is
    below ``leave``. ``forced`` pins one mode.
    """

    def __init__(self, enter: int, leave: int, forced: str | None = None, name: str = "") -> None:
        self.enter = enter
        self.leave = leave
        self.forced = forced
        self.name = name
        self.bulk = forced == "bulk"

    def choose(self, size: int, backlog: int | None = None) -> bool:
        """True: send this batch as a Bulk API 2.0 job."""
        if self.forced is not None:
            return self.forced == "bulk"
        pending = max(size, backlog or 0)
        if not self.bulk and pending >= self.enter:
            self.bulk = True
            log.info(
                "salesforce %s: backlog of %d records >= %d: switching to Bulk API 2.0 jobs",
                self.name,
                pending,
                self.enter,
            )
        elif self.bulk and pending < self.leave:
            self.bulk = False
            log.info(
                "salesforce %s: caught up (%d records < %d): back to sObject Collections",
                self.name,
                pending,
                self.leave,
            )
        # A small remainder is cheaper through Collections even while in bulk mode.
        return self.bulk and size > COLLECTIONS_MAX * 3
