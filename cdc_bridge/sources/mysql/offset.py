"""``MySqlOffset``: where to resume the binlog (GTID set or file+pos, plus events/rows to skip)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GtidTracker", "MySqlOffset", "merge_mariadb_gtid"]


@dataclass(frozen=True, slots=True)
class MySqlOffset:
    """A resume point at a transaction start, as Debezium's MySQL offset.

    ``file``/``pos``: the binlog coordinates of the first event of the transaction to (re)read.
    ``gtids``: the GTID state *before* that transaction (MySQL executed set or MariaDB
    ``domain-server-seq`` list), used instead of file/pos when set.
    ``events``/``row``: row events of that transaction already delivered, and rows of the
    next row event already delivered; resuming skips exactly those. ``snapshot`` marks a
    position taken by an unfinished snapshot (``snapshot_done`` lists finished tables).
    """

    file: str
    pos: int
    gtids: str | None = None
    events: int = 0
    row: int = 0
    snapshot: bool = False
    snapshot_done: tuple[str, ...] = ()
    snapshot_table: str | None = None
    snapshot_after: Any = None  # last primary key emitted in snapshot_table

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "pos": self.pos}
        if self.gtids is not None:
            d["gtids"] = self.gtids
        if self.events:
            d["event"] = self.events
        if self.row:
            d["row"] = self.row
        if self.snapshot:
            d["snapshot"] = True
            d["snapshot_done"] = list(self.snapshot_done)
            if self.snapshot_table is not None:
                d["snapshot_table"] = self.snapshot_table
                d["snapshot_after"] = self.snapshot_after
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MySqlOffset:
        return cls(
            file=str(d["file"]),
            pos=int(d["pos"]),
            gtids=d.get("gtids"),
            events=int(d.get("event", 0)),
            row=int(d.get("row", 0)),
            snapshot=bool(d.get("snapshot", False)),
            snapshot_done=tuple(d.get("snapshot_done", ())),
            snapshot_table=d.get("snapshot_table"),
            snapshot_after=d.get("snapshot_after"),
        )


def merge_mariadb_gtid(state: str, gtid: str) -> str:
    """MariaDB GTID position ``state`` with ``gtid`` (``domain-server-seq``) applied.

    A MariaDB position holds the last GTID per replication domain.
    """
    domain = gtid.split("-", 1)[0]
    parts = [p for p in (s.strip() for s in state.split(",")) if p]
    parts = [p for p in parts if p.split("-", 1)[0] != domain]
    parts.append(gtid)
    parts.sort(key=lambda p: int(p.split("-", 1)[0]))
    return ",".join(parts)


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
