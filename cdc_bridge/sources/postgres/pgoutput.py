"""Decoder for the pgoutput logical replication protocol (versions 1 and 2), bytes -> messages."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cdc_bridge.sources.postgres.lsn import LSN

__all__ = [
    "PG_EPOCH_US",
    "UNCHANGED_TOAST",
    "Begin",
    "Column",
    "Commit",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "Origin",
    "PgOutputDecoder",
    "PgOutputError",
    "Relation",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TypeInfo",
    "Update",
    "pg_timestamp_to_datetime",
    "pg_timestamp_to_unix_us",
]

# Microseconds between 1970-01-01 and 2000-01-01 (the Postgres epoch).
PG_EPOCH_US: Final = 946_684_800_000_000
_PG_EPOCH_DT: Final = datetime(2000, 1, 1, tzinfo=UTC)


def pg_timestamp_to_unix_us(ts: int) -> int:
    """Postgres protocol timestamp (µs since 2000-01-01) -> µs since the Unix epoch."""
    return ts + PG_EPOCH_US


def pg_timestamp_to_datetime(ts: int) -> datetime:
    """Postgres protocol timestamp -> aware UTC datetime."""
    return _PG_EPOCH_DT + timedelta(microseconds=ts)


class _Unchanged:
    """Marker for an unchanged TOASTed value ('u' in tuple data): the value was not sent."""

    __slots__ = ()
    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"

    def __reduce__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = _Unchanged()

# A decoded tuple value: None (SQL NULL), UNCHANGED_TOAST, str (text format) or bytes (binary).
TupleValue = str | bytes | _Unchanged | None


class PgOutputError(ValueError):
    """The byte stream is not valid pgoutput (truncated, unknown tag...): a bug or corruption."""


@dataclass(slots=True)
class Begin:
    final_lsn: LSN
    commit_ts: int  # µs since 2000-01-01
    xid: int


@dataclass(slots=True)
class Commit:
    flags: int
    commit_lsn: LSN
    end_lsn: LSN
    commit_ts: int


@dataclass(slots=True)
class Origin:
    commit_lsn: LSN
    name: str


@dataclass(slots=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    is_key: bool


@dataclass(slots=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: list[Column]
    xid: int | None = None


@dataclass(slots=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(slots=True)
class Insert:
    relid: int
    new: list[TupleValue]
    xid: int | None = None


@dataclass(slots=True)
class Update:
    relid: int
    new: list[TupleValue]
    # 'K': old key columns only (others None), 'O': the full old row (REPLICA IDENTITY FULL),
    # None: the key did not change and identity is DEFAULT/INDEX.
    old_kind: str | None = None
    old: list[TupleValue] | None = None
    xid: int | None = None


@dataclass(slots=True)
class Delete:
    relid: int
    old_kind: str  # 'K' or 'O'
    old: list[TupleValue]
    xid: int | None = None


@dataclass(slots=True)
class Truncate:
    relids: list[int]
    cascade: bool
    restart_identity: bool
    xid: int | None = None


@dataclass(slots=True)
class LogicalMessage:
    transactional: bool
    lsn: LSN
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(slots=True)
class StreamStop:
    pass


@dataclass(slots=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: LSN
    end_lsn: LSN
    commit_ts: int


@dataclass(slots=True)
class StreamAbort:
    xid: int
    subxid: int
    abort_lsn: LSN | None = None
    abort_ts: int | None = None


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

_u8 = struct.Struct(">B").unpack_from
_i16 = struct.Struct(">h").unpack_from
_i32 = struct.Struct(">i").unpack_from
_u32 = struct.Struct(">I").unpack_from
_begin = struct.Struct(">QqI").unpack_from
_commit = struct.Struct(">BQQq").unpack_from
_relhead = struct.Struct(">I").unpack_from
_colmeta = struct.Struct(">Ii").unpack_from
_stream_commit = struct.Struct(">IBQQq").unpack_from
_stream_abort = struct.Struct(">II").unpack_from
_stream_abort_v4 = struct.Struct(">QqI").unpack_from
_msghead = struct.Struct(">BQ").unpack_from
_q = struct.Struct(">Q").unpack_from
_q_i = struct.Struct(">q").unpack_from


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\x00", pos)
    return buf[pos:end].decode("utf-8"), end + 1


def _tuple(buf: bytes, pos: int) -> tuple[list[TupleValue], int]:
    """Decode TupleData at ``pos``; returns the values and the position after them."""
    (ncols,) = _i16(buf, pos)
    pos += 2
    values: list[TupleValue] = []
    append = values.append
    i32 = _i32
    for _ in range(ncols):
        kind = buf[pos]
        pos += 1
        if kind == 116:  # 't'
            (n,) = i32(buf, pos)
            pos += 4
            end = pos + n
            append(buf[pos:end].decode("utf-8"))
            pos = end
        elif kind == 110:  # 'n'
            append(None)
        elif kind == 117:  # 'u'
            append(UNCHANGED_TOAST)
        elif kind == 98:  # 'b'
            (n,) = i32(buf, pos)
            pos += 4
            end = pos + n
            append(bytes(buf[pos:end]))
            pos = end
        else:
            raise PgOutputError(f"unknown tuple column kind {kind!r} at offset {pos - 1}")
    if pos > len(buf):
        raise PgOutputError("truncated tuple data")
    return values, pos


@dataclass(slots=True)
class PgOutputDecoder:
    """Stateful decoder: with protocol v2 it tracks whether it is inside a streamed transaction
    block (Stream Start .. Stream Stop), where data messages carry the transaction id first."""

    protocol_version: int = 1
    in_stream: bool = field(default=False)

    def decode(self, data: bytes | bytearray | memoryview) -> Message:
        """Decode one pgoutput message (the payload of one XLogData 'w' message)."""
        buf = bytes(data) if not isinstance(data, bytes) else data
        try:
            return self._decode(buf)
        except PgOutputError:
            raise
        except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
            tag = chr(buf[0]) if buf else "?"
            raise PgOutputError(f"malformed pgoutput message {tag!r}: {exc}") from exc

    def _xid(self, buf: bytes, pos: int) -> tuple[int | None, int]:
        if self.in_stream:
            return _u32(buf, pos)[0], pos + 4
        return None, pos

    def _decode(self, buf: bytes) -> Message:
        tag = buf[0]
        if tag == 73:  # 'I' insert
            xid, pos = self._xid(buf, 1)
            (relid,) = _relhead(buf, pos)
            if buf[pos + 4] != 78:  # 'N'
                raise PgOutputError("insert without new tuple")
            new, _ = _tuple(buf, pos + 5)
            return Insert(relid, new, xid)
        if tag == 85:  # 'U' update
            xid, pos = self._xid(buf, 1)
            (relid,) = _relhead(buf, pos)
            pos += 4
            kind = buf[pos]
            old_kind: str | None = None
            old: list[TupleValue] | None = None
            if kind == 75 or kind == 79:  # 'K' / 'O'
                old_kind = chr(kind)
                old, pos = _tuple(buf, pos + 1)
                kind = buf[pos]
            if kind != 78:
                raise PgOutputError("update without new tuple")
            new, _ = _tuple(buf, pos + 1)
            return Update(relid, new, old_kind, old, xid)
        if tag == 68:  # 'D' delete
            xid, pos = self._xid(buf, 1)
            (relid,) = _relhead(buf, pos)
            kind = buf[pos + 4]
            if kind != 75 and kind != 79:
                raise PgOutputError("delete without old key/tuple")
            old, _ = _tuple(buf, pos + 5)
            return Delete(relid, chr(kind), old, xid)
        if tag == 66:  # 'B' begin
            final_lsn, ts, xid_ = _begin(buf, 1)
            return Begin(LSN(final_lsn), ts, xid_)
        if tag == 67:  # 'C' commit
            flags, lsn, end, ts = _commit(buf, 1)
            return Commit(flags, LSN(lsn), LSN(end), ts)
        if tag == 82:  # 'R' relation
            xid, pos = self._xid(buf, 1)
            (relid,) = _relhead(buf, pos)
            namespace, pos = _cstring(buf, pos + 4)
            name, pos = _cstring(buf, pos)
            ident = chr(buf[pos])
            (ncols,) = _i16(buf, pos + 1)
            pos += 3
            cols: list[Column] = []
            for _ in range(ncols):
                flags = buf[pos]
                cname, pos = _cstring(buf, pos + 1)
                oid, typmod = _colmeta(buf, pos)
                pos += 8
                cols.append(Column(cname, oid, typmod, bool(flags & 1)))
            return Relation(relid, namespace, name, ident, cols, xid)
        if tag == 89:  # 'Y' type
            xid, pos = self._xid(buf, 1)
            (oid,) = _relhead(buf, pos)
            namespace, pos = _cstring(buf, pos + 4)
            name, pos = _cstring(buf, pos)
            return TypeInfo(oid, namespace, name, xid)
        if tag == 84:  # 'T' truncate
            xid, pos = self._xid(buf, 1)
            (nrels,) = _i32(buf, pos)
            options = buf[pos + 4]
            pos += 5
            relids = list(struct.unpack_from(f">{nrels}I", buf, pos))
            return Truncate(relids, bool(options & 1), bool(options & 2), xid)
        if tag == 79:  # 'O' origin
            (lsn,) = _q(buf, 1)
            name, _ = _cstring(buf, 9)
            return Origin(LSN(lsn), name)
        if tag == 77:  # 'M' logical decoding message
            xid, pos = self._xid(buf, 1)
            flags, lsn = _msghead(buf, pos)
            prefix, pos = _cstring(buf, pos + 9)
            (n,) = _i32(buf, pos)
            content = bytes(buf[pos + 4 : pos + 4 + n])
            if len(content) != n:
                raise PgOutputError("truncated logical message content")
            return LogicalMessage(bool(flags & 1), LSN(lsn), prefix, content, xid)
        if tag == 83:  # 'S' stream start
            (xid_,) = _u32(buf, 1)
            self.in_stream = True
            return StreamStart(xid_, buf[5] == 1)
        if tag == 69:  # 'E' stream stop
            self.in_stream = False
            return StreamStop()
        if tag == 99:  # 'c' stream commit
            xid_, flags, lsn, end, ts = _stream_commit(buf, 1)
            return StreamCommit(xid_, flags, LSN(lsn), LSN(end), ts)
        if tag == 65:  # 'A' stream abort
            xid_, subxid = _stream_abort(buf, 1)
            if len(buf) >= 25:  # protocol v4 (parallel apply) adds abort LSN and timestamp
                (alsn,) = _q(buf, 9)
                (ats,) = _q_i(buf, 17)
                return StreamAbort(xid_, subxid, LSN(alsn), ats)
            return StreamAbort(xid_, subxid)
        raise PgOutputError(f"unknown pgoutput message tag {chr(tag)!r} (0x{tag:02x})")
