"""BSON values -> Extended JSON text exactly as the MongoDB Java driver writes it (Debezium's bytes).

Debezium serialises MongoDB documents with the Java driver's ``JsonWriter``; consumers and log
compaction see those exact strings, so keys in particular must match byte for byte. Three
flavours are in use:

- ``STRICT_COMPACT``: legacy "strict" Extended JSON (``$numberLong``, ``{"$date": <ms>}``,
  ``{"$binary": ..., "$type": "00"}``), written compactly: ``{"a": 1,"b": [1, 2]}``. Debezium's
  ``before`` / ``after`` / ``lsid``.
- ``RELAXED_COMPACT``: Relaxed Extended JSON v2 in the same compact layout. Debezium's key ``id``.
- ``RELAXED``: Relaxed Extended JSON v2 with ``", "`` between fields (``BsonDocument.toJson()``
  defaults). Debezium's ``updateDescription.updatedFields``.

Strings are escaped like the Java writer does (control, format and combining characters and
UTF-16 surrogates as ``\\uXXXX``), doubles are printed like ``Double.toString``.
"""

from __future__ import annotations

import base64
import calendar
import datetime as _dt
import math
import re
import unicodedata
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bson import Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary, UuidRepresentation
from bson.datetime_ms import DatetimeMS

__all__ = ["RELAXED", "RELAXED_COMPACT", "STRICT_COMPACT", "Style", "dumps", "java_double"]


class Style:
    """How to write: strict (legacy) or relaxed types; compact or spaced field separators."""

    __slots__ = ("field_sep", "relaxed")

    def __init__(self, relaxed: bool, compact: bool) -> None:
        self.relaxed = relaxed
        self.field_sep = "," if compact else ", "


STRICT_COMPACT = Style(relaxed=False, compact=True)
RELAXED_COMPACT = Style(relaxed=True, compact=True)
RELAXED = Style(relaxed=True, compact=False)

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_MAX_RELAXED_DATE_MS = 253402300799999  # 9999-12-31T23:59:59.999Z

# Unicode categories the Java writer copies verbatim; everything else becomes \uXXXX.
_PLAIN_CATEGORIES = frozenset(
    {"Lu", "Ll", "Lt", "Lo", "Nd", "Nl", "No", "Zs", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}
    | {"Sm", "Sc", "Sk", "So"}
)
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_SHORT_ESCAPES["\t"] = "\\t"
# Fast path: printable ASCII without quote or backslash needs no escaping.
_SAFE_ASCII = re.compile(r"[ !#-\[\]-~]*\Z")

_RE_FLAGS: tuple[tuple[int, str], ...] = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "l"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.UNICODE, "u"),
    (re.VERBOSE, "x"),
)


def _escape_char(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code > 0xFFFF:  # Java strings are UTF-16: astral characters are surrogate pairs
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    if unicodedata.category(ch) in _PLAIN_CATEGORIES:
        return ch
    return f"\\u{code:04x}"


def quote(s: str) -> str:
    """A JSON string literal escaped like the Java driver's ``JsonWriter``."""
    if _SAFE_ASCII.match(s):
        return f'"{s}"'
    return '"' + "".join(_escape_char(c) for c in s) + '"'


def java_double(x: float) -> str:
    """``Double.toString(x)`` (shortest round-trip digits, Java's notation rules)."""
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    # value = 0.ds * 10**point
    point = len(digits) + exp
    prefix = "-" if sign else ""
    ax = abs(x)
    if 1e-3 <= ax < 1e7:
        if point <= 0:
            return f"{prefix}0.{'0' * -point}{ds}"
        if point >= len(ds):
            return f"{prefix}{ds}{'0' * (point - len(ds))}.0"
        return f"{prefix}{ds[:point]}.{ds[point:]}"
    frac = ds[1:] or "0"
    return f"{prefix}{ds[0]}.{frac}E{point - 1}"


def _datetime_ms(value: _dt.datetime) -> int:
    if value.utcoffset() is not None:
        value = value - value.utcoffset()  # type: ignore[operator]
    return calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000


def _iso_ms(ms: int) -> str:
    """Java's ``ISO_OFFSET_DATE_TIME`` of an instant in UTC (fraction without trailing zeros)."""
    seconds, millis = divmod(ms, 1000)
    base = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=seconds)
    text = base.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


def _regex_options(flags: int | str) -> str:
    if isinstance(flags, str):
        return "".join(sorted(flags))
    return "".join(letter for bit, letter in _RE_FLAGS if flags & bit)


class _Writer:
    __slots__ = ("out", "relaxed", "sep")

    def __init__(self, style: Style) -> None:
        self.out: list[str] = []
        self.relaxed = style.relaxed
        self.sep = style.field_sep

    def document(self, doc: Mapping[str, Any]) -> None:
        out = self.out
        out.append("{")
        first = True
        for name, value in doc.items():
            if not first:
                out.append(self.sep)
            first = False
            out.append(quote(str(name)))
            out.append(": ")
            self.value(value)
        out.append("}")

    def _ext(self, *pairs: tuple[str, str]) -> None:
        """A one-level extended-JSON wrapper object whose values are already JSON text."""
        self.out.append("{" + self.sep.join(f'"{k}": {v}' for k, v in pairs) + "}")

    def binary(self, data: bytes, subtype: int) -> None:
        b64 = quote(base64.b64encode(data).decode("ascii"))
        if self.relaxed:
            inner = "{" + self.sep.join((f'"base64": {b64}', f'"subType": "{subtype:02X}"')) + "}"
            self._ext(("$binary", inner))
        else:
            self._ext(("$binary", b64), ("$type", f'"{subtype:02X}"'))

    def value(self, v: Any) -> None:
        out = self.out
        if v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif isinstance(v, Code):  # a str subclass: test it first
            if v.scope is not None:
                out.append("{" + f'"$code": {quote(str(v))}' + self.sep + '"$scope": ')
                self.document(v.scope)
                out.append("}")
            else:
                self._ext(("$code", quote(str(v))))
        elif isinstance(v, str):
            out.append(quote(v))
        elif isinstance(v, Int64):
            out.append(str(int(v)) if self.relaxed else f'{{"$numberLong": "{int(v)}"}}')
        elif isinstance(v, int):
            if _INT32_MIN <= v <= _INT32_MAX or self.relaxed:
                out.append(str(v))
            else:  # bson stores Python ints beyond int32 as int64
                out.append(f'{{"$numberLong": "{v}"}}')
        elif isinstance(v, float):
            if math.isfinite(v):
                out.append(java_double(v))
            else:
                text = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
                # The Java strict writer prints a bare NaN (not JSON); both modes get the v2 form.
                out.append(f'{{"$numberDouble": "{text}"}}')
        elif isinstance(v, ObjectId):
            out.append(f'{{"$oid": "{v}"}}')
        elif isinstance(v, Mapping):
            if isinstance(v, DBRef):
                v = v.as_doc()
            self.document(v)
        elif isinstance(v, list | tuple):
            out.append("[")
            for i, item in enumerate(v):
                if i:
                    out.append(", ")
                self.value(item)
            out.append("]")
        elif isinstance(v, _dt.datetime | DatetimeMS):
            ms = v._value if isinstance(v, DatetimeMS) else _datetime_ms(v)
            if not self.relaxed:
                self._ext(("$date", str(ms)))
            elif 0 <= ms <= _MAX_RELAXED_DATE_MS:
                self._ext(("$date", f'"{_iso_ms(ms)}"'))
            else:
                self._ext(("$date", f'{{"$numberLong": "{ms}"}}'))
        elif isinstance(v, Decimal128):
            self._ext(("$numberDecimal", f'"{v}"'))
        elif isinstance(v, Binary):
            self.binary(bytes(v), v.subtype)
        elif isinstance(v, bytes):
            self.binary(v, 0)
        elif isinstance(v, uuid.UUID):
            b = Binary.from_uuid(v, UuidRepresentation.STANDARD)
            self.binary(bytes(b), b.subtype)
        elif isinstance(v, Timestamp):
            self._ext(
                ("$timestamp", "{" + self.sep.join((f'"t": {v.time}', f'"i": {v.inc}')) + "}")
            )
        elif isinstance(v, Regex | re.Pattern):
            opts = quote(_regex_options(v.flags))
            pattern = quote(v.pattern if isinstance(v.pattern, str) else v.pattern.decode())
            if self.relaxed:
                inner = "{" + self.sep.join((f'"pattern": {pattern}', f'"options": {opts}')) + "}"
                self._ext(("$regularExpression", inner))
            else:
                self._ext(("$regex", pattern), ("$options", opts))
        elif isinstance(v, MinKey):
            out.append('{"$minKey": 1}')
        elif isinstance(v, MaxKey):
            out.append('{"$maxKey": 1}')
        else:
            raise TypeError(f"cannot write {type(v).__name__} as Extended JSON")


def dumps(value: Any, style: Style = STRICT_COMPACT) -> str:
    """Serialise a document (or any BSON value) as Extended JSON text in the Java driver's layout."""
    w = _Writer(style)
    w.value(value)
    return "".join(w.out)
