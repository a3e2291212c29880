"""Kafka Connect field schemas -> Python values for the driver, and -> SQL column types.

Debezium's logical types (``Decimal``, ``io.debezium.time.MicroTimestamp``,
``ZonedTimestamp``, ``Date``, ``MicroTime``, ``Json``, ``Uuid`` ...) are turned back into the
values and column types they came from, so a Postgres -> Postgres route reproduces values
exactly. Converters are built once per (table, schema) and are None where the JSON value is
already right (ints, strings, booleans), so the hot path only calls what it must.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "Converter",
    "decode_bytes",
    "logical_kind",
    "time_text",
    "value_converter",
]

Converter = Callable[[Any], Any] | None

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = dt.date(1970, 1, 1)
# Connect decimals carry up to 65 (MySQL) or 1000 (Postgres numeric) digits: the default
# context (28 digits) would round them.
_EXACT = decimal.Context(prec=1100, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_DAY_US = 86_400_000_000

# Connect logical name -> our kind
_LOGICAL = {
    "org.apache.kafka.connect.data.Decimal": "decimal",
    "io.debezium.data.VariableScaleDecimal": "vdecimal",
    "io.debezium.time.Date": "date",
    "org.apache.kafka.connect.data.Date": "date",
    "io.debezium.time.Time": "time_ms",
    "org.apache.kafka.connect.data.Time": "time_ms",
    "io.debezium.time.MicroTime": "time_us",
    "io.debezium.time.NanoTime": "time_ns",
    "io.debezium.time.ZonedTime": "ztime",
    "io.debezium.time.Timestamp": "ts_ms",
    "org.apache.kafka.connect.data.Timestamp": "ts_ms",
    "io.debezium.time.MicroTimestamp": "ts_us",
    "io.debezium.time.NanoTimestamp": "ts_ns",
    "io.debezium.time.ZonedTimestamp": "zts",
    "io.debezium.time.MicroDuration": "interval",
    "io.debezium.data.Json": "json",
    "io.debezium.data.Uuid": "uuid",
    "io.debezium.data.Enum": "string",
    "io.debezium.data.EnumSet": "string",
    "io.debezium.data.Bits": "bits",
    "io.debezium.data.Xml": "string",
    "io.debezium.time.Year": "int",
}

# Connect JSON schema type names ("float"/"double" are what JsonConverter writes).
_PRIMITIVE = {
    "float": "real",
    "double": "double",
    "int8": "smallint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "float32": "real",
    "float64": "double",
    "boolean": "boolean",
    "string": "string",
    "bytes": "bytes",
    "array": "array",
    "map": "json_object",
    "struct": "json_object",
}


def logical_kind(schema: Mapping[str, Any]) -> str:
    """The kind of a field: a logical kind (``decimal``, ``ts_us``, ``json``...) or primitive."""
    name = schema.get("name")
    if name and name in _LOGICAL:
        return _LOGICAL[name]
    return _PRIMITIVE.get(str(schema.get("type")), "string")


def decode_bytes(v: Any) -> bytes | None:
    """Connect bytes arrive base64-encoded in JSON."""
    if v is None or isinstance(v, bytes):
        return v
    return base64.b64decode(v)


def _decimal(scale: int) -> Callable[[Any], Any]:
    a2b = binascii.a2b_base64
    from_bytes = int.from_bytes
    dec = decimal.Decimal
    exp = -scale

    def conv(v: Any) -> Any:
        # Connect Decimal is always bytes (base64 in JSON); other modes use other types.
        if v is None:
            return None
        if isinstance(v, str):
            return dec(from_bytes(a2b(v), "big", signed=True)).scaleb(exp, _EXACT)
        if isinstance(v, int | float):
            return dec(str(v))
        return dec(from_bytes(bytes(v), "big", signed=True)).scaleb(exp, _EXACT)

    return conv


def _vdecimal(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, dict):
        raw = base64.b64decode(v["value"])
        unscaled = int.from_bytes(raw, "big", signed=True)
        return decimal.Decimal(unscaled).scaleb(-int(v["scale"]), _EXACT)
    return decimal.Decimal(str(v))


def _date(v: Any) -> Any:
    if v is None or isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        return dt.date.fromisoformat(v)
    return _EPOCH_DATE + dt.timedelta(days=v)


def time_text(us: int) -> str:
    """A duration as MySQL TIME text: ``[-]H:MM:SS[.ffffff]`` (hours may exceed 24)."""
    sign = "-" if us < 0 else ""
    s, micro = divmod(abs(us), 1_000_000)
    m, sec = divmod(s, 60)
    h, minute = divmod(m, 60)
    frac = f".{micro:06d}" if micro else ""
    return f"{sign}{h:02d}:{minute:02d}:{sec:02d}{frac}"


def _time_from_us(us: int) -> Any:
    """A time of day; a MySQL TIME outside 00:00..24:00 (``838:59:59``, negative) as its exact
    text instead, never wrapped: targets that can hold it (MySQL TIME, Postgres interval,
    SQLite text) take the text, a time-of-day column rejects it (dead letter)."""
    if 0 <= us < _DAY_US:
        s, micro = divmod(us, 1_000_000)
        m, sec = divmod(s, 60)
        h, minute = divmod(m, 60)
        return dt.time(h, minute, sec, micro)
    return time_text(us)


def _time(unit_us: float) -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            return dt.time.fromisoformat(v)
        if unit_us >= 1:
            return _time_from_us(int(v) * int(unit_us))
        return _time_from_us(int(v) // 1000)

    return conv


def _ts(unit_us: float) -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).replace(tzinfo=None)
        if unit_us >= 1:
            return _EPOCH + dt.timedelta(microseconds=int(v) * int(unit_us))
        return _EPOCH + dt.timedelta(microseconds=int(v) // 1000)

    return conv


def _zts(v: Any) -> Any:
    if v is None:
        return None
    return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))


def _interval(v: Any) -> Any:
    if v is None:
        return None
    return dt.timedelta(microseconds=int(v))


def _array(item: Converter) -> Callable[[Any], Any]:
    if item is None:
        return lambda v: v
    conv = item

    def run(v: Any) -> Any:
        if v is None:
            return None
        return [conv(x) for x in v]

    return run


_CONVERTERS: dict[str, Converter] = {
    "vdecimal": _vdecimal,
    "date": _date,
    "time_ms": _time(1000),
    "time_us": _time(1),
    "time_ns": _time(0.001),
    "ts_ms": _ts(1000),
    "ts_us": _ts(1),
    "ts_ns": _ts(0.001),
    "zts": _zts,
    "interval": _interval,
    "bytes": decode_bytes,
    "bits": decode_bytes,
}


def value_converter(schema: Mapping[str, Any]) -> Converter:
    """Connect JSON value -> Python value (Decimal, datetime, bytes...); None: keep as is."""
    kind = logical_kind(schema)
    if kind == "decimal":
        params = schema.get("parameters") or {}
        return _decimal(int(params.get("scale", 0)))
    if kind == "array":
        items = schema.get("items")
        return _array(value_converter(items) if isinstance(items, Mapping) else None)
    return _CONVERTERS.get(kind)
