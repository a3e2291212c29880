"""``MySqlOffset``: where to resume the binlog (GTID set or file+pos, plus events/rows to skip)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc_bridge.sources.coordinator import SnapshotCursor
from cdc_bridge.sources.incremental import IncrementalState

__all__ = ["GtidTracker", "MySqlOffset"]


@dataclass(frozen=True, slots=True)
class MySqlOffset:
    """A resume point at a transaction start, as Debezium's MySQL offset.

    ``file``/``pos``: the binlog coordinates of the first event of the transaction to (re)read.
    ``gtids``: the GTID state *before* that transaction (MySQL executed set or MariaDB
    ``domain-server-seq`` list), used instead of file/pos when set.
    ``events``/``row``: row events of that transaction already delivered, and rows of the
    next row event already delivered; resuming skips exactly those. ``snapshot``: the cursor
    of an unfinished snapshot taken at this position (None once streaming took over).
    """

    file: str
    pos: int
    gtids: str | None = None
    events: int = 0
    row: int = 0
    snapshot: SnapshotCursor | None = None
    #: the incremental snapshot's cursor and the tables captured so far (None: unknown)
    incremental: IncrementalState | None = None

    def with_snapshot(self, cursor: SnapshotCursor | None) -> MySqlOffset:
        return MySqlOffset(
            self.file, self.pos, self.gtids, self.events, self.row, cursor, self.incremental
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "pos": self.pos}
        if self.gtids is not None:
            d["gtids"] = self.gtids
        if self.events:
            d["event"] = self.events
        if self.row:
            d["row"] = self.row
        if self.snapshot is not None:
            d["snapshot"] = self.snapshot.to_dict()
        if self.incremental is not None:
            d["incremental"] = self.incremental.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MySqlOffset:
        """Reads this shape and the one stored before the coordinator (``"snapshot": true``
        with ``snapshot_done`` / ``snapshot_table`` / ``snapshot_after``)."""
        raw = d.get("snapshot")
        cursor: SnapshotCursor | None = None
        if raw is True:
            table = d.get("snapshot_table")
            cursor = SnapshotCursor(
                tuple(d.get("snapshot_done") or ()),
                table,
                d.get("snapshot_after") if table else None,
            )
        elif isinstance(raw, dict):
            cursor = SnapshotCursor.from_dict(raw)
        return cls(
            file=str(d["file"]),
            pos=int(d["pos"]),
            gtids=d.get("gtids"),
            events=int(d.get("event", 0)),
            row=int(d.get("row", 0)),
            snapshot=cursor,
            incremental=IncrementalState.from_dict(d["incremental"])
            if d.get("incremental")
            else None,
        )


class GtidTracker:
    """The GTID position while streaming: O(1) per transaction, rendered only when stored."""

    __slots__ = ("_base", "_dirty", "_domains", "_mariadb", "_pending")

    def __init__(self, state: str | None, mariadb: bool) -> None:
        self._mariadb = mariadb
        self._base = state or None
        self._dirty = False
        self._pending: list[str] = []
        self._domains: dict[int, str] = {}
        if mariadb:
            for part in (state or "").split(","):
                part = part.strip()
                if part:
                    self._domains[int(part.split("-", 1)[0])] = part

    def add(self, gtid: str) -> None:
        """Record that the transaction ``gtid`` committed."""
        if self._mariadb:
            self._domains[int(gtid[: gtid.index("-")])] = gtid
        else:
            self._pending.append(gtid)
        self._dirty = True

    def state(self) -> str | None:
        """The position as MariaDB's ``domain-server-seq`` list or MySQL's GTID set text."""
        if self._dirty:
            if self._mariadb:
                self._base = ",".join(self._domains[d] for d in sorted(self._domains))
            else:
                from pymysqlreplication.gtid import Gtid, GtidSet

                gset = GtidSet(self._base or "")
                for g in self._pending:
                    gset.merge_gtid(Gtid(g))
                self._pending.clear()
                self._base = str(gset)
            self._dirty = False
        return self._base
