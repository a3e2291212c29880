"""Binlog row-image decoding: per-table compiled column readers producing canonical values.

Canonical values (shared with the snapshot reader, consumed by ``cdc_bridge.types.mysql``):
integers as ``int``; float/double as ``float``; DECIMAL as its *unscaled* ``int``; strings,
ENUM, SET and JSON as ``str``; binary strings and blobs as ``bytes``; BIT as ``int``; DATE as
days since the epoch; TIME as microseconds; DATETIME and TIMESTAMP as microseconds since the
epoch (UTC); YEAR as ``int``. Zero dates decode to ``zero_date`` (``None`` or ``0``).
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
from pymysqlreplication.json_binary import parse_json

from cdc_bridge.types.mysql_columns import ColumnInfo, T

__all__ = ["RowDecoder", "encoding_of", "parse_datetime", "parse_time", "zero_value"]


NUMERIC_TYPES = frozenset(
    {T.DECIMAL, T.TINY, T.SHORT, T.LONG, T.FLOAT, T.DOUBLE, T.LONGLONG, T.INT24, T.NEWDECIMAL}
)
CHARACTER_TYPES = frozenset({T.STRING, T.VAR_STRING, T.VARCHAR, T.BLOB})
BINARY_COLLATION = 63


_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_EPOCH_DAYS = 719163  # date(1970, 1, 1).toordinal()
_timegm = calendar.timegm
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)

Reader = Callable[[bytes, int], tuple[Any, int]]


def _days(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 for a proleptic Gregorian date (fast path, no datetime objects)."""
    yy = y - 1
    n = yy * 365 + yy // 4 - yy // 100 + yy // 400 + _DAYS_BEFORE_MONTH[m] + d
    if m > 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        n += 1
    return n - _EPOCH_DAYS


def parse_datetime(s: str) -> tuple[bool, int]:
    """(is zero date, microseconds since the epoch) of 'YYYY-MM-DD HH:MM:SS[.ffffff]'."""
    date, _, clock = s.partition(" ")
    y, m, d = (int(x) for x in date.split("-"))
    if m == 0 or d == 0:
        return True, 0
    micros = 0
    if clock:
        hms, _, frac = clock.partition(".")
        hh, mm, ss = (int(x) for x in hms.split(":"))
        micros = (hh * 3600 + mm * 60 + ss) * 1_000_000
        if frac:
            micros += int(frac.ljust(6, "0")[:6])
    return False, _days(y, m, d) * 86_400_000_000 + micros


def parse_time(s: str) -> int:
    """Microseconds of a MySQL TIME text ('-838:59:59.000000')."""
    neg = s.startswith("-")
    hms, _, frac = s.lstrip("-").partition(".")
    hh, mm, ss = (int(x) for x in hms.split(":"))
    micros = (hh * 3600 + mm * 60 + ss) * 1_000_000 + (int(frac.ljust(6, "0")[:6]) if frac else 0)
    return -micros if neg else micros


def _int_reader(size: int, unsigned: bool) -> Reader:
    fmt = {1: "b", 2: "h", 3: "", 4: "i", 8: "q"}[size]
    if size == 3:

        def r24(b: bytes, p: int) -> tuple[Any, int]:
            v = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16)
            if not unsigned and v & 0x800000:
                v -= 0x1000000
            return v, p + 3

        return r24
    st = struct.Struct("<" + (fmt.upper() if unsigned else fmt))
    unpack_from = st.unpack_from

    def rint(b: bytes, p: int) -> tuple[Any, int]:
        return unpack_from(b, p)[0], p + size

    return rint


def _decimal_reader(precision: int, scale: int) -> Reader:
    """MySQL binary DECIMAL -> unscaled int, with one big-endian integer and shifts.

    The value is stored as groups of 9 decimal digits in 4 bytes (fewer for the leading
    integer digits and trailing fraction digits), sign bit flipped, all bits inverted when
    negative.
    """
    intg = precision - scale
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    sizes = []
    if _DIG2BYTES[intg0x]:
        sizes.append((_DIG2BYTES[intg0x], 1_000_000_000))
    sizes += [(4, 1_000_000_000)] * (intg0 + frac0)
    if _DIG2BYTES[frac0x]:
        sizes.append((_DIG2BYTES[frac0x], 10**frac0x))
    size = sum(n for n, _ in sizes)
    # (shift, mask, multiplier applied before adding the group), most significant first
    parts = []
    shift = size * 8
    for n, mul in sizes:
        shift -= n * 8
        parts.append((shift, (1 << (n * 8)) - 1, mul))
    parts_t = tuple(parts)
    sign = 1 << (size * 8 - 1)
    allbits = (1 << (size * 8)) - 1
    from_bytes = int.from_bytes

    def rdec(b: bytes, p: int) -> tuple[Any, int]:
        raw = from_bytes(b[p : p + size], "big")
        negative = not raw & sign
        if negative:
            raw ^= allbits
        raw ^= sign
        v = 0
        for sh, mask, mul in parts_t:
            v = v * mul + ((raw >> sh) & mask)
        return (-v if negative else v), p + size

    return rdec


def _frac_reader(fsp: int) -> tuple[int, Callable[[bytes, int], int]]:
    """Fractional seconds of TIME2/DATETIME2/TIMESTAMP2: (byte count, reader -> microseconds)."""
    n = (fsp + 1) // 2
    if n == 0:
        return 0, lambda b, p: 0
    mul = {1: 10_000, 2: 100, 3: 1}[n]
    return n, lambda b, p: int.from_bytes(b[p : p + n], "big") * mul


def _datetime2_reader(fsp: int, zero: Any) -> Reader:
    nfrac = (fsp + 1) // 2
    total = 5 + nfrac
    fbits = 8 * nfrac
    fmask = (1 << fbits) - 1
    fmul = {0: 0, 1: 10_000, 2: 100, 3: 1}[nfrac]
    from_bytes = int.from_bytes
    days = _days

    def rdt(b: bytes, p: int) -> tuple[Any, int]:
        whole = from_bytes(b[p : p + total], "big")
        v = (whole >> fbits) - 0x8000000000
        ymd = v >> 17
        day = ymd & 31
        year, month = divmod(ymd >> 5, 13)
        if month == 0 or day == 0:
            return zero, p + total
        hms = v & 0x1FFFF
        secs = (
            days(year, month, day) * 86400
            + (hms >> 12) * 3600
            + ((hms >> 6) & 63) * 60
            + (hms & 63)
        )
        return secs * 1_000_000 + (whole & fmask) * fmul, p + total

    return rdt


def _timestamp2_reader(fsp: int, zero: Any) -> Reader:
    nfrac, frac = _frac_reader(fsp)

    def rts(b: bytes, p: int) -> tuple[Any, int]:
        secs = int.from_bytes(b[p : p + 4], "big")
        if secs == 0 and (nfrac == 0 or frac(b, p + 4) == 0):
            return zero, p + 4 + nfrac
        return secs * 1_000_000 + frac(b, p + 4), p + 4 + nfrac

    return rts


def _time2_reader(fsp: int) -> Reader:
    nfrac = (fsp + 1) // 2

    def rtime(b: bytes, p: int) -> tuple[Any, int]:
        # The whole value (3 bytes + fraction) is a big-endian number offset by its sign bit.
        total = 3 + nfrac
        v = int.from_bytes(b[p : p + total], "big") - (1 << (8 * total - 1))
        shift = 8 * nfrac
        ipart = v >> shift
        fpart = v - (ipart << shift)
        if ipart < 0 and fpart:
            ipart += 1
            fpart -= 1 << shift
        neg = ipart < 0 or fpart < 0
        ipart, fpart = abs(ipart), abs(fpart)
        hours = (ipart >> 12) & 0x3FF
        micros = ((hours * 60 + ((ipart >> 6) & 63)) * 60 + (ipart & 63)) * 1_000_000
        if nfrac:
            micros += fpart * {1: 10_000, 2: 100, 3: 1}[nfrac]
        return (-micros if neg else micros), p + total

    return rtime


def _date_reader(zero: Any) -> Reader:
    def rdate(b: bytes, p: int) -> tuple[Any, int]:
        v = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16)
        d = v & 31
        m = (v >> 5) & 15
        if d == 0 or m == 0:
            return zero, p + 3
        return _days(v >> 9, m, d), p + 3

    return rdate


def _old_time_reader(b: bytes, p: int) -> tuple[Any, int]:
    v = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16)
    if v & 0x800000:
        v -= 0x1000000
    neg = v < 0
    v = abs(v)
    micros = ((v // 10000) * 3600 + (v // 100 % 100) * 60 + v % 100) * 1_000_000
    return (-micros if neg else micros), p + 3


def _old_datetime_reader(zero: Any) -> Reader:
    def rdt(b: bytes, p: int) -> tuple[Any, int]:
        v = int.from_bytes(b[p : p + 8], "little")
        d, t = divmod(v, 1_000_000)
        y, md = divmod(d, 10000)
        m, day = divmod(md, 100)
        if m == 0 or day == 0:
            return zero, p + 8
        secs = _days(y, m, day) * 86400 + (t // 10000) * 3600 + (t // 100 % 100) * 60 + t % 100
        return secs * 1_000_000, p + 8

    return rdt


def _old_timestamp_reader(zero: Any) -> Reader:
    def rts(b: bytes, p: int) -> tuple[Any, int]:
        secs = int.from_bytes(b[p : p + 4], "little")
        return (zero if secs == 0 else secs * 1_000_000), p + 4

    return rts


LATIN1_COLLATIONS = frozenset({5, 8, 15, 31, 47, 48, 49, 94})


def encoding_of(collation: int) -> str:
    """Python codec of a MySQL collation id (MySQL's latin1 is Windows-1252)."""
    return "cp1252" if collation in LATIN1_COLLATIONS else "utf-8"


def _string_reader(prefix: int, binary: bool, enc: str = "utf-8") -> Reader:
    if prefix == 1:
        if binary:
            return lambda b, p: (b[p + 1 : p + 1 + b[p]], p + 1 + b[p])

        def rs1(b: bytes, p: int) -> tuple[Any, int]:
            n = b[p]
            return b[p + 1 : p + 1 + n].decode(enc, "replace"), p + 1 + n

        return rs1

    def rsn(b: bytes, p: int) -> tuple[Any, int]:
        n = int.from_bytes(b[p : p + prefix], "little")
        s = p + prefix
        raw = b[s : s + n]
        return (raw if binary else raw.decode(enc, "replace")), s + n

    return rsn


def _enum_reader(size: int, values: Sequence[str] | None) -> Reader:
    def renum(b: bytes, p: int) -> tuple[Any, int]:
        i = int.from_bytes(b[p : p + size], "little")
        if i == 0 or values is None or i > len(values):
            return ("" if i == 0 or values is None else str(i)), p + size
        return values[i - 1], p + size

    return renum


def _set_reader(size: int, values: Sequence[str] | None) -> Reader:
    def rset(b: bytes, p: int) -> tuple[Any, int]:
        bits = int.from_bytes(b[p : p + size], "little")
        if values is None:
            return str(bits), p + size
        return ",".join(v for i, v in enumerate(values) if bits >> i & 1), p + size

    return rset


def _bit_reader(nbytes: int) -> Reader:
    return lambda b, p: (int.from_bytes(b[p : p + nbytes], "big"), p + nbytes)


def _json_reader(prefix: int) -> Reader:
    def rjson(b: bytes, p: int) -> tuple[Any, int]:
        n = int.from_bytes(b[p : p + prefix], "little")
        s = p + prefix
        raw = b[s : s + n]
        if n == 0:
            return "null", s
        value = _json_clean(parse_json(raw[0], raw[1:]))
        return orjson.dumps(value).decode(), s + n

    return rjson


def _json_clean(v: Any) -> Any:
    """MySQL binary JSON as parsed by mysql-replication -> plain JSON values.

    Its parser leaves object keys and strings as bytes and opaque scalars (DECIMAL, dates,
    times) as Python objects.
    """
    if isinstance(v, dict):
        return {
            (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): _json_clean(x)
            for k, x in v.items()
        }
    if isinstance(v, list):
        return [_json_clean(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, Decimal):
        # JSON numbers: integral decimals as integers, others as doubles (as JSON readers do)
        return int(v) if v.is_finite() and v == v.to_integral_value() else float(v)
    return str(v)


def zero_value(col: ColumnInfo, zero_dates: str) -> Any:
    """What a zero date decodes to: ``auto`` is Debezium's rule (null if the column is
    nullable, else the column's default, else the epoch), ``null`` always null, ``epoch``
    always the epoch."""
    if zero_dates == "null" or (zero_dates == "auto" and col.nullable):
        return None
    if zero_dates == "auto" and col.default is not None:
        return col.default
    return 0


def column_reader(col: ColumnInfo, zero_date: Any = None) -> Reader:
    """Compile the reader for one column from its TableMap type and metadata."""
    t = col.type
    if t == T.TINY:
        return _int_reader(1, col.unsigned)
    if t == T.SHORT:
        return _int_reader(2, col.unsigned)
    if t == T.INT24:
        return _int_reader(3, col.unsigned)
    if t == T.LONG:
        return _int_reader(4, col.unsigned)
    if t == T.LONGLONG:
        return _int_reader(8, col.unsigned)
    if t == T.FLOAT:
        f = struct.Struct("<f").unpack_from
        return lambda b, p: (f(b, p)[0], p + 4)
    if t == T.DOUBLE:
        d = struct.Struct("<d").unpack_from
        return lambda b, p: (d(b, p)[0], p + 8)
    if t == T.NEWDECIMAL:
        return _decimal_reader(col.precision, col.scale)
    if t == T.YEAR:
        return lambda b, p: ((b[p] + 1900 if b[p] else 0), p + 1)
    if t in (T.DATE, T.NEWDATE):
        return _date_reader(zero_date)
    if t == T.TIME2:
        return _time2_reader(col.fsp)
    if t == T.TIME:
        return _old_time_reader
    if t == T.DATETIME2:
        return _datetime2_reader(col.fsp, zero_date)
    if t == T.DATETIME:
        return _old_datetime_reader(zero_date)
    if t == T.TIMESTAMP2:
        return _timestamp2_reader(col.fsp, zero_date)
    if t == T.TIMESTAMP:
        return _old_timestamp_reader(zero_date)
    if t in (T.VARCHAR, T.VAR_STRING):
        return _string_reader(1 if col.length < 256 else 2, col.binary, col.encoding)
    if t == T.STRING:
        return _string_reader(1 if col.length < 256 else 2, col.binary, col.encoding)
    if t == T.ENUM:
        return _enum_reader(col.length, col.enum_values)
    if t == T.SET:
        return _set_reader(col.length, col.set_values)
    if t == T.BIT:
        return _bit_reader((col.length + 7) // 8)
    if t == T.JSON:
        return _json_reader(col.length)
    if t in (T.BLOB, T.TINY_BLOB, T.MEDIUM_BLOB, T.LONG_BLOB, T.GEOMETRY):
        return _string_reader(col.length, col.binary and not col.is_json, col.encoding)
    raise ValueError(f"column {col.name!r}: MySQL column type {t} is not supported")


class RowDecoder:
    """Decodes the row images of one table version into tuples of canonical values."""

    __slots__ = ("columns", "ncols", "readers")

    def __init__(self, columns: Sequence[ColumnInfo], zero_dates: str = "auto") -> None:
        self.columns = tuple(columns)
        self.ncols = len(self.columns)
        self.readers = tuple(column_reader(c, zero_value(c, zero_dates)) for c in self.columns)

    def decode(self, body: bytes, pos: int, end: int, presents: Sequence[bytes]) -> list[Any]:
        """All row images from ``body[pos:end]`` as lists of canonical values.

        ``presents`` holds one columns-present bitmap (write/delete) or two (update: before and
        after image, which alternate). Columns absent from an image (``binlog_row_image`` not
        FULL) decode as ``None``.
        """
        readers = self.readers
        ncols = self.ncols
        plans = []
        for present in presents:
            idx = [i for i in range(ncols) if present[i >> 3] >> (i & 7) & 1]
            plans.append((len(idx) == ncols, idx, (len(idx) + 7) >> 3))
        nplans = len(plans)
        out: list[Any] = []
        append = out.append
        b = body
        p = pos
        k = 0
        while p < end:
            full, idx, nbm = plans[k % nplans]
            k += 1
            nulls = int.from_bytes(b[p : p + nbm], "little")
            p += nbm
            values: list[Any] = [None] * ncols
            if full:
                for i in range(ncols):
                    if nulls >> i & 1:
                        continue
                    values[i], p = readers[i](b, p)
            else:
                for j, i in enumerate(idx):
                    if nulls >> j & 1:
                        continue
                    values[i], p = readers[i](b, p)
            append(values)
        return out
