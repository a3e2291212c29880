"""``cdc-bridge status`` for a salesforce source: the saved replay ids and how close the last
seen commit is to the end of Salesforce's 72-hour event retention."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cdc_bridge.status import AT_RISK, INACTIVE, LAGGING, LOST, OK, SourceStatus

__all__ = ["RETENTION_S", "probe"]

RETENTION_S = 72 * 3600


def probe(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    """Offline: judged from the saved offset (replay ids are opaque; commit times are not)."""
    st = SourceStatus(cfg.name, "salesforce")
    if not offset:
        st.snapshot = "not started"
        st.state = INACTIVE
        st.detail = "no saved position (the source has not run yet)"
        return st
    st.snapshot = "running" if offset.get("snapshot") else "done"
    replay = offset.get("replay") or {}
    st.saved_position = st.position = (
        ", ".join(f"{ch}@{rid}" for ch, rid in sorted(replay.items())) or "latest (no replay ids)"
    )
    commits = [int(v) for v in (offset.get("commit_ms") or {}).values()]
    if not commits:
        st.state = OK
        return st
    oldest = min(commits) / 1000
    age = max(0.0, time.time() - max(commits) / 1000)
    st.lag_seconds = round(age, 1)
    st.state = LAGGING if age > 60 else OK
    st.detail = f"last change seen {age:,.0f} s ago"
    if time.time() - oldest > RETENTION_S:
        st.state = LOST
        st.risk = (
            "the saved replay ids are older than Salesforce's 72-hour retention: the next start "
            "applies on_position_lost"
        )
    elif time.time() - oldest > RETENTION_S * 0.8:
        st.state = AT_RISK
        st.risk = "the saved replay ids are close to the end of the 72-hour retention window"
    return st
