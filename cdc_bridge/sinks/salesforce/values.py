"""Kafka Connect payload values (Debezium logical types) -> Python values -> Salesforce renderings."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "from_connect",
    "from_ejson",
    "render",
    "to_date",
    "to_datetime",
    "to_decimal",
    "to_time",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)

# Connect / Debezium logical type name -> how to read the payload value.
_DAYS = {"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"}
_TS_DIV = {
    "io.debezium.time.Timestamp": 1_000,
    "org.apache.kafka.connect.data.Timestamp": 1_000,
    "io.debezium.time.MicroTimestamp": 1_000_000,
    "io.debezium.time.NanoTimestamp": 1_000_000_000,
}
_TIME_DIV = {
    "io.debezium.time.Time": 1_000,
    "org.apache.kafka.connect.data.Time": 1_000,
    "io.debezium.time.MicroTime": 1_000_000,
    "io.debezium.time.NanoTime": 1_000_000_000,
}
_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_VAR_DECIMAL = "io.debezium.data.VariableScaleDecimal"
_ZONED_TS = "io.debezium.time.ZonedTimestamp"


def _unscaled(raw: str | bytes) -> int:
    data = base64.b64decode(raw) if isinstance(raw, str) else raw
    return int.from_bytes(data, "big", signed=True) if data else 0


def from_connect(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """Read a Connect JSON payload value as a Python value using its field schema.

    Dates become ``date``, timestamps aware UTC ``datetime``, times ``time``, Connect
    decimals ``Decimal``; everything else passes through. Without a schema (schemaless
    topics) the value passes through unchanged.
    """
    if value is None or schema is None:
        return value
    name = schema.get("name")
    if not name:
        return value
    if name in _DAYS and isinstance(value, int):
        return _EPOCH_DATE + dt.timedelta(days=value)
    div = _TS_DIV.get(name)
    if div is not None and isinstance(value, int):
        secs, frac = divmod(value, div)
        return _EPOCH + dt.timedelta(seconds=secs, microseconds=frac * 1_000_000 // div)
    div = _TIME_DIV.get(name)
    if div is not None and isinstance(value, int):
        micros = value * 1_000_000 // div
        return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()
    if name == _DECIMAL and isinstance(value, (str, bytes)):
        scale = int((schema.get("parameters") or {}).get("scale", 0))
        return Decimal(_unscaled(value)).scaleb(-scale)
    if name == _VAR_DECIMAL and isinstance(value, Mapping):
        return Decimal(_unscaled(value.get("value") or b"")).scaleb(-int(value.get("scale", 0)))
    if name == _ZONED_TS and isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def from_ejson(value: Any) -> Any:
    """Unwrap MongoDB Extended JSON scalars (``{"$oid": ...}``, ``$numberLong``, ``$date``...).

    MongoDB rows arrive as Extended JSON; Salesforce wants the plain value. A key given as
    an Extended JSON string (``'{"$oid": "..."}'``, Debezium's MongoDB key) is unwrapped too.
    Anything else passes through.
    """
    if isinstance(value, str) and value.startswith('{"$'):
        import orjson

        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        out = from_ejson(parsed)
        return value if isinstance(out, dict) else out
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((tag, inner),) = value.items()
    if not tag.startswith("$"):
        return value
    if tag in ("$oid", "$symbol", "$uuid"):
        return str(inner)
    if tag in ("$numberLong", "$numberInt"):
        return int(inner)
    if tag == "$numberDouble":
        return float(inner)
    if tag == "$numberDecimal":
        return Decimal(str(inner))
    if tag == "$date":
        inner = from_ejson(inner)
        if isinstance(inner, (int, float)):
            return _EPOCH + dt.timedelta(milliseconds=inner)
        if isinstance(inner, str):
            try:
                return dt.datetime.fromisoformat(inner.replace("Z", "+00:00"))
            except ValueError:
                return inner
    return value


def to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int):
        return _EPOCH_DATE + dt.timedelta(days=value)
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    raise ValueError(f"cannot read {value!r} as a date")


def to_datetime(value: Any, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    """A datetime in UTC; naive values are taken to be in ``tz``."""
    if isinstance(value, dt.datetime):
        out = value
    elif isinstance(value, dt.date):
        out = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        out = _EPOCH + dt.timedelta(milliseconds=value)
    elif isinstance(value, str):
        out = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        raise ValueError(f"cannot read {value!r} as a datetime")
    if out.tzinfo is None:
        out = out.replace(tzinfo=tz)
    return out.astimezone(dt.UTC)


def to_time(value: Any) -> dt.time:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).time() if value.tzinfo else value.time()
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        return dt.time.fromisoformat(value.replace("Z", ""))
    raise ValueError(f"cannot read {value!r} as a time")


def to_decimal(value: Any, scale: int | None = None) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"cannot read {value!r} as a decimal")
    out = value if isinstance(value, Decimal) else Decimal(str(value))
    if not out.is_finite():
        raise ValueError(f"cannot send {value!r} to Salesforce (not a finite number)")
    if scale is not None:
        out = out.quantize(Decimal(1).scaleb(-scale))
    return out


def render(value: Any) -> Any:
    """A Python value as Salesforce's REST API reads it (JSON-able; CSV uses ``str`` of it)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, Decimal):
        # A string keeps every digit; Salesforce reads numeric strings for number fields.
        return format(value, "f")
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value).decode()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
