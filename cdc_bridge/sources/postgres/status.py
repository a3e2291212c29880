"""``cdc-bridge status`` for a postgres source: the slot (confirmed and restart LSNs against
the current WAL, ``wal_status``) and the saved position."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdc_bridge.sources import incremental
from cdc_bridge.status import (
    AT_RISK,
    INACTIVE,
    LOST,
    OK,
    SourceStatus,
    human_bytes,
)

__all__ = ["probe"]


def probe(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    import psycopg

    st = SourceStatus(cfg.name, "postgres")
    slot = cfg.slot
    with psycopg.connect(cfg.dsn.get_secret_value(), autocommit=True, connect_timeout=5) as conn:
        head = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        st.head = head[0] if head else None
        row = conn.execute(
            "SELECT active, confirmed_flush_lsn::text,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
            " wal_status, safe_wal_size"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
    if row is None:
        st.state = INACTIVE
        st.detail = f"no replication slot {slot!r} (created when the source first starts)"
        return st
    active, confirmed, lag, retained, wal_status, safe_size = row
    st.position = confirmed
    st.lag_bytes = None if lag is None else int(lag)
    st.retained_bytes = None if retained is None else int(retained)
    st.state = OK if active else INACTIVE
    st.detail = f"slot {slot} {'active' if active else 'inactive (no bridge streaming)'}"
    if wal_status == "lost":
        st.state = LOST
        st.risk = (
            f"slot {slot}: the WAL it needs was removed (max_slot_wal_keep_size); "
            'the source must take a new snapshot: with snapshot = "when_needed" (or '
            'on_position_lost = "resnapshot") it does so at its next start, otherwise stop the '
            f"bridge and run `cdc-bridge postgres drop-slot --source {cfg.name} --config "
            "<routes.toml>` before starting it"
        )
    elif wal_status == "unreserved":
        st.state = AT_RISK
        st.risk = f"slot {slot}: WAL beyond max_slot_wal_keep_size, removed at the next checkpoint"
    elif st.retained_bytes is not None and st.retained_bytes > warn_bytes:
        st.state = AT_RISK
        st.risk = (
            f"slot {slot} holds {human_bytes(st.retained_bytes)} of WAL (> {human_bytes(warn_bytes)}): "
            "the disk fills while the bridge is behind or stopped"
        )
        if safe_size is not None:
            st.risk += f"; {human_bytes(int(safe_size))} left before max_slot_wal_keep_size"
    if offset:
        st.saved_position = str(offset.get("lsn"))
        running = offset.get("snapshot") is not None or offset.get("snapshot_done") is False
        st.snapshot = "running" if running else "done"
        st.snapshot = incremental.describe(dict(offset)) or st.snapshot
    else:
        st.snapshot = "not started"
    return st
