"""``SalesforceOffset``: where a Salesforce source resumes (replay id per channel).

Each Pub/Sub channel (``/data/AccountChangeEvent``, ``/event/Order_Placed__e``) has its own
replay ids; the offset keeps the last one Kafka confirmed for every channel, the last commit
time seen per object (where an overflow re-read starts), and, after a snapshot or on a first
start, ``catch_up_ms``: the time from which records must be re-read once the subscriptions are
in place (Salesforce has no "current replay id" to note before a snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cdc_bridge.sources.coordinator import SnapshotCursor

__all__ = ["SalesforceOffset"]


@dataclass(frozen=True, slots=True)
class SalesforceOffset:
    """``replay``: channel -> replay id (hex); ``commit_ms``: object -> last commitTimestamp.

    ``catch_up_ms``: re-read records modified since then when streaming starts (set by a
    snapshot's hand-off; cleared once done). ``snapshot``: the cursor of an unfinished
    snapshot, None once streaming.
    """

    replay: dict[str, str] = field(default_factory=dict)
    commit_ms: dict[str, int] = field(default_factory=dict)
    catch_up_ms: int | None = None
    snapshot: SnapshotCursor | None = None

    def with_snapshot(self, cursor: SnapshotCursor | None) -> SalesforceOffset:
        return replace(self, snapshot=cursor)

    def advanced(
        self, replay: dict[str, str], commit_ms: dict[str, int], catch_up_ms: int | None = None
    ) -> SalesforceOffset:
        return SalesforceOffset(dict(replay), dict(commit_ms), catch_up_ms, self.snapshot)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replay": dict(self.replay), "commit_ms": dict(self.commit_ms)}
        if self.catch_up_ms is not None:
            out["catch_up_ms"] = self.catch_up_ms
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SalesforceOffset:
        snap = data.get("snapshot")
        catch = data.get("catch_up_ms")
        return cls(
            {str(k): str(v) for k, v in (data.get("replay") or {}).items()},
            {str(k): int(v) for k, v in (data.get("commit_ms") or {}).items()},
            int(catch) if catch is not None else None,
            SnapshotCursor.from_dict(snap) if snap else None,
        )

    def __str__(self) -> str:
        parts = [f"{ch}@{rid}" for ch, rid in sorted(self.replay.items())]
        text = "replay " + (", ".join(parts) if parts else "(latest)")
        if self.catch_up_ms is not None:
            text += f", catching up since {self.catch_up_ms} ms"
        return text
