"""``cdc-bridge status`` for a mysql source: the server's binlogs against the saved position."""

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
    UNREACHABLE,
    SourceStatus,
    human_bytes,
)

__all__ = ["binlog_lag", "probe"]


def binlog_lag(
    logs: list[tuple[str, int]], file: str, pos: int, head: tuple[str, int]
) -> int | None:
    """Bytes from ``file:pos`` to ``head`` over the server's binlogs; None if ``file`` is gone."""
    names = [name for name, _ in logs]
    if file not in names:
        return None
    if file == head[0]:
        return max(0, head[1] - pos)
    total = 0
    started = False
    for name, size in logs:
        if name == file:
            started = True
            total += max(0, size - pos)
        elif name == head[0]:
            total += head[1]
            break
        elif started:
            total += size
    return total


def probe(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    import pymysql

    st = SourceStatus(cfg.name, "mysql")
    args = dict(cfg.connect_args())
    args.pop("database", None)
    conn = pymysql.connect(**args, connect_timeout=5, autocommit=True)
    try:
        cur = conn.cursor()
        mariadb = "mariadb" in conn.get_server_info().lower()
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4+
            cur.execute("SHOW BINARY LOG STATUS")
        master = cur.fetchone()
        if master is None:
            st.state = UNREACHABLE
            st.detail = "binary logging is off (log_bin); the source cannot stream"
            return st
        head = (str(master[0]), int(master[1]))
        cur.execute("SHOW BINARY LOGS")
        logs = [(str(r[0]), int(r[1])) for r in cur.fetchall()]
        cur.execute("SELECT @@gtid_binlog_pos" if mariadb else "SELECT @@global.gtid_executed")
        gtid_row = cur.fetchone()
    finally:
        conn.close()
    gtids = (gtid_row[0] or "").replace("\n", "") if gtid_row else ""
    st.head = f"{head[0]}:{head[1]}" + (f" gtids {gtids}" if gtids else "")
    if not offset:
        st.snapshot = "not started"
        st.state = INACTIVE
        st.detail = "no saved position (the source has not run yet)"
        return st
    file, pos = str(offset.get("file")), int(offset.get("pos", 0))
    st.saved_position = f"{file}:{pos}" + (
        f" gtids {offset['gtids']}" if offset.get("gtids") else ""
    )
    st.position = st.saved_position
    st.snapshot = incremental.describe(dict(offset)) or (
        "running" if offset.get("snapshot") else "done"
    )
    st.lag_bytes = binlog_lag(logs, file, pos, head)
    names = [n for n, _ in logs]
    if st.lag_bytes is None:
        st.state = LOST
        st.risk = (
            f"binlog {file} of the saved position was purged: the source needs a new snapshot "
            '(snapshot = "when_needed")'
        )
        return st
    st.retained_bytes = sum(size for name, size in logs[names.index(file) :])
    st.state = LAGGING if st.lag_bytes > 0 else OK
    if names and names[0] == file and len(names) > 1:
        st.state = AT_RISK
        st.risk = f"the saved position is in the oldest binlog ({file}): the next purge removes it"
    elif st.retained_bytes > warn_bytes:
        st.risk = f"{human_bytes(st.retained_bytes)} of binlog from the saved position on"
    return st
