"""Route mapping: a change record -> one Salesforce operation (upsert or delete by external ID).

``[routes.fields]`` is compiled once into small closures; applying it to a row is a loop over
them. Values are read through their Connect schema (dates, timestamps, decimals), so a
Debezium ``numeric`` arrives in Salesforce as the number it was, not as base64 bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from cdc_bridge.errors import ConfigError, ConfigProblem, RecordError
from cdc_bridge.events import OP_DELETE, OP_TRUNCATE
from cdc_bridge.sinks.base import SinkRecord
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig
from cdc_bridge.sinks.salesforce.values import (
    from_connect,
    from_ejson,
    render,
    to_date,
    to_datetime,
    to_decimal,
    to_time,
)

__all__ = [
    "DELETE",
    "UPSERT",
    "Mapper",
    "SfOp",
    "lookup_parts",
    "null_lookup_field",
]

UPSERT = "upsert"
DELETE = "delete"

# A compiled expression: (row with Python values) -> value; raises KeyError when a column is absent.
Expr = Callable[[Mapping[str, Any]], Any]

_MISSING = object()


@dataclass(slots=True)
class SfOp:
    """One operation for Salesforce: upsert ``values`` or delete the record with ``ext_value``."""

    kind: str
    ext_value: str
    values: dict[str, Any]


def lookup_parts(name: str) -> tuple[str, str] | None:
    """``"Account__r.External_Id__c"`` -> ``("Account__r", "External_Id__c")``."""
    rel, dot, field = name.partition(".")
    return (rel, field) if dot else None


def null_lookup_field(relationship: str) -> str:
    """The lookup field behind a relationship name (set to null to clear a lookup)."""
    if relationship.endswith("__r"):
        return relationship[:-3] + "__c"
    return relationship + "Id"


_FORMATS = {"date", "datetime", "time", "decimal", "string", "int", "float", "bool"}


def _column(name: str) -> Expr:
    def get(row: Mapping[str, Any]) -> Any:
        value = row.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value

    return get


def _template(text: str, path: str) -> Expr:
    names = [f for _, f, _, _ in string.Formatter().parse(text) if f]
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", n):
            raise ConfigError(
                "invalid field mapping",
                [ConfigProblem(path, f"template placeholder {{{n}}} must be a plain column name")],
            )

    def fill(row: Mapping[str, Any]) -> Any:
        parts = {}
        for n in names:
            v = row.get(n, _MISSING)
            if v is _MISSING:
                raise KeyError(n)
            v = render(v)
            parts[n] = "" if v is None else v
        return text.format_map(parts)

    return fill


def _formatted(spec: Mapping[str, Any], path: str) -> Expr:
    problems: list[ConfigProblem] = []
    if "value" in spec:
        const = spec["value"]
        return lambda _row: const
    if "template" in spec:
        inner = _template(str(spec["template"]), path + ".template")
    elif "field" in spec:
        inner = _column(str(spec["field"]))
    else:
        raise ConfigError(
            "invalid field mapping",
            [ConfigProblem(path, "an expression table needs `field`, `value` or `template`")],
        )
    fmt = spec.get("format")
    if fmt is not None and fmt not in _FORMATS:
        problems.append(
            ConfigProblem(
                path + ".format", f"unknown format {fmt!r}; use one of {sorted(_FORMATS)}"
            )
        )
    scale = spec.get("scale")
    tz: dt.tzinfo = dt.UTC
    if spec.get("tz"):
        try:
            tz = ZoneInfo(str(spec["tz"]))
        except Exception:
            problems.append(ConfigProblem(path + ".tz", f"unknown time zone {spec['tz']!r}"))
    if problems:
        raise ConfigError("invalid field mapping", problems)
    default = spec.get("default", None)
    has_default = "default" in spec

    def convert(v: Any) -> Any:
        if fmt == "date":
            return to_date(v)
        if fmt == "datetime":
            return to_datetime(v, tz)
        if fmt == "time":
            return to_time(v)
        if fmt == "decimal":
            return to_decimal(v, None if scale is None else int(scale))
        if fmt == "string":
            r = render(v)
            return r if isinstance(r, str) else str(r)
        if fmt == "int":
            return int(to_decimal(v))
        if fmt == "float":
            return float(to_decimal(v))
        if fmt == "bool":
            if isinstance(v, str):
                return v.strip().lower() in ("true", "t", "1", "yes", "y")
            return bool(v)
        return v

    def run(row: Mapping[str, Any]) -> Any:
        try:
            v = inner(row)
        except KeyError:
            if has_default:
                return default
            raise
        if v is None:
            return default
        return convert(v)

    return run


def compile_spec(spec: Any, path: str) -> Expr:
    """One ``[routes.fields]`` value -> an expression."""
    if isinstance(spec, dict):
        return _formatted(spec, path)
    if isinstance(spec, str):
        if "{" in spec:
            return _template(spec, path)
        return _column(spec)
    const = spec
    return lambda _row: const


class Mapper:
    """Turns change records into :class:`SfOp` for one route.

    ``auto_fields``: SObject field names used when ``fields`` is empty (from describe): every
    source column matching one (case-insensitive) is sent under the SObject's spelling.
    """

    def __init__(
        self, route: SalesforceRouteConfig, auto_fields: Mapping[str, str] | None = None
    ) -> None:
        self.route = route
        self.external_id = route.external_id
        problems: list[ConfigProblem] = []
        self.exprs: list[tuple[str, Expr]] = []
        for name, spec in route.fields.items():
            try:
                self.exprs.append((name, compile_spec(spec, f"routes.fields.{name}")))
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ConfigError(f"route to {route.sobject}: invalid field mapping", problems)
        self.ext_expr: Expr | None = dict(self.exprs).get(self.external_id)
        keys = route.key if isinstance(route.key, list) else [route.key] if route.key else None
        self.key_columns: list[str] | None = keys
        self.ignore = {c.lower() for c in route.ignore_fields}
        self.auto = {k.lower(): v for k, v in (auto_fields or {}).items()}
        self.soft_field = route.soft_delete_field if route.deletes == "soft" else None

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _typed(rec: SinkRecord, row: Mapping[str, Any] | None) -> dict[str, Any]:
        if row is None:
            return {}
        schemas = rec.fields
        if not schemas:
            # Schemaless topics and MongoDB (Extended JSON documents): plain values.
            return {k: from_ejson(v) for k, v in row.items()}
        return {k: from_connect(v, schemas.get(k)) for k, v in row.items()}

    def external_value(self, rec: SinkRecord, row: Mapping[str, Any]) -> str:
        """The external-ID value of a record: its mapped field, the `key` columns or the record key."""
        merged = {**self._typed(rec, rec.key), **row} if rec.key else dict(row)
        try:
            if self.ext_expr is not None:
                value = self.ext_expr(merged)
            else:
                cols = self.key_columns or list(rec.key_fields) or list(rec.key or {})
                if not cols:
                    raise RecordError(
                        f"no external-ID value for {self.route.sobject}.{self.external_id}: the "
                        "record has no key; map the external ID in [routes.fields] or set `key`"
                    )
                parts = [render(merged[c]) for c in cols]
                value = (
                    parts[0]
                    if len(parts) == 1
                    else "|".join("" if p is None else str(p) for p in parts)
                )
        except KeyError as exc:
            raise RecordError(
                f"no external-ID value for {self.route.sobject}.{self.external_id}: "
                f"column {exc.args[0]!r} is not in the record"
            ) from None
        value = render(value)
        if value is None or value == "":
            raise RecordError(
                f"empty external-ID value for {self.route.sobject}.{self.external_id}"
            )
        return value if isinstance(value, str) else str(value)

    def values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Mapped SObject field values (relationship keys dotted, lookups cleared when null)."""
        out: dict[str, Any] = {}
        if self.exprs:
            for name, expr in self.exprs:
                try:
                    v = expr(row)
                except KeyError:
                    continue  # column absent from this record: leave the field as it is
                except (ValueError, ArithmeticError, TypeError) as exc:
                    raise RecordError(f"cannot map {name}: {exc}") from None
                v = render(v)
                if "." in name:
                    if v is None:
                        rel, _ = lookup_parts(name) or (name, "")
                        out[null_lookup_field(rel)] = None
                        continue
                    # External IDs are matched as text (an int key 9 must find "9").
                    v = str(v) if not isinstance(v, str) else v
                out[name] = v
        else:
            for col, v in row.items():
                low = col.lower()
                if low in self.ignore:
                    continue
                target = self.auto.get(low)
                if target is not None:
                    out[target] = render(v)
        return out

    def map(self, rec: SinkRecord) -> SfOp | None:
        """The operation for one record, or None when the route ignores it."""
        op = rec.op
        if op == OP_TRUNCATE:
            return None
        if op == OP_DELETE:
            mode = self.route.deletes
            if mode == "ignore":
                return None
            before = self._typed(rec, rec.before)
            ext = self.external_value(rec, before)
            if mode == "soft":
                assert self.soft_field is not None
                return SfOp(UPSERT, ext, {self.external_id: ext, self.soft_field: True})
            return SfOp(DELETE, ext, {})
        after = self._typed(rec, rec.after)
        ext = self.external_value(rec, after)
        vals = self.values(after)
        vals[self.external_id] = ext
        if self.soft_field is not None:
            vals[self.soft_field] = False
        return SfOp(UPSERT, ext, vals)

    @property
    def parents(self) -> list[str]:
        """Relationship names this route looks up (``Account__r`` ...)."""
        return sorted({p[0] for n, _ in self.exprs if (p := lookup_parts(n))})
