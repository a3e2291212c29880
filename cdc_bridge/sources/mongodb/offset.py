"""``MongoOffset``: where a MongoDB source resumes (resume token, cluster time, snapshot progress)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bson import Timestamp

from cdc_bridge.sources.coordinator import SnapshotCursor
from cdc_bridge.sources.incremental import IncrementalState

__all__ = ["MongoOffset", "token_cluster_time"]


def token_cluster_time(token: Mapping[str, Any] | None) -> Timestamp | None:
    """The cluster time encoded at the start of a resume token's ``_data`` (4.2+ "v1" tokens).

    ``_data`` is hex of a KeyString: type byte ``0x82`` (timestamp) then 4 bytes seconds and
    4 bytes increment, big-endian. Returns None for shapes it does not know.
    """
    if not token:
        return None
    data = token.get("_data")
    if not isinstance(data, str) or len(data) < 18 or data[:2] != "82":
        return None
    try:
        return Timestamp(int(data[2:10], 16), int(data[10:18], 16))
    except ValueError:
        return None


@dataclass(slots=True)
class MongoOffset:
    """A position in the change stream, optionally with an unfinished snapshot.

    - ``resume_token``: the change stream resume token (``{"_data": "8263..."}``) after the last
      event Kafka confirmed; during a snapshot, the resume point noted before scanning.
    - ``cluster_time``: that token's cluster time (seconds, increment), for humans and lag.
    - ``start_after``: the token is an ``invalidate`` event's; reopen with ``start_after``.
    - ``snapshot``: while a snapshot runs, its cursor (namespaces done, the current one, the
      canonical Extended JSON of its last ``_id`` confirmed, rows); None once the snapshot has
      been handed off to streaming.
    - ``incremental``: the incremental snapshot's cursor and the collections captured so far
      (None: unknown, an offset of an older version).
    """

    resume_token: dict[str, Any] | None
    cluster_time: tuple[int, int] | None = None
    start_after: bool = False
    snapshot: SnapshotCursor | None = field(default=None)
    incremental: IncrementalState | None = None

    def with_snapshot(self, cursor: SnapshotCursor | None) -> MongoOffset:
        return replace(self, snapshot=cursor)

    @classmethod
    def at(cls, token: Mapping[str, Any] | None, **kw: Any) -> MongoOffset:
        ts = token_cluster_time(token)
        return cls(
            dict(token) if token is not None else None,
            (ts.time, ts.inc) if ts is not None else None,
            **kw,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resume_token": self.resume_token}
        if self.cluster_time is not None:
            out["cluster_time"] = {"t": self.cluster_time[0], "i": self.cluster_time[1]}
        if self.start_after:
            out["start_after"] = True
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot.to_dict()
        if self.incremental is not None:
            out["incremental"] = self.incremental.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MongoOffset:
        ct = data.get("cluster_time")
        token = data.get("resume_token")
        return cls(
            resume_token=dict(token) if token is not None else None,
            cluster_time=(int(ct["t"]), int(ct["i"])) if ct else None,
            start_after=bool(data.get("start_after", False)),
            # before the coordinator: {"done", "ns", "last_id", "rows"}, read by from_dict
            snapshot=SnapshotCursor.from_dict(raw)
            if (raw := data.get("snapshot")) is not None
            else None,
            incremental=IncrementalState.from_dict(inc)
            if (inc := data.get("incremental"))
            else None,
        )

    @property
    def snapshot_running(self) -> bool:
        return self.snapshot is not None

    def __str__(self) -> str:
        where = (
            f"cluster time {self.cluster_time[0]}.{self.cluster_time[1]}"
            if self.cluster_time
            else "no cluster time"
        )
        token = (self.resume_token or {}).get("_data", "-")
        return f"resume token {str(token)[:24]}... ({where})"
