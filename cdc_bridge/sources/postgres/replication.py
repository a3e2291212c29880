"""Postgres streaming replication protocol client (psycopg 3, ``replication=database``)."""

from __future__ import annotations

import select
import struct
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from cdc_bridge.sources.postgres.lsn import LSN
from cdc_bridge.sources.postgres.pgoutput import PG_EPOCH_US

__all__ = [
    "Keepalive",
    "ReplicationConnection",
    "ReplicationStreamEnded",
    "SlotInfo",
    "SystemInfo",
    "XLogData",
    "quote_ident",
    "quote_literal",
]

_XLOG_HEAD: Final = struct.Struct(">QQq")
_KEEPALIVE: Final = struct.Struct(">QqB")
_STATUS: Final = struct.Struct(">cQQQqB")


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (replication commands take no bind parameters)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class SystemInfo:
    systemid: str
    timeline: int
    xlogpos: LSN
    dbname: str | None


@dataclass(frozen=True, slots=True)
class SlotInfo:
    slot_name: str
    consistent_point: LSN
    snapshot_name: str | None
    output_plugin: str | None


@dataclass(slots=True)
class XLogData:
    """One 'w' message: a chunk of decoded WAL (one pgoutput message)."""

    data_start: int  # LSNs as plain ints on the hot path
    wal_end: int
    send_time: int  # µs since 2000-01-01, server clock
    payload: bytes


@dataclass(slots=True)
class Keepalive:
    """One 'k' message: the server's WAL end; ``reply_requested`` has already been answered."""

    wal_end: LSN
    send_time: int
    reply_requested: bool


class ReplicationStreamEnded(Exception):
    """The server ended the CopyBoth stream (e.g. it shut down or the slot was dropped)."""


def _now_pg_us() -> int:
    return int(time.time() * 1_000_000) - PG_EPOCH_US


class ReplicationConnection:
    """A ``replication=database`` connection: slot commands and the logical CopyBoth stream.

    Feedback discipline: ``written`` follows what was received, ``flushed``/``applied`` follow only
    what the caller marks durable with :meth:`set_flushed` — the slot never moves past that.
    """

    def __init__(
        self, conninfo: str, *, application_name: str = "cdc-bridge", **kwargs: Any
    ) -> None:
        self.conn = psycopg.Connection.connect(
            conninfo,
            replication="database",
            autocommit=True,
            application_name=application_name,
            **kwargs,
        )
        self.pgconn = self.conn.pgconn
        self.received = 0
        self.flushed = 0
        self.streaming = False
        self.last_status_sent = 0.0

    # -- commands -------------------------------------------------------------------------------

    def _exec(self, sql: str) -> pq.abc.PGresult:
        res = self.pgconn.exec_(sql.encode())
        if res.status in (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.BAD_RESPONSE):
            raise pg_errors.error_from_result(res, encoding="utf-8")
        return res

    @staticmethod
    def _row(res: pq.abc.PGresult) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for i in range(res.nfields):
            name = (res.fname(i) or b"").decode()
            v = res.get_value(0, i) if res.ntuples else None
            out[name] = v.decode() if v is not None else None
        return out

    def identify_system(self) -> SystemInfo:
        row = self._row(self._exec("IDENTIFY_SYSTEM"))
        return SystemInfo(
            systemid=row["systemid"] or "",
            timeline=int(row["timeline"] or 0),
            xlogpos=LSN.parse(row["xlogpos"] or "0/0"),
            dbname=row.get("dbname"),
        )

    def show(self, setting: str) -> str:
        row = self._row(self._exec(f"SHOW {setting}"))
        return next(iter(row.values())) or ""

    def create_slot(
        self,
        name: str,
        *,
        plugin: str = "pgoutput",
        snapshot: Literal["export", "use", "nothing"] = "nothing",
        temporary: bool = False,
    ) -> SlotInfo:
        """CREATE_REPLICATION_SLOT; with ``export`` the snapshot stays valid until the next
        command on this connection, so read it (``SET TRANSACTION SNAPSHOT``) before streaming."""
        snap = {"export": "EXPORT_SNAPSHOT", "use": "USE_SNAPSHOT", "nothing": "NOEXPORT_SNAPSHOT"}
        temp = " TEMPORARY" if temporary else ""
        row = self._row(
            self._exec(
                f"CREATE_REPLICATION_SLOT {quote_ident(name)}{temp} LOGICAL {plugin} {snap[snapshot]}"
            )
        )
        return SlotInfo(
            slot_name=row["slot_name"] or name,
            consistent_point=LSN.parse(row["consistent_point"] or "0/0"),
            snapshot_name=row.get("snapshot_name"),
            output_plugin=row.get("output_plugin"),
        )

    def drop_slot(self, name: str, *, wait: bool = False) -> None:
        self._exec(f"DROP_REPLICATION_SLOT {quote_ident(name)}{' WAIT' if wait else ''}")

    # -- streaming ------------------------------------------------------------------------------

    def start_replication(
        self,
        slot: str,
        start_lsn: LSN | int = 0,
        *,
        publications: list[str],
        proto_version: int = 1,
        messages: bool = True,
        streaming: bool = False,
    ) -> None:
        """START_REPLICATION SLOT ... LOGICAL; afterwards use :meth:`read` and :meth:`send_status`."""
        opts = [
            f"proto_version '{int(proto_version)}'",
            f"publication_names {quote_literal(','.join(quote_ident(p) for p in publications))}",
        ]
        if messages:
            opts.append("messages 'true'")
        if streaming and proto_version >= 2:
            opts.append("streaming 'true'")
        sql = f"START_REPLICATION SLOT {quote_ident(slot)} LOGICAL {LSN(start_lsn)} ({', '.join(opts)})"
        res = self.pgconn.exec_(sql.encode())
        if res.status != pq.ExecStatus.COPY_BOTH:
            raise pg_errors.error_from_result(res, encoding="utf-8")
        self.pgconn.nonblocking = 1
        self.streaming = True
        self.received = max(self.received, int(start_lsn))
        self.flushed = max(self.flushed, int(start_lsn))

    def read(self, timeout: float) -> XLogData | Keepalive | None:
        """Next message from the stream, or None after ``timeout`` seconds without one.

        Keepalives that ask for a reply are answered here, at once, with the current positions.
        """
        pgconn = self.pgconn
        deadline: float | None = None
        while True:
            nbytes, data = pgconn.get_copy_data(1)
            if nbytes > 0:
                kind = data[0]
                if kind == 119:  # 'w'
                    start, end, ts = _XLOG_HEAD.unpack_from(data, 1)
                    if end > self.received:
                        self.received = end
                    return XLogData(start, end, ts, bytes(data[25:]))
                if kind == 107:  # 'k'
                    end, ts, reply = _KEEPALIVE.unpack_from(data, 1)
                    if reply:
                        self.send_status(reply=False)
                    return Keepalive(LSN(end), ts, bool(reply))
                continue  # unknown message kinds are ignored, as the protocol allows
            if nbytes == -1:
                res = pgconn.get_result()
                self.streaming = False
                if res is not None and res.status == pq.ExecStatus.FATAL_ERROR:
                    raise pg_errors.error_from_result(res, encoding="utf-8")
                raise ReplicationStreamEnded("the server ended the replication stream")
            if nbytes == -2:
                raise pg_errors.OperationalError(
                    f"replication stream failed: {pgconn.get_error_message()}"
                )
            # nbytes == 0: nothing buffered; wait for the socket.
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            remaining = deadline - now
            if remaining <= 0:
                return None
            ready, _, _ = select.select([pgconn.socket], [], [], remaining)
            if ready:
                pgconn.consume_input()
            elif time.monotonic() >= deadline:
                return None

    def set_flushed(self, lsn: LSN | int) -> None:
        """Mark WAL up to ``lsn`` durable downstream (never moves backwards)."""
        if lsn > self.flushed:
            self.flushed = int(lsn)

    def send_status(self, *, reply: bool = False) -> None:
        """Standby status update 'r': written = received, flushed = applied = durable position."""
        written = max(self.received, self.flushed)
        msg = _STATUS.pack(
            b"r", written, self.flushed, self.flushed, _now_pg_us(), 1 if reply else 0
        )
        pgconn = self.pgconn
        if pgconn.put_copy_data(msg) != 1:
            raise pg_errors.OperationalError(
                f"could not send standby status: {pgconn.get_error_message()}"
            )
        while pgconn.flush() == 1:
            select.select([], [pgconn.socket], [], 1.0)
        self.last_status_sent = time.monotonic()

    def close(self) -> None:
        """Close the connection; the slot keeps its confirmed position."""
        try:
            if self.streaming and not self.conn.closed:
                try:
                    self.send_status()
                except Exception:
                    pass
        finally:
            self.streaming = False
            self.conn.close()

    def __enter__(self) -> ReplicationConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
