"""Postgres type OID (+ typmod) -> Kafka Connect field schema and a fast text -> payload converter.

Follows Debezium's PostgreSQL connector defaults (``time.precision.mode=adaptive``,
``decimal.handling.mode=precise``, ``interval.handling.mode=numeric``,
``binary.handling.mode=bytes``). Values arrive in Postgres text format, produced with the session
settings :data:`SESSION_OPTIONS` (ISO dates, UTC, ISO-8601 intervals, hex bytea); every source
connection that reads row values must use them. Unknown types become strings, never errors.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

__all__ = [
    "SESSION_OPTIONS",
    "ColumnType",
    "PgType",
    "TypeOptions",
    "builtin_array_element",
    "column_default",
    "column_type",
    "decimal_bytes",
    "parse_array",
]

log = logging.getLogger(__name__)

# libpq ``options`` for every connection whose text output we parse.
SESSION_OPTIONS: Final = (
    "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c bytea_output=hex "
    "-c extra_float_digits=1 -c lc_monetary=C"
)

Converter = Callable[[str], Any]

DecimalHandling = Literal["precise", "string", "double"]
BinaryHandling = Literal["bytes", "base64", "hex"]


@dataclass(frozen=True, slots=True)
class TypeOptions:
    """Per-source encoding switches (see the source config)."""

    decimal_handling: DecimalHandling = "precise"
    binary_handling: BinaryHandling = "bytes"
    toast_placeholder: str = "__debezium_unavailable_value"
    money_fraction_digits: int = 2
    # Columns of types Debezium does not map are left out (its include.unknown.datatypes=false);
    # True keeps them as their text.
    include_unknown_types: bool = False
    # Write a column's default instead of NULL, as Kafka's JsonConverter does by default
    # (replace.null.with.default=true) for fields whose schema has a default.
    replace_null_with_default: bool = False


@dataclass(frozen=True, slots=True)
class PgType:
    """What the catalog says about a non-builtin type (enums, domains, arrays of those)."""

    oid: int
    name: str
    typtype: str = "b"  # b base, e enum, d domain, c composite, r range, m multirange
    element_oid: int = 0  # for arrays
    base_oid: int = 0  # for domains
    enum_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ColumnType:
    """How one column is encoded: its Connect schema (without ``field``), the text -> payload
    converter (None: the text is the payload) and the payload for an unchanged TOASTed value."""

    schema: dict[str, Any]
    convert: Converter | None
    toast_placeholder: Any = None
    type_name: str = ""
    fallback: bool = field(default=False)
    # Debezium leaves columns of these types out of its events (box, circle, ...).
    skip: bool = False


# -- builtin OIDs ------------------------------------------------------------------------------

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, XML, FLOAT4, FLOAT8, MONEY, MACADDR, MACADDR8, INET, CIDR = (
    114,
    142,
    700,
    701,
    790,
    829,
    774,
    869,
    650,
)
BPCHAR, VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = (
    1042,
    1043,
    1082,
    1083,
    1114,
    1184,
    1186,
    1266,
)
BIT, VARBIT, NUMERIC, UUID, JSONB, CITEXT_NONE = 1560, 1562, 1700, 2950, 3802, 0
POINT, LSEG, PATH, BOX, POLYGON, LINE, CIRCLE, TSVECTOR = 600, 601, 602, 603, 604, 628, 718, 3614
INT4RANGE, NUMRANGE, TSRANGE, TSTZRANGE, DATERANGE, INT8RANGE = 3904, 3906, 3908, 3910, 3912, 3926
_RANGES: Final = frozenset({INT4RANGE, NUMRANGE, TSRANGE, TSTZRANGE, DATERANGE, INT8RANGE})
# Array element types Debezium maps (arrays of anything else, e.g. interval[], money[], xml[],
# name[], are left out like any type it does not know).
_ARRAY_ELEMENTS: Final = frozenset(
    {BOOL, INT2, INT4, INT8, OID, FLOAT4, FLOAT8, NUMERIC, TEXT, VARCHAR, BPCHAR, DATE, TIME,
     TIMETZ, TIMESTAMP, TIMESTAMPTZ, UUID, JSON, JSONB, BYTEA, INET, CIDR, MACADDR, MACADDR8,
     BIT, VARBIT, *_RANGES}
)  # fmt: skip
# Extension types Debezium maps by name (PostGIS types keep their text, as before).
_NAMED_TYPES: Final = frozenset({"citext", "hstore", "ltree", "geometry", "geography"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_ARRAY_ELEMENT: Final[dict[int, int]] = {
    1000: BOOL, 1001: BYTEA, 1002: CHAR, 1003: NAME, 1016: INT8, 1005: INT2, 1007: INT4,
    1009: TEXT, 1028: OID, 199: JSON, 143: XML, 1021: FLOAT4, 1022: FLOAT8, 791: MONEY,
    1040: MACADDR, 775: MACADDR8, 1041: INET, 651: CIDR, 1014: BPCHAR, 1015: VARCHAR,
    1182: DATE, 1183: TIME, 1115: TIMESTAMP, 1185: TIMESTAMPTZ, 1187: INTERVAL, 1270: TIMETZ,
    1561: BIT, 1563: VARBIT, 1231: NUMERIC, 2951: UUID, 3807: JSONB,
}  # fmt: skip

_NAMES: Final[dict[int, str]] = {
    BOOL: "bool", BYTEA: "bytea", CHAR: "char", NAME: "name", INT8: "int8", INT2: "int2",
    INT4: "int4", TEXT: "text", OID: "oid", JSON: "json", XML: "xml", FLOAT4: "float4",
    FLOAT8: "float8", MONEY: "money", MACADDR: "macaddr", MACADDR8: "macaddr8", INET: "inet",
    CIDR: "cidr", BPCHAR: "bpchar", VARCHAR: "varchar", DATE: "date", TIME: "time",
    TIMESTAMP: "timestamp", TIMESTAMPTZ: "timestamptz", INTERVAL: "interval", TIMETZ: "timetz",
    BIT: "bit", VARBIT: "varbit", NUMERIC: "numeric", UUID: "uuid", JSONB: "jsonb",
}  # fmt: skip


def builtin_array_element(oid: int) -> int | None:
    """Element OID of a builtin array type, or None."""
    return _ARRAY_ELEMENT.get(oid)


# -- scalar converters ---------------------------------------------------------------------------


def _bool(s: str) -> bool:
    return s[:1] == "t"  # 't' from pgoutput, 'true' from ::text


_FLOAT_SPECIAL: Final = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}


def _float(s: str) -> float | str:
    """A float; NaN and the infinities as the strings Kafka's JsonConverter writes for them."""
    special = _FLOAT_SPECIAL.get(s)
    return special if special is not None else float(s)


def _b64(b: bytes) -> str:
    return binascii.b2a_base64(b, newline=False).decode("ascii")


def decimal_bytes(unscaled: int) -> bytes:
    """Java ``BigInteger.toByteArray()``: minimal big-endian two's complement."""
    n = (unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1
    return unscaled.to_bytes(n, "big", signed=True)


def _unscaled(text: str, scale: int) -> int:
    """Decimal text -> unscaled integer at ``scale`` (pads or, if needed, rounds half-up)."""
    t = text.strip()
    neg = t.startswith("-")
    if neg or t.startswith("+"):
        t = t[1:]
    whole, _, frac = t.partition(".")
    if len(frac) <= scale:
        v = int((whole or "0") + frac + "0" * (scale - len(frac)))
    else:
        v = int((whole or "0") + frac[:scale])
        if frac[scale] >= "5":
            v += 1
    return -v if neg else v


def _decimal_converter(scale: int) -> Converter:
    b2a = binascii.b2a_base64

    def conv(s: str) -> str | None:
        # Fast path: Postgres prints numeric(p,s) with exactly `scale` fraction digits.
        dot = s.find(".")
        if dot >= 0 and len(s) - dot - 1 == scale:
            v = int(s[:dot] + s[dot + 1 :])
        elif dot < 0 and scale == 0 and s[-1:].isdigit():
            v = int(s)
        elif s == "NaN" or s.endswith("Infinity"):
            return None
        else:
            v = _unscaled(s, scale)
        n = (v if v >= 0 else ~v).bit_length() // 8 + 1
        return b2a(v.to_bytes(n, "big", signed=True), newline=False).decode("ascii")

    return conv


def _variable_decimal(s: str) -> dict[str, Any] | None:
    if s == "NaN" or s.endswith("Infinity"):
        return None
    _, _, frac = s.partition(".")
    scale = len(frac)
    return {"scale": scale, "value": _b64(decimal_bytes(_unscaled(s, scale)))}


_MONEY_STRIP = re.compile(r"[^0-9.\-]")


def _money_text(s: str) -> str:
    t = _MONEY_STRIP.sub("", s)
    if s.startswith("(") or (s.startswith("-") and not t.startswith("-")):
        t = "-" + t
    return t


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (any year, also BC)."""
    y -= m <= 2
    era = y // 400  # Python's // floors: no adjustment for negative years
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _date_days(s: str) -> int | None:
    if s[-3:] == " BC":
        y, m, d = s[:-3].split("-")
        return _days_from_civil(1 - int(y), int(m), int(d))
    if len(s) == 10:
        return _days_from_civil(int(s[0:4]), int(s[5:7]), int(s[8:10]))
    if s in ("infinity", "-infinity"):
        return None
    y, m, d = s.split("-")
    return _days_from_civil(int(y), int(m), int(d))


def _time_us(s: str) -> int:
    """``HH:MM:SS[.ffffff]`` -> microseconds since midnight."""
    us = (int(s[0:2]) * 3600 + int(s[3:5]) * 60 + int(s[6:8])) * 1_000_000
    if len(s) > 9:
        frac = s[9:]
        us += int(frac) * 10 ** (6 - len(frac))
    return us


# PgJDBC's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY (what Debezium emits for infinity).
_TS_POS_INF: Final = 9223372036825200000
_TS_NEG_INF: Final = -9223372036832400000


def _split_ts(s: str) -> tuple[int, str]:
    """'YYYY-MM-DD HH:MM:SS[.f][+tz][ BC]' -> (days, rest after the date)."""
    bc = s.endswith(" BC")
    if bc:
        s = s[:-3]
    date, _, rest = s.partition(" ")
    y, m, d = date.split("-")
    year = int(y)
    return _days_from_civil(1 - year if bc else year, int(m), int(d)), rest


def _timestamp_us(s: str) -> int:
    if len(s) >= 19 and s[4] == "-" and s[10] == " " and not s.endswith(" BC"):
        days = _days_from_civil(int(s[0:4]), int(s[5:7]), int(s[8:10]))
        return days * 86_400_000_000 + _time_us(s[11:])
    if s == "infinity":
        return _TS_POS_INF
    if s == "-infinity":
        return _TS_NEG_INF
    days, rest = _split_ts(s)
    # PostgreSQL's range reaches past int64 microseconds (year 294276): clamp, never overflow.
    return min(max(days * 86_400_000_000 + _time_us(rest), _INT64_MIN), _INT64_MAX)


def _timestamp_ms(s: str) -> int:
    v = _timestamp_us(s)
    return v if v in (_TS_POS_INF, _TS_NEG_INF) else v // 1000


_TZ_RE = re.compile(r"([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$")


def _offset_seconds(tz: str) -> int:
    m = _TZ_RE.match(tz)
    if not m:
        raise ValueError(f"bad UTC offset {tz!r}")
    secs = int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60 + int(m.group(4) or 0)
    return -secs if m.group(1) == "-" else secs


def _fmt_time_us(us: int) -> str:
    secs, frac = divmod(us, 1_000_000)
    h, rem = divmod(secs, 3600)
    mi, se = divmod(rem, 60)
    out = f"{h:02d}:{mi:02d}:{se:02d}"
    if frac:
        out += "." + f"{frac:06d}".rstrip("0")
    return out


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _zoned_timestamp(s: str, digits: int = 6) -> str:
    """timestamptz text -> ISO-8601 UTC string with 'Z' (Debezium ZonedTimestamp), the
    fraction padded to the column's precision ``digits`` as Debezium writes it."""
    if s.endswith("+00") and len(s) >= 22 and s[10] == " " and s[4] == "-":
        dot = s.find(".", 19)
        if dot < 0:
            frac = ""
        else:
            frac = s[dot + 1 : -3]
            s = s[:dot] + "+00"
        if digits:
            return s[:10] + "T" + s[11:-3] + "." + (frac + "000000")[:digits] + "Z"
        return s[:10] + "T" + s[11:-3] + "Z"
    if s in ("infinity", "-infinity"):
        return s
    bc = s.endswith(" BC")
    days, rest = _split_ts(s)
    m = re.search(r"[+-]\d\d(:?\d\d){0,2}$", rest)
    off = _offset_seconds(m.group(0)) if m else 0
    clock = rest[: m.start()] if m else rest
    total = days * 86_400_000_000 + _time_us(clock) - off * 1_000_000
    d, tod = divmod(total, 86_400_000_000)
    y, mo, dd = _civil_from_days(d)
    year = f"{y:04d}" if y > 0 and not bc else f"{y:05d}"
    secs, frac_us = divmod(tod, 1_000_000)
    h, rem = divmod(secs, 3600)
    mi, se = divmod(rem, 60)
    clock_out = f"{h:02d}:{mi:02d}:{se:02d}"
    if digits:
        clock_out += "." + f"{frac_us:06d}"[:digits]
    return f"{year}-{mo:02d}-{dd:02d}T{clock_out}Z"


def _zoned_converter(typmod: int) -> Converter:
    digits = typmod if 0 <= typmod <= 6 else 6
    if digits != 6:

        def conv(s: str) -> str:
            return _zoned_timestamp(s, digits)

        return conv

    def conv6(s: str) -> str:
        # Fast path (the session runs in UTC): 'YYYY-MM-DD HH:MM:SS.ffffff+00'
        if len(s) == 29 and s[26] == "+" and s[27:] == "00" and s[10] == " ":
            return s[:10] + "T" + s[11:26] + "Z"
        return _zoned_timestamp(s, 6)

    return conv6


def _zoned_time(s: str) -> str:
    """timetz text '03:04:05.1+02' -> UTC 'HH:MM:SS[.f]Z' (Debezium ZonedTime)."""
    m = re.search(r"[+-]\d\d(:?\d\d){0,2}$", s)
    off = _offset_seconds(m.group(0)) if m else 0
    clock = s[: m.start()] if m else s
    us = (_time_us(clock) - off * 1_000_000) % 86_400_000_000
    return _fmt_time_us(us) + "Z"


_ISO_INTERVAL = re.compile(
    r"^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$"
)
# Debezium MicroDuration: months are 365.25 / 12 = 30.4375 days = 2,629,800 s exactly.
_US_PER_MONTH: Final = 2_629_800_000_000


def _interval_us(s: str) -> int:
    m = _ISO_INTERVAL.match(s)
    if m is None:
        raise ValueError(f"unsupported interval text {s!r} (IntervalStyle must be iso_8601)")
    y, mo, w, d, h, mi, sec = m.groups()
    months = int(y or 0) * 12 + int(mo or 0)
    days = int(w or 0) * 7 + int(d or 0)
    us = months * _US_PER_MONTH + days * 86_400_000_000
    us += (int(h or 0) * 3600 + int(mi or 0) * 60) * 1_000_000
    if sec:
        neg = sec.startswith("-")
        whole, _, frac = sec.lstrip("-").partition(".")
        sus = int(whole) * 1_000_000 + (int((frac + "000000")[:6]) if frac else 0)
        us += -sus if neg else sus
    # Debezium computes in double and casts to long, which saturates: so do we.
    return min(max(us, _INT64_MIN), _INT64_MAX)


def _bits(s: str) -> str:
    """bit/varbit text '1010' -> Debezium Bits: little-endian bytes of the value, trailing zero
    bytes dropped (Java ``BitSet.toByteArray``), base64."""
    v = int(s, 2) if s else 0
    return _b64(v.to_bytes((v.bit_length() + 7) // 8, "little"))


def _point(s: str) -> dict[str, Any]:
    """point text '(x,y)' -> Debezium geometry Point {x, y, wkb (little-endian WKB), srid}."""
    x_text, _, y_text = s.strip("()").partition(",")
    x, y = float(x_text), float(y_text)
    wkb = b"\x01\x01\x00\x00\x00" + struct.pack("<dd", x, y)
    return {"x": x, "y": y, "wkb": _b64(wkb), "srid": None}


_POINT_FIELDS: Final = [
    {"type": "double", "optional": False, "field": "x"},
    {"type": "double", "optional": False, "field": "y"},
    {"type": "bytes", "optional": True, "field": "wkb"},
    {"type": "int32", "optional": True, "field": "srid"},
]


def _bytea(s: str) -> bytes:
    if s.startswith("\\x"):
        return bytes.fromhex(s[2:])
    # 'escape' output format (bytea_output=escape), for completeness.
    return s.encode("latin-1").decode("unicode_escape").encode("latin-1")


# -- arrays --------------------------------------------------------------------------------------


def parse_array(s: str, delim: str = ",") -> list[Any]:
    """Postgres array text -> nested lists of str / None (elements still in text form)."""
    pos = 0
    if s.startswith("["):  # explicit bounds: '[0:2]={1,2,3}'
        pos = s.index("=") + 1
    out, _end = _parse_array_at(s, pos, delim)
    return out


def _parse_array_at(s: str, pos: int, delim: str) -> tuple[list[Any], int]:
    if s[pos] != "{":
        raise ValueError(f"bad array literal {s!r}")
    pos += 1
    items: list[Any] = []
    n = len(s)
    if s[pos] == "}":
        return items, pos + 1
    while pos < n:
        c = s[pos]
        if c == "{":
            sub, pos = _parse_array_at(s, pos, delim)
            items.append(sub)
        elif c == '"':
            pos += 1
            buf = []
            while s[pos] != '"':
                if s[pos] == "\\":
                    pos += 1
                buf.append(s[pos])
                pos += 1
            pos += 1
            items.append("".join(buf))
        else:
            start = pos
            while s[pos] != delim and s[pos] != "}":
                pos += 1
            tok = s[start:pos].strip()
            items.append(None if tok == "NULL" else tok)
        if s[pos] == delim:
            pos += 1
            continue
        if s[pos] == "}":
            return items, pos + 1
        raise ValueError(f"bad array literal {s!r}")
    raise ValueError(f"unterminated array literal {s!r}")


def _array_converter(elem: Converter | None) -> Converter:
    if elem is None:

        def conv_plain(s: str) -> list[Any]:
            return parse_array(s)

        return conv_plain

    def walk(items: list[Any]) -> list[Any]:
        return [None if x is None else walk(x) if isinstance(x, list) else elem(x) for x in items]

    def conv(s: str) -> list[Any]:
        return walk(parse_array(s))

    return conv


# -- schema builders ------------------------------------------------------------------------------


def _s(type_: str, optional: bool, name: str | None = None, **params: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "optional": optional}
    if name is not None:
        out["name"] = name
        out["version"] = 1
    if params:
        out["parameters"] = params
    return out


def _numeric_prec_scale(typmod: int) -> tuple[int, int] | None:
    if typmod < 4:
        return None
    t = typmod - 4
    return (t >> 16) & 0xFFFF, t & 0x7FF if t & 0x400 == 0 else (t & 0x7FF) - 0x800


def column_type(
    oid: int,
    typmod: int,
    *,
    optional: bool = True,
    options: TypeOptions | None = None,
    catalog: Mapping[int, PgType] | None = None,
) -> ColumnType:
    """Encoding of a column of type ``oid`` with modifier ``typmod`` (-1: none)."""
    opts = options or TypeOptions()
    try:
        return _column_type(oid, typmod, optional, opts, catalog or {}, 0)
    except Exception as exc:  # never fail a table over an exotic type: fall back to the text
        log.warning("type %s (typmod %s): %s; encoding it as a string", oid, typmod, exc)
        return ColumnType(_s("string", optional), None, opts.toast_placeholder, str(oid), True)


def _column_type(
    oid: int,
    typmod: int,
    optional: bool,
    o: TypeOptions,
    catalog: Mapping[int, PgType],
    depth: int,
) -> ColumnType:
    ph = o.toast_placeholder
    name = _NAMES.get(oid, "")
    if oid == BOOL:
        return ColumnType(_s("boolean", optional), _bool, None, name)
    if oid == INT2:
        return ColumnType(_s("int16", optional), int, None, name)
    if oid == INT4:
        return ColumnType(_s("int32", optional), int, None, name)
    if oid in (INT8, OID):
        return ColumnType(_s("int64", optional), int, None, name)
    if oid == FLOAT4:
        return ColumnType(_s("float", optional), _float, None, name)
    if oid == FLOAT8:
        return ColumnType(_s("double", optional), _float, None, name)
    if oid in (TEXT, VARCHAR, BPCHAR, CHAR, NAME, INET, CIDR, MACADDR, MACADDR8):
        return ColumnType(_s("string", optional), None, ph, name)
    if oid in (NUMERIC, MONEY):
        return _decimal_type(oid, typmod, optional, o, name)
    if oid == BYTEA:
        if o.binary_handling == "base64":
            return ColumnType(
                _s("string", optional), lambda s: _b64(_bytea(s)), _b64(ph.encode()), name
            )
        if o.binary_handling == "hex":
            return ColumnType(
                _s("string", optional), lambda s: _bytea(s).hex(), ph.encode().hex(), name
            )
        return ColumnType(_s("bytes", optional), lambda s: _b64(_bytea(s)), _b64(ph.encode()), name)
    if oid == DATE:
        return ColumnType(_s("int32", optional, "io.debezium.time.Date"), _date_days, None, name)
    if oid == TIME:
        if 0 <= typmod <= 3:
            return ColumnType(
                _s("int32", optional, "io.debezium.time.Time"),
                lambda s: _time_us(s) // 1000,
                None,
                name,
            )
        return ColumnType(_s("int64", optional, "io.debezium.time.MicroTime"), _time_us, None, name)
    if oid == TIMESTAMP:
        if 0 <= typmod <= 3:
            return ColumnType(
                _s("int64", optional, "io.debezium.time.Timestamp"), _timestamp_ms, None, name
            )
        return ColumnType(
            _s("int64", optional, "io.debezium.time.MicroTimestamp"), _timestamp_us, None, name
        )
    if oid == TIMESTAMPTZ:
        return ColumnType(
            _s("string", optional, "io.debezium.time.ZonedTimestamp"),
            _zoned_converter(typmod),
            None,
            name,
        )
    if oid == TIMETZ:
        return ColumnType(
            _s("string", optional, "io.debezium.time.ZonedTime"), _zoned_time, None, name
        )
    if oid == INTERVAL:
        return ColumnType(
            _s("int64", optional, "io.debezium.time.MicroDuration"), _interval_us, None, name
        )
    if oid in (JSON, JSONB):
        return ColumnType(_s("string", optional, "io.debezium.data.Json"), None, ph, name)
    if oid == XML:
        return ColumnType(_s("string", optional, "io.debezium.data.Xml"), None, ph, name)
    if oid == UUID:
        return ColumnType(_s("string", optional, "io.debezium.data.Uuid"), None, ph, name)
    if oid == BIT and typmod == 1:
        return ColumnType(_s("boolean", optional), _bool_bit, None, name)
    if oid in (BIT, VARBIT):
        length = str(typmod if typmod > 0 else 2**31 - 1)
        return ColumnType(
            _s("bytes", optional, "io.debezium.data.Bits", length=length), _bits, None, name
        )
    if oid == POINT:
        schema = {
            "type": "struct",
            "fields": _POINT_FIELDS,
            "optional": optional,
            "name": "io.debezium.data.geometry.Point",
            "version": 1,
            "doc": "Geometry (POINT)",
        }
        return ColumnType(schema, _point, None, "point")
    if oid == TSVECTOR:
        return ColumnType(_s("string", optional, "io.debezium.data.Tsvector"), None, ph, "tsvector")

    elem_oid = _ARRAY_ELEMENT.get(oid)
    info = catalog.get(oid)
    if elem_oid is None and info is not None and info.element_oid:
        elem_oid = info.element_oid
    if elem_oid is not None and depth == 0:
        elem = _column_type(elem_oid, typmod, True, o, catalog, depth + 1)
        items = dict(elem.schema)
        if items.get("name") == "io.debezium.data.Enum":
            items["optional"] = False  # as Debezium declares enum array elements
        schema = {"type": "array", "items": items, "optional": optional}
        supported = (
            elem_oid in _ARRAY_ELEMENTS
            or (elem_oid in catalog and catalog[elem_oid].typtype == "e")
            or elem.type_name in ("citext", "hstore", "ltree")
        )
        return ColumnType(
            schema,
            _array_converter(elem.convert),
            _array_placeholder(elem_oid, elem, ph),
            f"_{elem.type_name}",
            skip=elem.skip or (not supported and not o.include_unknown_types),
        )
    if info is not None:
        if info.typtype == "e":
            schema = _s(
                "string", optional, "io.debezium.data.Enum", allowed=",".join(info.enum_labels)
            )
            return ColumnType(schema, None, ph, info.name)
        if info.typtype == "d" and info.base_oid and depth < 4:
            base = _column_type(info.base_oid, typmod, optional, o, catalog, depth + 1)
            return ColumnType(
                base.schema, base.convert, base.toast_placeholder, info.name, skip=base.skip
            )
        if info.name == "hstore":
            return ColumnType(
                _s("string", optional, "io.debezium.data.Json"),
                _hstore_json,
                orjson.dumps({ph: ph}).decode(),
                "hstore",
            )
        if info.name == "ltree":
            return ColumnType(_s("string", optional, "io.debezium.data.Ltree"), None, ph, "ltree")
    known = oid in _RANGES or (info is not None and info.name in _NAMED_TYPES)
    return ColumnType(
        _s("string", optional),
        None,
        ph,
        info.name if info else name or str(oid),
        True,
        skip=not known and not o.include_unknown_types,
    )


def _array_placeholder(elem_oid: int, elem: ColumnType, ph: str) -> Any:
    """Debezium's value for an unchanged TOASTed array: per element type, else null."""
    if elem_oid in (TEXT, VARCHAR, JSON, JSONB):
        return [ph]
    if elem_oid == BYTEA:
        return [elem.toast_placeholder]
    if elem_oid in (INT4, DATE, INT8):
        return [b - 256 if b > 127 else b for b in ph.encode()]  # Java's signed bytes
    if elem_oid == UUID:
        digest = bytearray(hashlib.md5(ph.encode()).digest())  # UUID.nameUUIDFromBytes
        digest[6] = (digest[6] & 0x0F) | 0x30
        digest[8] = (digest[8] & 0x3F) | 0x80
        return [str(uuid.UUID(bytes=bytes(digest)))]
    return None


def _hstore_json(s: str) -> str:
    """hstore text '"a"=>"1", "b"=>NULL' -> the JSON object text Debezium writes."""
    out: dict[str, str | None] = {}
    pos, n = 0, len(s)

    def token(pos: int) -> tuple[str | None, int]:
        while pos < n and s[pos] in " ,":
            pos += 1
        if s.startswith("NULL", pos):
            return None, pos + 4
        if pos >= n or s[pos] != '"':
            raise ValueError(f"bad hstore text {s!r}")
        pos += 1
        buf = []
        while s[pos] != '"':
            if s[pos] == "\\":
                pos += 1
            buf.append(s[pos])
            pos += 1
        return "".join(buf), pos + 1

    while True:
        while pos < n and s[pos] in " ,":
            pos += 1
        if pos >= n:
            break
        key, pos = token(pos)
        if not s.startswith("=>", pos):
            raise ValueError(f"bad hstore text {s!r}")
        value, pos = token(pos + 2)
        out[key or ""] = value
    return orjson.dumps(out).decode()


def _bool_bit(s: str) -> bool:
    return s == "1"


def _decimal_type(oid: int, typmod: int, optional: bool, o: TypeOptions, name: str) -> ColumnType:
    money = oid == MONEY
    if o.decimal_handling == "string":
        return ColumnType(_s("string", optional), _money_text if money else None, None, name)
    if o.decimal_handling == "double":
        conv: Converter = (lambda s: _float(_money_text(s))) if money else _float
        return ColumnType(_s("double", optional), conv, None, name)
    if money:
        scale = o.money_fraction_digits
        dec = _decimal_converter(scale)
        schema = _s("bytes", optional, "org.apache.kafka.connect.data.Decimal", scale=str(scale))
        return ColumnType(schema, lambda s: dec(_money_text(s)), None, name)
    ps = _numeric_prec_scale(typmod)
    if ps is None:
        schema = {
            "type": "struct",
            "fields": [
                {"type": "int32", "optional": False, "field": "scale"},
                {"type": "bytes", "optional": False, "field": "value"},
            ],
            "optional": optional,
            "name": "io.debezium.data.VariableScaleDecimal",
            "version": 1,
            "doc": "Variable scaled decimal",
        }
        return ColumnType(schema, _variable_decimal, None, name)
    precision, scale = ps
    schema = _s(
        "bytes",
        optional,
        "org.apache.kafka.connect.data.Decimal",
        scale=str(scale),
        **{"connect.decimal.precision": str(precision)},
    )
    return ColumnType(schema, _decimal_converter(scale), None, name)


# -- column defaults -------------------------------------------------------------------------------

_LITERAL_DEFAULT = re.compile(r"'(.*)'")
_FUNCTION_DEFAULT = re.compile(r"^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\)")
_CURRENT_DATE_TIMES = frozenset(
    {"current_timestamp", "current_time", "current_date", "localtime", "localtimestamp"}
)
# Types whose defaults Debezium reads, with the value it assumes for a function default (now(),
# nextval(...)); other types (bytea, money, inet, arrays, domains...) carry no default.
_DEFAULT_PLACEHOLDER: Final[dict[int, str]] = {
    BIT: "00", VARBIT: "0", BOOL: "false", BPCHAR: "", VARCHAR: "", TEXT: "",
    NUMERIC: "0.0", FLOAT4: "0.0", FLOAT8: "0.0", INT2: "0", INT4: "0", INT8: "0",
    JSON: "{}", JSONB: "{}", XML: "", UUID: "00000000-0000-0000-0000-000000000000",
    DATE: "1970-01-01", TIME: "00:00", TIMESTAMP: "1970-01-01", TIMESTAMPTZ: "1970-01-01",
    INTERVAL: "epoch",
}  # fmt: skip
_NULL_AWARE: Final = frozenset({BOOL, NUMERIC, FLOAT4, FLOAT8, INT2, INT4, INT8})
_NO_DEFAULT: Final = object()


def _default_text(expr: str, placeholder: str) -> str | None:
    """Debezium's reading of a default expression: a function call or CURRENT_* -> the
    placeholder; ``'x'::type`` -> x; a bare literal as is; ``NULL::type`` -> None."""
    if _FUNCTION_DEFAULT.search(expr) or expr.lower() in _CURRENT_DATE_TIMES:
        return placeholder
    if "'" not in expr:
        return None if expr.startswith("NULL::") else expr
    m = _LITERAL_DEFAULT.search(expr)
    return m.group(1).replace("''", "'") if m else None


def column_default(
    oid: int, expr: str | None, ct: ColumnType, catalog: Mapping[int, PgType] | None = None
) -> Any:
    """The Connect ``default`` of a column whose default expression is ``expr`` (from
    ``pg_get_expr``), as Debezium's PostgreSQL connector derives it; ``None`` when it has none
    (no default, NULL, a type Debezium gives no default, or an unparsable expression)."""
    if expr is None or ct.skip or ct.schema.get("type") == "struct":
        return None  # Connect cannot hold a struct default (KAFKA-12694): Debezium drops it
    info = (catalog or {}).get(oid)
    if info is not None and info.typtype == "e":
        suffix = f"::{info.name}"
        if not (expr.endswith(suffix) and expr.startswith("'")):
            return None
        text: str | None = expr[: -len(suffix)][1:-1]
    else:
        placeholder = _DEFAULT_PLACEHOLDER.get(oid)
        if placeholder is None:
            return None
        if oid != TEXT and oid != VARCHAR and oid != BPCHAR and oid != JSON and oid != JSONB:
            expr = expr.strip()
        if oid in _NULL_AWARE and expr.startswith("NULL::"):
            return None
        text = _default_text(expr, placeholder)
    if text is None:
        return None
    try:
        return _default_value(oid, text, ct)
    except (ValueError, IndexError, KeyError):
        return None


def _default_value(oid: int, text: str, ct: ColumnType) -> Any:
    if oid == BOOL:
        return text.lower() == "true"
    if oid == BIT and len(text) == 1 and ct.schema.get("type") == "boolean":
        return text == "1"
    if oid in (INT2, INT4, INT8):
        return int(text)
    if oid in (FLOAT4, FLOAT8):
        return float(text)
    if oid == UUID:
        return str(uuid.UUID(text))
    if oid in (DATE, TIMESTAMP, TIMESTAMPTZ) and len(text) == 10:
        text += " 00:00:00+00" if oid == TIMESTAMPTZ else " 00:00:00" if oid == TIMESTAMP else ""
    if oid == TIME and len(text) == 5:
        text += ":00"
    if oid == INTERVAL:
        if text == "epoch":
            return 0
        # ISO 8601 under the session's IntervalStyle (SESSION_OPTIONS), else the verbose style
        return (
            _interval_us(text) if text.lstrip("-").startswith("P") else _verbose_interval_us(text)
        )
    return ct.convert(text) if ct.convert is not None else text


_VERBOSE_UNITS: Final = {
    "year": _US_PER_MONTH * 12, "mon": _US_PER_MONTH, "day": 86_400_000_000,
    "hour": 3_600_000_000, "min": 60_000_000, "sec": 1_000_000,
}  # fmt: skip


def _verbose_interval_us(text: str) -> int:
    """'1 year 2 mons 3 days 04:05:06.5' (PostgreSQL's default interval output, as in default
    expressions) -> microseconds, months as 30.4375 days like Debezium's MicroDuration."""
    total = 0
    parts = text.replace("@", "").split()
    i = 0
    while i < len(parts):
        p = parts[i]
        if ":" in p:
            neg = p.startswith("-")
            hms = p.lstrip("+-").split(":")
            h, m = int(hms[0]), int(hms[1])
            sec = hms[2] if len(hms) > 2 else "0"
            whole, _, frac = sec.partition(".")
            us = ((h * 60 + m) * 60 + int(whole)) * 1_000_000 + int((frac + "000000")[:6])
            total += -us if neg else us
            i += 1
            continue
        unit = parts[i + 1].rstrip("s").lower() if i + 1 < len(parts) else ""
        unit = {"yr": "year", "minute": "min", "second": "sec", "month": "mon"}.get(unit, unit)
        total += int(float(p) * _VERBOSE_UNITS[unit])
        i += 2
    return min(max(total, _INT64_MIN), _INT64_MAX)
