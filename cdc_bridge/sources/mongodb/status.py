"""``cdc-bridge status`` for a mongodb source: the oplog window and cluster time against the
saved resume point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdc_bridge.sources import incremental
from cdc_bridge.status import (
    AT_RISK,
    INACTIVE,
    LAGGING,
    LOST,
    OK,
    SourceStatus,
)

__all__ = ["probe"]


def probe(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    from pymongo import MongoClient

    st = SourceStatus(cfg.name, "mongodb")
    wait_ms = min(5000, int(cfg.server_selection_timeout_ms or 5000))
    client: Any = MongoClient(
        cfg.dsn.get_secret_value(), serverSelectionTimeoutMS=wait_ms, connect=True
    )
    try:
        hello = client.admin.command("hello")
        cluster = (hello.get("$clusterTime") or {}).get("clusterTime") or hello.get("operationTime")
        first = last = None
        try:
            oplog = client["local"]["oplog.rs"]
            first_doc = oplog.find({}, {"ts": 1}).sort("$natural", 1).limit(1).next()
            last_doc = oplog.find({}, {"ts": 1}).sort("$natural", -1).limit(1).next()
            first, last = first_doc["ts"], last_doc["ts"]
        except Exception as exc:  # no privilege on local, or not a replica set member
            st.detail = f"oplog not readable ({exc.__class__.__name__}); retention unknown"
    finally:
        client.close()
    if cluster is not None:
        st.head = f"cluster time {cluster.time}.{cluster.inc}"
    saved = (offset or {}).get("cluster_time")
    if not offset:
        st.snapshot = "not started"
        st.state = INACTIVE
        st.detail = st.detail or "no saved position (the source has not run yet)"
        return st
    st.snapshot = incremental.describe(dict(offset)) or (
        "running" if offset.get("snapshot") else "done"
    )
    if saved:
        st.saved_position = st.position = f"cluster time {saved['t']}.{saved['i']}"
        if cluster is not None:
            st.lag_seconds = float(max(0, cluster.time - int(saved["t"])))
            st.state = LAGGING if st.lag_seconds > 0 else OK
        if first is not None and last is not None:
            window = max(1, last.time - first.time)
            if int(saved["t"]) < first.time:
                st.state = LOST
                st.risk = "the saved resume point is older than the oplog: a new snapshot is needed"
            elif int(saved["t"]) - first.time < window * 0.1:
                st.state = AT_RISK
                st.risk = (
                    f"the saved resume point is in the oldest 10% of the oplog window "
                    f"({window} s): grow the oplog or catch up"
                )
    return st
