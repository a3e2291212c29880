"""MySQL/MariaDB column -> Kafka Connect field schema + converter, per Debezium's MySQL defaults.

Input values are the canonical values of ``cdc_bridge.sources.mysql.rows`` (the snapshot
reader produces the same ones), so binlog and snapshot rows encode identically. A converter of
``None`` means "the canonical value already is the payload".
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import struct
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any, Literal

from cdc_bridge.types.mysql_columns import ColumnInfo, T

__all__ = ["Converter", "TypeOptions", "field_for"]

Converter = Callable[[Any], Any] | None

DecimalMode = Literal["precise", "string", "double"]
BinaryMode = Literal["bytes", "base64", "hex"]
BigintMode = Literal["precise", "long"]
JsonMode = Literal["string", "json"]

_b64 = base64.b64encode
_WIDE = Context(prec=100)  # DECIMAL has up to 65 digits
_EPOCH = dt.datetime(1970, 1, 1)


class TypeOptions:
    """The per-source switches that change encodings."""

    __slots__ = (
        "bigint_unsigned",
        "binary",
        "decimal",
        "mariadb_json",
        "replace_null_with_default",
        "zero_dates",
    )

    def __init__(
        self,
        decimal: DecimalMode = "precise",
        binary: BinaryMode = "bytes",
        bigint_unsigned: BigintMode = "long",
        zero_dates: str = "auto",
        mariadb_json: JsonMode = "string",
        replace_null_with_default: bool = False,
    ) -> None:
        self.zero_dates = zero_dates
        self.decimal = decimal
        self.binary = binary
        self.bigint_unsigned = bigint_unsigned
        self.mariadb_json = mariadb_json
        self.replace_null_with_default = replace_null_with_default


def _schema(type_: str, optional: bool, name: str | None = None, **params: str) -> dict[str, Any]:
    s: dict[str, Any] = {"type": type_, "optional": optional}
    if name:
        s["name"] = name
        s["version"] = 1
    if params:
        s["parameters"] = params
    return s


def _decimal_bytes(unscaled: int) -> str:
    # Java BigInteger.toByteArray(): minimal two's complement (-128 is 80, not ff80)
    n = (unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1
    return _b64(unscaled.to_bytes(n, "big", signed=True)).decode()


def _decimal_field(
    precision: int, scale: int, optional: bool, mode: DecimalMode
) -> tuple[dict[str, Any], Converter]:
    if mode == "string":
        return _schema("string", optional), lambda v: str(Decimal(v).scaleb(-scale, _WIDE))
    if mode == "double":
        div = 10**scale
        return _schema("double", optional), lambda v: v / div
    sch = _schema(
        "bytes",
        optional,
        "org.apache.kafka.connect.data.Decimal",
        scale=str(scale),
        **{"connect.decimal.precision": str(precision)},
    )
    return sch, _decimal_bytes


def _binary(mode: BinaryMode, optional: bool, pad: int = 0) -> tuple[dict[str, Any], Converter]:
    """``pad``: BINARY(n) is fixed width; the binlog drops its trailing zero bytes."""
    if mode == "hex":
        if pad:
            return _schema("string", optional), lambda v: v.ljust(pad, b"\0").hex()
        return _schema("string", optional), lambda v: v.hex()
    sch = _schema("bytes", optional) if mode == "bytes" else _schema("string", optional)
    if pad:
        return sch, lambda v: _b64(v.ljust(pad, b"\0")).decode()
    return sch, lambda v: _b64(v).decode()


def _geometry(point: bool, optional: bool) -> tuple[dict[str, Any], Converter]:
    """Debezium's geometry structs from MySQL's value (4-byte little-endian SRID + WKB)."""
    srid_f = {"type": "int32", "optional": True, "field": "srid"}
    if point:
        fields: list[dict[str, Any]] = [
            {"type": "double", "optional": False, "field": "x"},
            {"type": "double", "optional": False, "field": "y"},
            {"type": "bytes", "optional": True, "field": "wkb"},
            srid_f,
        ]
        name, doc = "io.debezium.data.geometry.Point", "Geometry (POINT)"
    else:
        fields = [{"type": "bytes", "optional": False, "field": "wkb"}, srid_f]
        name, doc = "io.debezium.data.geometry.Geometry", "Geometry"
    sch = {
        "type": "struct",
        "fields": fields,
        "optional": optional,
        "name": name,
        "version": 1,
        "doc": doc,
    }

    def conv(v: bytes) -> dict[str, Any]:
        srid = int.from_bytes(v[:4], "little") or None
        wkb = v[4:]
        out: dict[str, Any] = {}
        if point:
            x, y = struct.unpack_from("<dd" if wkb[:1] == b"\x01" else ">dd", wkb, 5)
            out["x"], out["y"] = x, y
        out["wkb"] = _b64(wkb).decode()
        out["srid"] = srid
        return out

    return sch, conv


_f32 = struct.Struct("<f")
_FLOAT_MD = re.compile(r"float\(\d+,\d+\)")


def _widen_float32(v: float) -> float:
    """FLOAT(M,D) as Debezium's double: the stored float32, widened (12.35 -> 12.350000381...)."""
    return float(_f32.unpack(_f32.pack(v))[0])


def _float32(v: float) -> float:
    """The shortest decimal that is the same float32 (what Java's Float.toString prints)."""
    packed = _f32.pack(v)
    for digits in (6, 7, 8, 9):
        c = float(f"{v:.{digits}g}")
        if _f32.pack(c) == packed:
            return c
    return v


def _iso_utc(fsp: int, trim: bool = False) -> Callable[[int], str]:
    """ZonedTimestamp text. Debezium pads the fraction to the column's precision for binlog
    events but prints snapshot values with Java's ISO formatter (trailing zeros dropped);
    ``trim`` gives the latter."""

    def conv(us: int) -> str:
        t = _EPOCH + dt.timedelta(microseconds=us)
        base = t.strftime("%Y-%m-%dT%H:%M:%S")
        if trim:
            if t.microsecond:
                base += "." + f"{t.microsecond:06d}".rstrip("0")
        elif fsp:
            base += "." + f"{t.microsecond:06d}"[:fsp]
        return base + "Z"

    return conv


def _bits(nbits: int) -> Callable[[int], str]:
    nbytes = (nbits + 7) // 8

    def conv(v: int) -> str:
        return _b64(v.to_bytes(nbytes, "little")).decode()

    return conv


_TEMPORAL_ZERO = frozenset({T.DATE, T.NEWDATE, T.DATETIME, T.DATETIME2, T.TIMESTAMP, T.TIMESTAMP2})


def field_for(
    col: ColumnInfo, opts: TypeOptions, snapshot: bool = False
) -> tuple[dict[str, Any], Converter]:
    """The Connect field schema (without ``field``) and payload converter for one column.

    The schema carries the column's ``default`` (converted like a value) when it has one.
    ``snapshot``: formats as Debezium's snapshot reader does where that differs from its
    binlog reader (ZonedTimestamp fractions).
    """
    schema, conv = _field_for(col, opts, snapshot)
    if col.default is not None:
        try:
            schema["default"] = conv(col.default) if conv is not None else col.default
        except (TypeError, ValueError, OverflowError, struct.error):
            pass
    return schema, conv


def _field_for(
    col: ColumnInfo, opts: TypeOptions, snapshot: bool
) -> tuple[dict[str, Any], Converter]:
    t = col.type
    opt = col.nullable
    if t in _TEMPORAL_ZERO and opts.zero_dates == "null":
        opt = True  # a zero date in a NOT NULL column still becomes null
    if t == T.TINY:
        return _schema("int16", opt), None
    if t == T.SHORT:
        return _schema("int32" if col.unsigned else "int16", opt), None
    if t == T.INT24:
        return _schema("int32", opt), None
    if t == T.LONG:
        return _schema("int64" if col.unsigned else "int32", opt), None
    if t == T.LONGLONG:
        if col.unsigned:
            if opts.bigint_unsigned == "precise":
                return _decimal_field(20, 0, opt, "precise")
            return _schema("int64", opt), lambda v: v - (1 << 64) if v >= 1 << 63 else v
        return _schema("int64", opt), None
    if t == T.FLOAT:
        if _FLOAT_MD.match(col.sql_type):
            return _schema("double", opt), _widen_float32
        return _schema("float", opt), _float32
    if t == T.DOUBLE:
        return _schema("double", opt), None
    if t in (T.NEWDECIMAL, T.DECIMAL):
        return _decimal_field(col.precision, col.scale, opt, opts.decimal)
    if t == T.YEAR:
        return _schema("int32", opt, "io.debezium.time.Year"), None
    if t in (T.DATE, T.NEWDATE):
        return _schema("int32", opt, "io.debezium.time.Date"), None
    if t in (T.TIME, T.TIME2):
        return _schema("int64", opt, "io.debezium.time.MicroTime"), None
    if t in (T.DATETIME, T.DATETIME2):
        if col.fsp <= 3:
            return _schema("int64", opt, "io.debezium.time.Timestamp"), lambda v: v // 1000
        return _schema("int64", opt, "io.debezium.time.MicroTimestamp"), None
    if t in (T.TIMESTAMP, T.TIMESTAMP2):
        return _schema("string", opt, "io.debezium.time.ZonedTimestamp"), _iso_utc(
            col.fsp, snapshot
        )
    if t == T.ENUM:
        return _schema(
            "string", opt, "io.debezium.data.Enum", allowed=",".join(col.enum_values or ())
        ), None
    if t == T.SET:
        return _schema(
            "string", opt, "io.debezium.data.EnumSet", allowed=",".join(col.set_values or ())
        ), None
    if t == T.BIT:
        if col.length == 1:
            return _schema("boolean", opt), bool
        return _schema("bytes", opt, "io.debezium.data.Bits", length=str(col.length)), _bits(
            col.length
        )
    if t == T.JSON or (col.is_json and opts.mariadb_json == "json"):
        sch = _schema("string", opt, "io.debezium.data.Json")
        if col.binary:
            return sch, lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        return sch, None
    if t in (T.STRING, T.VARCHAR, T.VAR_STRING, T.BLOB, T.TINY_BLOB, T.MEDIUM_BLOB, T.LONG_BLOB):
        if col.binary:
            return _binary(opts.binary, opt, col.length if t == T.STRING else 0)
        return _schema("string", opt), None
    if t == T.GEOMETRY:
        return _geometry(col.sql_type == "point", opt)
    raise ValueError(f"column {col.name!r}: MySQL column type {t} is not supported")
