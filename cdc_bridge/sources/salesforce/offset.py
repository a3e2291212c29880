"""``SalesforceOffset``: where a Salesforce source resumes (replay id per channel).

Each Pub/Sub channel (``/data/AccountChangeEvent``, ``/event/Order_Placed__e``) has its own
replay ids; the offset keeps the last one Kafka confirmed for every channel, the last commit
time seen per object (the start of an overflow re-read), and whether a snapshot is running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SalesforceOffset"]


@dataclass(slots=True)
class SalesforceOffset:
    """``replay``: channel -> replay id (hex); ``commit_ms``: object -> last commitTimestamp.

    ``snapshot``: None once streaming; ``{"done": [objects]}`` while a snapshot runs.
    """

    replay: dict[str, str] = field(default_factory=dict)
    commit_ms: dict[str, int] = field(default_factory=dict)
    snapshot: dict[str, Any] | None = None

    def copy(self) -> SalesforceOffset:
        return SalesforceOffset(
            dict(self.replay),
            dict(self.commit_ms),
            None if self.snapshot is None else {**self.snapshot},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replay": dict(self.replay), "commit_ms": dict(self.commit_ms)}
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SalesforceOffset:
        return cls(
            {str(k): str(v) for k, v in (data.get("replay") or {}).items()},
            {str(k): int(v) for k, v in (data.get("commit_ms") or {}).items()},
            data.get("snapshot"),
        )

    def __str__(self) -> str:
        parts = [f"{ch}@{rid}" for ch, rid in sorted(self.replay.items())]
        return "replay " + (", ".join(parts) if parts else "(none)")
