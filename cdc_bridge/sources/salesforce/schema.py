"""One captured object as Kafka sees it: columns from the describe, values in Connect form.

Salesforce types map to Kafka Connect types the Debezium way: ``date`` as
``io.debezium.time.Date`` (days), ``datetime`` as ``io.debezium.time.ZonedTimestamp`` (ISO
string, UTC), numbers as int32/int64/float64, everything else as strings. Compound fields
(``BillingAddress``, a contact's ``Name``, geolocations) are not columns: their components
are (``BillingCity``, ``FirstName``, ``Loc__Latitude__s``) — the flat fields the Salesforce
sink writes back, so a round trip is lossless. Values arrive in three shapes — REST JSON
(retrieve, query), Bulk CSV (snapshot) and Avro (change events) — and come out identical.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc_bridge.events import CONNECTOR_SALESFORCE, Column, TableSchema

__all__ = ["ObjectModel", "flat_name"]

_EPOCH = dt.date(1970, 1, 1)
_COMPOUND_TYPES = frozenset({"address", "location"})


def flat_name(parent: str, part: str) -> str:
    """The flat field of a compound's component: BillingAddress.City -> BillingCity."""
    if parent.endswith("Address"):
        return parent[: -len("Address")] + part
    if parent.endswith("__c"):
        return f"{parent[:-3]}__{part}__s"
    return part


def _schema(sf_type: str, optional: bool) -> dict[str, Any]:
    if sf_type == "boolean":
        return {"type": "boolean", "optional": optional}
    if sf_type == "int":
        return {"type": "int32", "optional": optional}
    if sf_type == "long":
        return {"type": "int64", "optional": optional}
    if sf_type in ("double", "currency", "percent"):
        return {"type": "double", "optional": optional}
    if sf_type == "date":
        return {
            "type": "int32",
            "optional": optional,
            "name": "io.debezium.time.Date",
            "version": 1,
        }
    if sf_type == "datetime":
        return {
            "type": "string",
            "optional": optional,
            "name": "io.debezium.time.ZonedTimestamp",
            "version": 1,
        }
    return {"type": "string", "optional": optional}


def _iso_ms(ms: int) -> str:
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_datetime(text: str) -> str:
    """REST / CSV datetime (2024-01-02T03:04:05.000+0000) -> 2024-01-02T03:04:05.000Z."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    ms = int(value.timestamp() * 1000)
    return _iso_ms(ms)


@dataclass
class ObjectModel:
    """A captured object: its TableSchema and converters from every input shape."""

    name: str
    table: TableSchema
    types: dict[str, str]  # column -> Salesforce type
    fields: list[str]  # columns in order (Id first)

    @classmethod
    def from_describe(
        cls,
        source_name: str,
        org: str,
        describe: Mapping[str, Any],
        only: Iterable[str] | None = None,
    ) -> ObjectModel:
        name = str(describe["name"])
        wanted = {f.lower() for f in only} if only else None
        types: dict[str, str] = {}
        columns: list[Column] = []
        for f in describe.get("fields", []):
            fname, ftype = f["name"], f.get("type", "string")
            if ftype in _COMPOUND_TYPES:
                continue
            if fname != "Id" and wanted is not None and fname.lower() not in wanted:
                continue
            types[fname] = ftype
            col = Column(fname, _schema(ftype, fname != "Id"))
            if fname == "Id":
                columns.insert(0, col)
            else:
                columns.append(col)
        if "Id" not in types:
            raise ValueError(f"{name}: the describe has no Id field")
        if wanted is not None:
            missing = sorted(wanted - {t.lower() for t in types})
            if missing:
                raise ValueError(f"{name}: no such fields: {missing}")
        table = TableSchema(
            connector=CONNECTOR_SALESFORCE,
            source_name=source_name,
            database=org,
            namespace="",
            table=name,
            columns=tuple(columns),
            key_columns=("Id",),
            topic=f"{source_name}.{name}",
        )
        return cls(name, table, types, [c.name for c in columns])

    # -- value conversion ------------------------------------------------------------------

    def _convert(self, ftype: str, value: Any) -> Any:
        if value is None:
            return None
        if ftype == "date":
            if isinstance(value, int):
                return value
            return (dt.date.fromisoformat(str(value)[:10]) - _EPOCH).days
        if ftype == "datetime":
            if isinstance(value, int):
                return _iso_ms(value)
            return _parse_datetime(str(value))
        if ftype == "boolean":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if ftype in ("int", "long"):
            return int(value)
        if ftype in ("double", "currency", "percent"):
            return float(value)
        return str(value) if not isinstance(value, str) else value

    def from_rest(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """A record of retrieve / query JSON -> a full row."""
        conv = self._convert
        return {f: conv(t, rec.get(f)) for f, t in self.types.items()}

    def from_csv(self, rec: Mapping[str, str]) -> dict[str, Any]:
        """A Bulk API 2.0 CSV row (empty string = null) -> a full row."""
        conv = self._convert
        out: dict[str, Any] = {}
        for f, t in self.types.items():
            raw = rec.get(f, "")
            out[f] = None if raw == "" else conv(t, raw)
        return out

    def flatten_event(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Change-event fields -> {flat field: value}, compound records spread out."""
        out: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, Mapping):
                for part, sub in value.items():
                    out[flat_name(key, part)] = sub
            else:
                out[key] = value
        return out

    def flat_names(self, names: Iterable[str]) -> list[str]:
        """Header field names (``BillingAddress.City``) -> flat field names (``BillingCity``)."""
        out = []
        for n in names:
            parent, dot, part = n.partition(".")
            out.append(flat_name(parent, part) if dot else n)
        return out

    def from_event(
        self, rid: str, record: Mapping[str, Any], changed: Iterable[str] | None
    ) -> dict[str, Any]:
        """A row from a change event: every field (``changed`` None) or only the changed ones.

        Fields not in ``changed`` are null (a change event does not carry their values).
        """
        flat = self.flatten_event(record)
        conv = self._convert
        keep = None if changed is None else set(changed)
        row: dict[str, Any] = {}
        for f, t in self.types.items():
            if f == "Id":
                row[f] = rid
            elif keep is None or f in keep:
                row[f] = conv(t, flat.get(f))
            else:
                row[f] = None
        return row
