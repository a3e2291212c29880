"""In-memory SObject store: validation of every write against the schema, indexes, undo log."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .coerce import check, format_datetime, from_csv, from_json
from .errors import SfError, not_found
from .ids import IdFactory, to18
from .schema import FieldDef, ObjectSchema

NULL_CSV = "#N/A"


class MultipleMatches(Exception):
    """An external-id lookup that matched more than one record."""

    def __init__(self, field: FieldDef, value: Any, ids: list[str]) -> None:
        super().__init__(f"{field.name}={value!r} matched {len(ids)} records")
        self.field = field
        self.value = value
        self.ids = ids

    def record_error(self) -> SfError:
        return SfError(
            "DUPLICATE_EXTERNAL_ID",
            f"{self.field.label or self.field.name}: more than one record found for external id field: {self.ids}",
            [self.field.name],
        )


class Tx:
    """One atomic unit of writes; `rollback()` undoes every write made through it.

    ``origin`` / ``user``: who wrote (``Sforce-Call-Options`` client, session user), copied
    into change events by the Pub/Sub part of the emulator when the transaction commits.
    """

    def __init__(self, store: Store, fault: Callable[[str | None], SfError | None] | None) -> None:
        self.store = store
        self.fault = fault
        self.undo: list[tuple[Any, ...]] = []
        ctx = store.context
        self.origin: str = getattr(ctx, "origin", "")
        self.user: str = getattr(ctx, "user", "")

    def check_fault(self, rid: str | None) -> None:
        if self.fault is not None:
            err = self.fault(rid)
            if err is not None:
                raise err

    def rollback(self) -> None:
        self.store._undo(self.undo)
        self.undo = []


def _now() -> str:
    return format_datetime(dt.datetime.now(dt.UTC))


class Store:
    """Records per object, with case-insensitive indexes on external-id/unique/idLookup fields."""

    def __init__(self, objects: list[ObjectSchema], ids: IdFactory | None = None) -> None:
        self.lock = threading.RLock()
        # who is writing on this thread (set per request); read by Tx
        self.context = threading.local()
        # called with each committed Tx that wrote something (change data capture)
        self.on_commit: Callable[[Tx], None] | None = None
        self.ids = ids or IdFactory()
        self.objects: dict[str, ObjectSchema] = {}
        self.by_prefix: dict[str, ObjectSchema] = {}
        self.live: dict[str, dict[str, dict[str, Any]]] = {}
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {}
        self.indexes: dict[str, dict[str, dict[Any, set[str]]]] = {}
        for obj in objects:
            self.add_object(obj)

    # ---- schema -------------------------------------------------------------------------

    def add_object(self, obj: ObjectSchema) -> None:
        if obj.key_prefix in self.by_prefix and self.by_prefix[obj.key_prefix].name != obj.name:
            raise ValueError(f"key prefix {obj.key_prefix} of {obj.name} is already used")
        self.objects[obj.name.lower()] = obj
        self.by_prefix[obj.key_prefix] = obj
        self.live.setdefault(obj.name, {})
        self.deleted.setdefault(obj.name, {})
        self.indexes[obj.name] = {
            f.name: {}
            for f in obj.fields
            if f.type not in ("id", "boolean") and (f.external_id or f.unique or f.id_lookup)
        }

    def schema(self, name: str) -> ObjectSchema | None:
        return self.objects.get(name.lower())

    # ---- reads --------------------------------------------------------------------------

    def get(self, obj: ObjectSchema, rid: str) -> dict[str, Any] | None:
        return self.live[obj.name].get(rid)

    def records(self, obj: ObjectSchema) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.live[obj.name].values()]

    @staticmethod
    def _norm(f: FieldDef, value: Any) -> Any:
        if isinstance(value, str) and not f.case_sensitive:
            return value.lower()
        return value

    def find(self, obj: ObjectSchema, f: FieldDef, value: Any) -> list[str]:
        """Ids of live records whose field f equals value (external-id semantics)."""
        if f.type == "id":
            rid = to18(str(value)) if value is not None else None
            return [rid] if rid and rid in self.live[obj.name] else []
        index = self.indexes[obj.name].get(f.name)
        key = self._norm(f, value)
        if index is not None:
            return sorted(index.get(key, ()))
        return [
            rid for rid, rec in self.live[obj.name].items() if self._norm(f, rec.get(f.name)) == key
        ]

    def locate(
        self, obj: ObjectSchema | None, raw_id: Any, field_name: str = "Id"
    ) -> tuple[ObjectSchema, str]:
        """Resolve an id to (object, 18-char id) of a live record, or raise the per-record error."""
        rid = to18(raw_id) if isinstance(raw_id, str) else None
        if rid is None:
            raise SfError(
                "MALFORMED_ID", f"malformed id {raw_id}", [field_name] if field_name != "Id" else []
            )
        owner = self.by_prefix.get(rid[:3])
        if owner is None or (obj is not None and owner is not obj):
            raise SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if rid in self.deleted[owner.name]:
            raise SfError("ENTITY_IS_DELETED", "entity is deleted", [])
        if rid not in self.live[owner.name]:
            raise SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        return owner, rid

    # ---- transactions -------------------------------------------------------------------

    @contextmanager
    def tx(self, fault: Callable[[str | None], SfError | None] | None = None) -> Iterator[Tx]:
        """Hold the store lock for a unit of writes; roll back if an exception escapes."""
        with self.lock:
            t = Tx(self, fault)
            try:
                yield t
            except BaseException:
                t.rollback()
                raise
            if t.undo and self.on_commit is not None:
                self.on_commit(t)

    def set_context(self, origin: str, user: str) -> None:
        """Who writes on this thread from now on (origin: a Sforce-Call-Options value)."""
        self.context.origin = origin
        self.context.user = user

    def _index_add(self, obj: ObjectSchema, rid: str, rec: dict[str, Any]) -> None:
        for name, index in self.indexes[obj.name].items():
            value = rec.get(name)
            if value is not None:
                index.setdefault(self._norm(obj.by_name[name.lower()], value), set()).add(rid)

    def _index_remove(self, obj: ObjectSchema, rid: str, rec: dict[str, Any]) -> None:
        for name, index in self.indexes[obj.name].items():
            value = rec.get(name)
            if value is not None:
                key = self._norm(obj.by_name[name.lower()], value)
                ids = index.get(key)
                if ids is not None:
                    ids.discard(rid)
                    if not ids:
                        del index[key]

    def _undo(self, log: list[tuple[Any, ...]]) -> None:
        for entry in reversed(log):
            kind, obj, rid = entry[0], entry[1], entry[2]
            live = self.live[obj.name]
            if kind == "insert":
                rec = live.pop(rid)
                self._index_remove(obj, rid, rec)
            elif kind == "update":
                self._index_remove(obj, rid, live[rid])
                live[rid] = entry[3]
                self._index_add(obj, rid, entry[3])
            elif kind == "undelete":
                rec = live.pop(rid)
                self._index_remove(obj, rid, rec)
                self.deleted[obj.name][rid] = {**rec, "IsDeleted": True}
            elif kind == "delete":
                rec = self.deleted[obj.name].pop(rid)
                rec["IsDeleted"] = False
                live[rid] = rec
                self._index_add(obj, rid, rec)

    # ---- validation ---------------------------------------------------------------------

    def _reference(self, f: FieldDef, value: str) -> str:
        rid = to18(value)
        if rid is None:
            raise SfError(
                "MALFORMED_ID",
                f"{f.label or f.name}: id value of incorrect type: {value}",
                [f.name],
            )
        owner = self.by_prefix.get(rid[:3])
        if owner is None or owner.name not in f.reference_to:
            raise SfError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label or f.name}: id value of incorrect type: {value}",
                [f.name],
            )
        if rid in self.deleted[owner.name]:
            raise SfError("ENTITY_IS_DELETED", "entity is deleted", [f.name])
        if rid not in self.live[owner.name]:
            raise SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        return rid

    def _by_foreign_key(self, f: FieldDef, ext_name: str, value: Any) -> str:
        target = self.schema(f.reference_to[0]) if f.reference_to else None
        if target is None:
            raise SfError(
                "INVALID_FIELD", f"Cannot resolve relationship {f.relationship_name}", [f.name]
            )
        ext = target.field(ext_name)
        if ext is None or not (ext.external_id or ext.id_lookup or ext.type == "id"):
            raise SfError(
                "INVALID_FIELD",
                f"Field name provided, {ext_name} is not an External ID or indexed field for {target.name}",
                [],
            )
        if ext.type != "id":
            value = from_json(ext, value)
        matches = self.find(target, ext, value)
        if not matches:
            raise SfError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {ext.name} in entity {target.name}",
                [],
            )
        if len(matches) > 1:
            raise SfError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} matched more than one record for field {ext.name} in entity {target.name}",
                [],
            )
        return matches[0]

    def prepare(
        self, obj: ObjectSchema, raw: dict[str, Any], *, csv: bool, insert: bool
    ) -> dict[str, Any]:
        """Turn a request record into {field: value}; raises SfError or TypeMismatch."""
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                rel_name, _, ext_name = key.partition(".") if csv else (key, "", "")
                rel = obj.by_relationship.get(rel_name.lower())
                if rel is not None and csv and ext_name:
                    if value == "" or value == NULL_CSV:
                        if value == NULL_CSV or insert:
                            out[rel.name] = None
                        continue
                    out[rel.name] = self._by_foreign_key(rel, ext_name, value)
                    continue
                if rel is not None and not csv and isinstance(value, dict):
                    keys = [k for k in value if k != "attributes"]
                    if len(keys) != 1:
                        raise SfError(
                            "INVALID_FIELD",
                            f"The relationship {rel.relationship_name} must name exactly one external ID field",
                            [],
                        )
                    out[rel.name] = self._by_foreign_key(rel, keys[0], value[keys[0]])
                    continue
                raise SfError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", []
                )
            if f.type == "id":
                if insert and value not in (None, ""):
                    raise SfError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                continue
            if csv:
                if value == "":
                    if not insert:
                        continue
                    value = None
                elif value == NULL_CSV:
                    value = None
                else:
                    value = from_csv(f, value)
            else:
                value = from_json(f, value)
            if (insert and not f.createable) or (not insert and not f.updateable):
                raise SfError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security settings of "
                    "this field and verify that it is read/write for your profile or permission set.",
                    [f.name],
                )
            check(f, value)
            if f.type == "reference" and value is not None:
                value = self._reference(f, value)
            out[f.name] = value
        return out

    def _check_unique(self, obj: ObjectSchema, vals: dict[str, Any], rid: str | None) -> None:
        for name, value in vals.items():
            f = obj.by_name[name.lower()]
            if value is None or not f.unique:
                continue
            others = [o for o in self.find(obj, f, value) if o != rid]
            if others:
                raise SfError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {others[0]}",
                    [],
                )

    # ---- writes -------------------------------------------------------------------------

    def insert(self, tx: Tx, obj: ObjectSchema, raw: dict[str, Any], *, csv: bool = False) -> str:
        vals = self.prepare(obj, raw, csv=csv, insert=True)
        missing = [f.name for f in obj.fields if f.required_on_create and vals.get(f.name) is None]
        if missing:
            raise SfError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        self._check_unique(obj, vals, None)
        tx.check_fault(None)
        rid = self.ids.new(obj.key_prefix)
        now = _now()
        rec: dict[str, Any] = {}
        for f in obj.fields:
            rec[f.name] = f.default_value if f.defaulted_on_create else None
        rec.update(vals)
        rec.update(
            Id=rid, IsDeleted=False, CreatedDate=now, LastModifiedDate=now, SystemModstamp=now
        )
        self._derive(obj, rec, rid)
        self.live[obj.name][rid] = rec
        self._index_add(obj, rid, rec)
        tx.undo.append(("insert", obj, rid))
        return rid

    def _derive(self, obj: ObjectSchema, rec: dict[str, Any], rid: str) -> None:
        """System-computed fields: auto-number Name, Contact.Name, Opportunity.IsClosed."""
        name = obj.field("Name")
        if name is not None and name.auto_number and rec.get("Name") is None:
            rec["Name"] = (
                f"{obj.name.removesuffix('__c')[:3].upper()}-{len(self.live[obj.name]) + len(self.deleted[obj.name]) + 1:06d}"
            )
        if obj.name == "Contact":
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        if obj.name == "Opportunity":
            rec["IsClosed"] = str(rec.get("StageName", "")).startswith("Closed")

    def update(
        self, tx: Tx, obj: ObjectSchema, raw_id: Any, raw: dict[str, Any], *, csv: bool = False
    ) -> str:
        _, rid = self.locate(obj, raw_id)
        vals = self.prepare(obj, raw, csv=csv, insert=False)
        missing = [n for n, v in vals.items() if v is None and not obj.by_name[n.lower()].nillable]
        if missing:
            raise SfError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        self._check_unique(obj, vals, rid)
        tx.check_fault(rid)
        live = self.live[obj.name]
        old = live[rid]
        rec = {**old, **vals, "LastModifiedDate": _now()}
        rec["SystemModstamp"] = rec["LastModifiedDate"]
        self._derive(obj, rec, rid)
        self._index_remove(obj, rid, old)
        live[rid] = rec
        self._index_add(obj, rid, rec)
        tx.undo.append(("update", obj, rid, old))
        return rid

    def upsert(
        self,
        tx: Tx,
        obj: ObjectSchema,
        ext: FieldDef,
        value: Any,
        raw: dict[str, Any],
        *,
        csv: bool = False,
    ) -> tuple[str, bool]:
        """Update the record whose ext field equals value, or insert one; returns (id, created)."""
        body = {k: v for k, v in raw.items() if k.lower() != ext.name.lower()}
        if ext.type == "id":
            if value in (None, ""):
                return self.insert(tx, obj, body, csv=csv), True
            return self.update(tx, obj, value, body, csv=csv), False
        if value in (None, ""):
            raise SfError("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])
        value = from_csv(ext, value) if csv else from_json(ext, value)
        matches = self.find(obj, ext, value)
        if len(matches) > 1:
            raise MultipleMatches(ext, value, matches)
        if matches:
            return self.update(tx, obj, matches[0], body, csv=csv), False
        if not ext.createable:
            raise SfError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {ext.name}.",
                [ext.name],
            )
        body[ext.name] = value
        return self.insert(tx, obj, body, csv=csv), True

    def delete(self, tx: Tx, obj: ObjectSchema | None, raw_id: Any) -> str:
        owner, rid = self.locate(obj, raw_id)
        tx.check_fault(rid)
        rec = self.live[owner.name].pop(rid)
        self._index_remove(owner, rid, rec)
        rec = {**rec, "IsDeleted": True, "SystemModstamp": _now()}
        self.deleted[owner.name][rid] = rec
        tx.undo.append(("delete", owner, rid))
        return rid

    def undelete(self, tx: Tx, obj: ObjectSchema, raw_id: Any) -> str:
        """Restore a deleted record from the recycle bin."""
        rid = to18(raw_id) if isinstance(raw_id, str) else None
        if rid is None or rid not in self.deleted[obj.name]:
            raise SfError("UNDELETE_FAILED", "Entity is not in the recycle bin", [])
        rec = {**self.deleted[obj.name].pop(rid), "IsDeleted": False}
        rec["LastModifiedDate"] = rec["SystemModstamp"] = _now()
        self.live[obj.name][rid] = rec
        self._index_add(obj, rid, rec)
        tx.undo.append(("undelete", obj, rid))
        return rid

    # ---- output -------------------------------------------------------------------------

    @staticmethod
    def render(
        obj: ObjectSchema,
        rec: dict[str, Any],
        api_version: str,
        fields: list[FieldDef] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{api_version}/sobjects/{obj.name}/{rec['Id']}",
            }
        }
        for f in fields if fields is not None else obj.fields:
            out[f.name] = rec.get(f.name)
        return out


def single_lookup_error(err: SfError) -> None:
    """Map a locate() error of a single-record URL to the REST status Salesforce uses."""
    if err.code == "INVALID_CROSS_REFERENCE_KEY":
        raise not_found() from None
