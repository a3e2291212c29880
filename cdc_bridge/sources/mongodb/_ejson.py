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
UTF-16 surrogates as ``\\uXXXX``), doubles are printed like ``Double.toString`` (strict:
with ``E+`` for positive exponents, like the driver's ``JsonDoubleHelper``).
"""

from __future__ import annotations

import base64
import calendar
import datetime as _dt
import math
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bson import Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
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
    ax = abs(x)
    if 1e-3 <= ax < 1e7:
        return repr(x)  # Python and Java agree here: positional, shortest digits, ".0"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    # value = 0.ds * 10**point
    point = len(digits) + exp
    prefix = "-" if sign else ""
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


def _make_dumper(style: Style) -> Callable[[Any], str]:
    """A serialiser for one style: exact-type dispatch table, cached field-name literals."""
    relaxed = style.relaxed
    sep = style.field_sep
    names: dict[str, str] = {}

    def name(k: str) -> str:
        lit = names.get(k)
        if lit is None:
            lit = quote(str(k)) + ": "
            if len(names) < 50_000:
                names[k] = lit
        return lit

    def ext(*pairs: tuple[str, str]) -> str:
        """A one-level extended-JSON wrapper whose values are already JSON text."""
        return "{" + sep.join([f'"{k}": {v}' for k, v in pairs]) + "}"

    def document(d: Mapping[str, Any]) -> str:
        return "{" + sep.join([name(k) + dump(x) for k, x in d.items()]) + "}"

    def array(items: Any) -> str:
        return "[" + ", ".join([dump(x) for x in items]) + "]"

    def int32_or_long(v: int) -> str:
        if relaxed or _INT32_MIN <= v <= _INT32_MAX:
            return str(v)
        return f'{{"$numberLong": "{v}"}}'  # bson stores Python ints beyond int32 as int64

    def int64(v: Int64) -> str:
        return str(int(v)) if relaxed else f'{{"$numberLong": "{int(v)}"}}'

    def double(v: float) -> str:
        if math.isfinite(v):
            text = java_double(v)
            # The strict writer (JsonDoubleHelper) marks positive exponents: 1.0E+7.
            if not relaxed and "E" in text and "E-" not in text:
                text = text.replace("E", "E+")
            return text
        text = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        # The Java strict writer prints a bare NaN (not JSON); both modes get the v2 form.
        return f'{{"$numberDouble": "{text}"}}'

    def date_ms(ms: int) -> str:
        if not relaxed:
            return ext(("$date", str(ms)))
        if 0 <= ms <= _MAX_RELAXED_DATE_MS:
            return ext(("$date", f'"{_iso_ms(ms)}"'))
        return ext(("$date", f'{{"$numberLong": "{ms}"}}'))

    def binary(data: bytes, subtype: int) -> str:
        b64 = quote(base64.b64encode(data).decode("ascii"))
        if relaxed:
            inner = "{" + sep.join((f'"base64": {b64}', f'"subType": "{subtype:02X}"')) + "}"
            return ext(("$binary", inner))
        return ext(("$binary", b64), ("$type", f'"{subtype:02X}"'))

    decimals: dict[bytes, str] = {}

    def decimal128(v: Decimal128) -> str:
        # bson's Decimal128.__str__ is pure Python and slow; amounts repeat a lot in practice.
        text = decimals.get(v.bid)
        if text is None:
            text = ext(("$numberDecimal", f'"{v}"'))
            if len(decimals) < 50_000:
                decimals[v.bid] = text
        return text

    def timestamp(v: Timestamp) -> str:
        return ext(("$timestamp", "{" + sep.join((f'"t": {v.time}', f'"i": {v.inc}')) + "}"))

    def regex(v: Any) -> str:
        opts = quote(_regex_options(v.flags))
        pattern = quote(v.pattern if isinstance(v.pattern, str) else v.pattern.decode())
        if relaxed:
            inner = "{" + sep.join((f'"pattern": {pattern}', f'"options": {opts}')) + "}"
            return ext(("$regularExpression", inner))
        return ext(("$regex", pattern), ("$options", opts))

    def code(v: Code) -> str:
        if v.scope is not None:
            return "{" + f'"$code": {quote(str(v))}' + sep + '"$scope": ' + document(v.scope) + "}"
        return ext(("$code", quote(str(v))))

    dispatch: dict[type, Callable[[Any], str]] = {
        str: quote,
        int: int32_or_long,
        dict: document,
        list: array,
        type(None): lambda _: "null",
        bool: lambda v: "true" if v else "false",
        float: double,
        Int64: int64,
        ObjectId: lambda v: f'{{"$oid": "{v}"}}',
        _dt.datetime: lambda v: date_ms(_datetime_ms(v)),
        DatetimeMS: lambda v: date_ms(int(v)),
        Decimal128: decimal128,
        bytes: lambda v: binary(v, 0),
        Binary: lambda v: binary(bytes(v), v.subtype),
        uuid.UUID: lambda v: binary(v.bytes, 4),
        Timestamp: timestamp,
        Regex: regex,
        re.Pattern: regex,
        MinKey: lambda _: '{"$minKey": 1}',
        MaxKey: lambda _: '{"$maxKey": 1}',
        Code: code,
        tuple: array,
        DBRef: lambda v: document(v.as_doc()),
    }

    def dump(v: Any) -> str:
        fn = dispatch.get(type(v))
        if fn is not None:
            return fn(v)
        for kind, fn in dispatch.items():  # subclasses (SON, OrderedDict, str enums...)
            if isinstance(v, kind) and kind is not int and kind is not str:
                return fn(v)
        if isinstance(v, Mapping):
            return document(v)
        if isinstance(v, str):
            return quote(v)
        if isinstance(v, int):
            return int32_or_long(int(v))
        raise TypeError(f"cannot write {type(v).__name__} as Extended JSON")

    return dump


def dumps(value: Any, style: Style = STRICT_COMPACT) -> str:
    """Serialise a document (or any BSON value) as Extended JSON text in the Java driver's layout."""
    return _DUMPERS[style](value)


_DUMPERS = {style: _make_dumper(style) for style in (STRICT_COMPACT, RELAXED_COMPACT, RELAXED)}
