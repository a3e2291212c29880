"""Preflight for `cdc-bridge check --connect`: describe target SObjects, report every mapping problem.

Nothing is written. Each problem names the route key (``routes.fields.Foo__c``) and says how
to fix it, and all of them are reported together, so one run of ``check`` is enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc_bridge.errors import ConfigProblem
from cdc_bridge.sinks.salesforce.client import SalesforceClient
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig
from cdc_bridge.sinks.salesforce.errors import SalesforceApiError
from cdc_bridge.sinks.salesforce.mapping import lookup_parts

__all__ = ["Describe", "Preflight", "check_route"]

_NUMERIC = {"double", "currency", "percent", "int", "long"}
_TEXTUAL = {
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "picklist",
    "multipicklist",
    "combobox",
    "encryptedstring",
    "id",
    "reference",
}
# format -> field types it can feed
_FORMAT_TYPES = {
    "date": {"date", "datetime"} | _TEXTUAL,
    "datetime": {"datetime"} | _TEXTUAL,
    "time": {"time"} | _TEXTUAL,
    "decimal": _NUMERIC | _TEXTUAL,
    "int": _NUMERIC | _TEXTUAL,
    "float": _NUMERIC | _TEXTUAL,
    "bool": {"boolean"} | _TEXTUAL,
    "string": _TEXTUAL | {"date", "datetime", "time"} | _NUMERIC | {"boolean"},
}


@dataclass
class Describe:
    """The parts of an SObject describe the sink uses, fields keyed case-insensitively."""

    name: str
    fields: dict[str, dict[str, Any]]
    deletable: bool = True
    relationships: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Describe:
        fields = {f["name"].lower(): f for f in doc.get("fields", [])}
        rels = {
            f["relationshipName"].lower(): f
            for f in doc.get("fields", [])
            if f.get("relationshipName")
        }
        return cls(doc.get("name", ""), fields, bool(doc.get("deletable", True)), rels)

    def field(self, name: str) -> dict[str, Any] | None:
        return self.fields.get(name.lower())

    def writable_fields(self) -> dict[str, str]:
        """lower name -> API name of fields the sink may write (for automatic mapping)."""
        return {
            k: f["name"]
            for k, f in self.fields.items()
            if f.get("createable") or f.get("updateable")
        }


@dataclass
class Preflight:
    """Result of checking one route: problems, and the describes fetched on the way."""

    problems: list[ConfigProblem]
    describe: Describe | None
    parents: dict[str, Describe]


def _describe(client: SalesforceClient, sobject: str) -> Describe | None:
    try:
        return Describe.from_json(client.describe(sobject))
    except SalesforceApiError as exc:
        if exc.status == 404:
            return None
        raise


def _const_ok(value: Any, ftype: str) -> bool:
    if isinstance(value, bool):
        return ftype in ("boolean", *_TEXTUAL)
    if isinstance(value, (int, float)):
        return ftype in _NUMERIC or ftype in _TEXTUAL
    return True


def check_route(
    client: SalesforceClient, route: SalesforceRouteConfig, where: str = "routes"
) -> Preflight:
    """Describe the route's SObject (and lookup parents) and list every problem."""
    problems: list[ConfigProblem] = []
    p = problems.append
    desc = _describe(client, route.sobject)
    if desc is None:
        p(
            ConfigProblem(
                f"{where}.sobject",
                f"SObject {route.sobject!r} does not exist or is not visible to the integration user; check the API name (custom objects end in __c) and the user's permissions",
            )
        )
        return Preflight(problems, None, {})

    ext = desc.field(route.external_id)
    if ext is None:
        p(
            ConfigProblem(
                f"{where}.external_id", f"{route.sobject} has no field {route.external_id!r}"
            )
        )
    elif not (ext.get("externalId") or ext.get("name") == "Id"):
        p(
            ConfigProblem(
                f"{where}.external_id",
                f"{route.sobject}.{ext['name']} is not marked External ID; tick 'External ID' on the field in Setup",
            )
        )

    if route.deletes == "delete" and not desc.deletable:
        p(
            ConfigProblem(
                f"{where}.deletes",
                f"the integration user cannot delete {route.sobject} records; grant delete or set deletes = 'soft' / 'ignore'",
            )
        )
    if route.deletes == "soft" and route.soft_delete_field:
        f = desc.field(route.soft_delete_field)
        if f is None:
            p(
                ConfigProblem(
                    f"{where}.soft_delete_field",
                    f"{route.sobject} has no field {route.soft_delete_field!r}",
                )
            )
        elif f.get("type") != "boolean":
            p(
                ConfigProblem(
                    f"{where}.soft_delete_field",
                    f"{route.sobject}.{f['name']} is a {f.get('type')} field; soft deletes need a checkbox (boolean)",
                )
            )
        elif not f.get("updateable"):
            p(
                ConfigProblem(
                    f"{where}.soft_delete_field", f"{route.sobject}.{f['name']} is not updateable"
                )
            )

    parents: dict[str, Describe] = {}
    for name, spec in route.fields.items():
        key = f"{where}.fields.{name}"
        parts = lookup_parts(name)
        if parts:
            rel, pfield = parts
            ref = desc.relationships.get(rel.lower())
            if ref is None:
                p(
                    ConfigProblem(
                        key,
                        f"{route.sobject} has no relationship {rel!r} (lookups use the relationship name: Account__r for Account__c, Account for AccountId)",
                    )
                )
                continue
            if not (ref.get("createable") or ref.get("updateable")):
                p(
                    ConfigProblem(
                        key, f"{route.sobject}.{ref['name']} is not createable or updateable"
                    )
                )
            targets = ref.get("referenceTo") or []
            if not targets:
                continue
            parent = parents.get(targets[0]) or _describe(client, targets[0])
            if parent is None:
                p(ConfigProblem(key, f"parent SObject {targets[0]} is not visible"))
                continue
            parents[targets[0]] = parent
            pf = parent.field(pfield)
            if pf is None:
                p(ConfigProblem(key, f"parent {targets[0]} has no field {pfield!r}"))
            elif not (pf.get("externalId") or pf.get("name") == "Id"):
                p(
                    ConfigProblem(
                        key,
                        f"{targets[0]}.{pf['name']} is not an External ID field; lookups by it need 'External ID' ticked",
                    )
                )
            continue
        f = desc.field(name)
        if f is None:
            p(
                ConfigProblem(
                    key,
                    f"{route.sobject} has no field {name!r}; check the API name (custom fields end in __c)",
                )
            )
            continue
        missing = [w for w in ("createable", "updateable") if not f.get(w)]
        if missing and f["name"].lower() != route.external_id.lower():
            p(
                ConfigProblem(
                    key,
                    f"{route.sobject}.{f['name']} is not {' or '.join(missing)} for the integration user (formula, system or read-only field?)",
                )
            )
        elif missing and not f.get("createable"):
            p(ConfigProblem(key, f"{route.sobject}.{f['name']} is not createable"))
        ftype = str(f.get("type", ""))
        if isinstance(spec, dict):
            fmt = spec.get("format")
            if fmt in _FORMAT_TYPES and ftype not in _FORMAT_TYPES[fmt]:
                p(
                    ConfigProblem(
                        key,
                        f"format {fmt!r} does not fit {route.sobject}.{f['name']}, a {ftype} field",
                    )
                )
            if "value" in spec and not _const_ok(spec["value"], ftype):
                p(
                    ConfigProblem(
                        key,
                        f"constant {spec['value']!r} does not fit {route.sobject}.{f['name']}, a {ftype} field",
                    )
                )
        elif not isinstance(spec, str) and not _const_ok(spec, ftype):
            p(
                ConfigProblem(
                    key,
                    f"constant {spec!r} does not fit {route.sobject}.{f['name']}, a {ftype} field",
                )
            )
    return Preflight(problems, desc, parents)
