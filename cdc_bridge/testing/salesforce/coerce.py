"""Value conversion and per-field checks, from JSON values and from Bulk CSV strings."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import ApiError, SfError
from .ids import to18
from .schema import NUMBER_TYPES, TEXT_TYPES, FieldDef

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DT_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_JSON_NAMES = {
    "boolean": "boolean",
    "int": "int",
    "long": "long",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "date": "date",
    "datetime": "datetime",
}


class TypeMismatch(Exception):
    """A value that cannot be read as the field's type."""

    def __init__(self, f: FieldDef, value: Any) -> None:
        super().__init__(f"{f.name}: {value!r}")
        self.field = f
        self.value = value

    def json_error(self) -> ApiError:
        kind = (
            "VALUE_STRING"
            if isinstance(self.value, str)
            else "VALUE_NUMBER"
            if isinstance(self.value, (int, float))
            else "START_OBJECT"
            if isinstance(self.value, dict)
            else "VALUE_TRUE"
        )
        name = _JSON_NAMES.get(self.field.type, "string")
        return ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {name} from {kind} value {self.value} "
            "or request may be missing a required field",
        )

    def record_error(self) -> SfError:
        return SfError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{self.field.label or self.field.name}: value not of required type: {self.value}",
            [self.field.name],
        )


def format_datetime(value: dt.datetime) -> str:
    """Salesforce's datetime rendering: 2024-01-02T03:04:05.000+0000 (always UTC)."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_date(text: str) -> str | None:
    if not _DATE_RE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def parse_datetime(text: str) -> str | None:
    m = _DT_RE.match(text)
    if not m:
        return None
    date, hh, mm, ss, frac, tz = m.groups()
    tz = tz or "Z"
    if tz != "Z" and ":" not in tz:
        tz = tz[:3] + ":" + tz[3:]
    frac = (frac or "0")[:6].ljust(6, "0")
    try:
        value = dt.datetime.fromisoformat(
            f"{date}T{hh}:{mm}:{ss or '00'}.{frac}{'+00:00' if tz == 'Z' else tz}"
        )
    except ValueError:
        return None
    return format_datetime(value)


def _number(f: FieldDef, value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeMismatch(f, value)
    if isinstance(value, (int, float)):
        num: int | float = value
    elif isinstance(value, str):
        try:
            dec = Decimal(value.strip())
        except InvalidOperation:
            raise TypeMismatch(f, value) from None
        if not dec.is_finite():
            raise TypeMismatch(f, value)
        num = (
            int(dec) if dec == dec.to_integral_value() and f.type in ("int", "long") else float(dec)
        )
    else:
        raise TypeMismatch(f, value)
    if f.type in ("int", "long"):
        if isinstance(num, float):
            if not num.is_integer():
                raise TypeMismatch(f, value)
            num = int(num)
        return num
    return float(num)


def from_json(f: FieldDef, value: Any) -> Any:
    """Convert a JSON value for field f; raises TypeMismatch (a JSON_PARSER_ERROR)."""
    if value is None:
        return None
    t = f.type
    if t in TEXT_TYPES or t in ("id", "reference"):
        if isinstance(value, (bool, dict, list)):
            raise TypeMismatch(f, value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeMismatch(f, value)
    if t in NUMBER_TYPES:
        return _number(f, value)
    if t == "date":
        out = parse_date(value) if isinstance(value, str) else None
        if out is None:
            raise TypeMismatch(f, value)
        return out
    if t == "datetime":
        out = parse_datetime(value) if isinstance(value, str) else None
        if out is None:
            raise TypeMismatch(f, value)
        return out
    return value


_CSV_TRUE = {"true", "1", "yes", "y"}
_CSV_FALSE = {"false", "0", "no", "n"}


def from_csv(f: FieldDef, text: str) -> Any:
    """Convert a Bulk CSV cell (already known not to be empty or #N/A)."""
    t = f.type
    if t == "boolean":
        low = text.strip().lower()
        if low in _CSV_TRUE:
            return True
        if low in _CSV_FALSE:
            return False
        raise TypeMismatch(f, text)
    if t == "date":
        out = parse_date(text.strip()) or (parse_datetime(text.strip()) or "")[:10] or None
        if out is None:
            raise TypeMismatch(f, text)
        return out
    return from_json(f, text)


def check(f: FieldDef, value: Any) -> None:
    """Range, length, picklist and format checks on a converted value; raises SfError."""
    if value is None:
        return
    label = f.label or f.name
    t = f.type
    if t in TEXT_TYPES:
        if f.length and len(value) > f.length:
            raise SfError(
                "STRING_TOO_LONG",
                f"{label}: data value too large: {value[:60]} (max length={f.length})",
                [f.name],
            )
        if t == "email" and value and not _EMAIL_RE.match(value):
            raise SfError(
                "INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}", [f.name]
            )
        if f.restricted_picklist and t in ("picklist", "multipicklist"):
            chosen = value.split(";") if t == "multipicklist" else [value]
            for v in chosen:
                if v not in f.picklist_values:
                    raise SfError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{label}: bad value for restricted picklist field: {v}",
                        [f.name],
                    )
    elif t in ("double", "currency", "percent") and f.precision:
        if abs(value) >= 10 ** (f.precision - f.scale):
            raise SfError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{label}: value outside of valid range on numeric field: {value}",
                [f.name],
            )
    elif t == "int" and abs(value) > 2**31 - 1:
        raise SfError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{label}: value outside of valid range on numeric field: {value}",
            [f.name],
        )
    elif t in ("id", "reference") and to18(value) is None:
        raise SfError("MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [f.name])
