"""The emulator's Pub/Sub API: Change Data Capture and platform events over gRPC with TLS.

Every committed write of the store (REST, sObject Collections, Bulk API 2.0, test helpers)
becomes change events on ``/data/<Object>ChangeEvent``: Avro-encoded with a per-object
schema (``ChangeEventHeader`` first, compound address/name fields as nested records), header
bitmaps (``changedFields``, ``nulledFields``, ``diffFields``) over the schema's field
positions, ``changeOrigin`` from the request's ``Sforce-Call-Options`` header and
``commitUser`` from the session. Records of one transaction with the same change type and the
same changed fields share one event (several ``recordIds``), as Salesforce does.

The bus keeps a replay log with a retention (by age and by count); a subscription that asks
for a replay id no longer retained fails as Salesforce does (``INVALID_ARGUMENT`` with the
``...replayid.corrupted`` error code in the trailers). Tests can inject gap and overflow
events, reset every open stream, slow down delivery, and publish platform events.

The encoders here are written independently of the source's decoders on purpose: a shared
bug would otherwise pass unnoticed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import fastavro
import grpc
import orjson

from cdc_bridge.sources.salesforce.pubsub import pubsub_api_pb2 as pb

from .auth import ORG_ID, USER_ID, Sessions
from .schema import FieldDef, ObjectSchema
from .store import Store, Tx

__all__ = ["REPLAY_CORRUPTED", "UI_USER_ID", "BusEvent", "EventBus", "PubSubServer"]

REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.topic.notfound"
UI_USER_ID = "0058d000000UIUSAAA"
API_USER_ID = f"{USER_ID}AAA"

# fields Salesforce leaves out of change events
_NOT_IN_EVENTS = {"IsDeleted", "SystemModstamp"}
_ADDRESS_PARTS = (
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
)
_ADDRESS_PREFIXES = ("Billing", "Shipping", "Mailing", "Other")
_NAME_PARTS = ("Salutation", "FirstName", "LastName", "MiddleName", "Suffix")

_HEADER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ChangeEventHeader",
    "namespace": "com.sforce.eventbus",
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {
            "name": "changeType",
            "type": {
                "type": "enum",
                "name": "ChangeType",
                "namespace": "com.sforce.eventbus",
                "symbols": [
                    "CREATE",
                    "UPDATE",
                    "DELETE",
                    "UNDELETE",
                    "GAP_CREATE",
                    "GAP_UPDATE",
                    "GAP_DELETE",
                    "GAP_UNDELETE",
                    "GAP_OVERFLOW",
                ],
            },
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}


def _avro_type(f: FieldDef) -> Any:
    if f.type == "boolean":
        return "boolean"
    if f.type == "int":
        return "int"
    if f.type == "long":
        return "long"
    if f.type in ("double", "currency", "percent"):
        return "double"
    if f.type == "datetime":
        return "long"  # epoch milliseconds
    if f.type == "date":
        return "int"  # days since the epoch
    return "string"


def _to_avro(f: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if f.type == "datetime":
        parsed = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
        return int(parsed.timestamp() * 1000)
    if f.type == "date":
        return (dt.date.fromisoformat(value) - dt.date(1970, 1, 1)).days
    if f.type in ("double", "currency", "percent"):
        return float(value)
    if f.type in ("int", "long"):
        return int(value)
    if f.type == "boolean":
        return bool(value)
    return str(value)


@dataclass
class _Slot:
    """One top-level field of the event schema: a plain field or a compound of components."""

    name: str
    field: FieldDef | None  # plain
    parts: list[tuple[str, FieldDef]]  # compound: (component name, flat field)


@dataclass
class ChangeSchema:
    """The Avro schema of one object's change events and how record fields map onto it."""

    obj: ObjectSchema
    slots: list[_Slot]
    schema_json: str
    schema_id: str
    parsed: Any
    topic: str

    @classmethod
    def build(cls, obj: ObjectSchema) -> ChangeSchema:
        fields = [f for f in obj.fields if f.name not in _NOT_IN_EVENTS and f.name != "Id"]
        by_name = {f.name: f for f in fields}
        used: set[str] = set()
        slots: list[_Slot] = []
        for f in fields:
            if f.name in used:
                continue
            prefix = next(
                (
                    p
                    for p in _ADDRESS_PREFIXES
                    if f.name.startswith(p) and f.name[len(p) :] in _ADDRESS_PARTS
                ),
                None,
            )
            if prefix is not None:
                parts = [
                    (part, by_name[prefix + part])
                    for part in _ADDRESS_PARTS
                    if prefix + part in by_name
                ]
                used.update(pf.name for _, pf in parts)
                slots.append(_Slot(f"{prefix}Address", None, parts))
                continue
            if f.name in _NAME_PARTS and "LastName" in by_name:
                parts = [(p, by_name[p]) for p in _NAME_PARTS if p in by_name]
                used.update(pf.name for _, pf in parts)
                used.add("Name")  # the derived full name is replaced by the compound
                slots.append(_Slot("Name", None, parts))
                continue
            if f.name == "Name" and "LastName" in by_name:
                continue
            used.add(f.name)
            slots.append(_Slot(f.name, f, []))
        avro_fields: list[dict[str, Any]] = [{"name": "ChangeEventHeader", "type": _HEADER_SCHEMA}]
        for slot in slots:
            if slot.field is not None:
                avro_fields.append(
                    {"name": slot.name, "type": ["null", _avro_type(slot.field)], "default": None}
                )
            else:
                rec_name = "Address" if slot.name.endswith("Address") else "Name"
                avro_fields.append(
                    {
                        "name": slot.name,
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": f"{rec_name}_{obj.name}_{slot.name}",
                                "namespace": "com.sforce.eventbus",
                                "fields": [
                                    {
                                        "name": part,
                                        "type": ["null", _avro_type(pf)],
                                        "default": None,
                                    }
                                    for part, pf in slot.parts
                                ],
                            },
                        ],
                        "default": None,
                    }
                )
        doc = {
            "type": "record",
            "name": f"{obj.name.removesuffix('__c')}ChangeEvent",
            "namespace": "com.sforce.eventbus",
            "fields": avro_fields,
        }
        text = orjson.dumps(doc).decode()
        schema_id = hashlib.md5(text.encode()).hexdigest()[:22]
        topic = f"/data/{change_event_name(obj.name)}"
        return cls(obj, slots, text, schema_id, fastavro.parse_schema(doc, named_schemas={}), topic)

    def encode(
        self,
        header: dict[str, Any],
        rec: dict[str, Any] | None,
        changed: set[str] | None,
    ) -> bytes:
        """Avro payload: all fields of ``rec`` (``changed`` None), only ``changed`` ones, or none."""
        body: dict[str, Any] = {"ChangeEventHeader": header}
        changed_bits = 0
        nulled_bits = 0
        nested_changed: dict[int, int] = {}
        nested_nulled: dict[int, int] = {}
        for pos, slot in enumerate(self.slots, start=1):
            if rec is None:
                body[slot.name] = None
                continue
            if slot.field is not None:
                include = changed is None or slot.name in changed
                value = _to_avro(slot.field, rec.get(slot.name)) if include else None
                body[slot.name] = value
                if changed is not None and include:
                    changed_bits |= 1 << pos
                    if value is None:
                        nulled_bits |= 1 << pos
                continue
            sub: dict[str, Any] = {}
            any_part = False
            for i, (part, pf) in enumerate(slot.parts):
                include = changed is None or pf.name in changed
                value = _to_avro(pf, rec.get(pf.name)) if include else None
                sub[part] = value
                any_part = any_part or (include and (value is not None or changed is not None))
                if changed is not None and include:
                    nested_changed[pos] = nested_changed.get(pos, 0) | (1 << i)
                    if value is None:
                        nested_nulled[pos] = nested_nulled.get(pos, 0) | (1 << i)
            body[slot.name] = sub if any_part else None
        header["changedFields"] = _bitmap(changed_bits, nested_changed)
        header["nulledFields"] = _bitmap(nulled_bits, nested_nulled)
        header["diffFields"] = []
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed, body)
        return buf.getvalue()


def _bitmap(top: int, nested: dict[int, int]) -> list[str]:
    if not top and not nested:
        return []
    return [f"0x{top:X}", *(f"{pos}-0x{bits:X}" for pos, bits in sorted(nested.items()))]


def change_event_name(sobject: str) -> str:
    """Account -> AccountChangeEvent, Order__c -> Order__ChangeEvent (Salesforce's naming)."""
    if sobject.endswith("__c"):
        return sobject[:-3] + "__ChangeEvent"
    return sobject + "ChangeEvent"


@dataclass
class BusEvent:
    """One event of the replay log. The Avro payload of a change event is encoded on first
    delivery (``raw`` is then a function over a copy of the values), so writes stay cheap."""

    replay: int
    topic: str
    schema_id: str
    raw: bytes | Callable[[], bytes]
    event_id: str
    at: float

    @property
    def payload(self) -> bytes:
        raw = self.raw
        if not isinstance(raw, bytes):
            raw = self.raw = raw()
        return raw


def _later(
    sch: ChangeSchema, header: dict[str, Any], rec: dict[str, Any] | None, fields: set[str] | None
) -> Callable[[], bytes]:
    """Encode at delivery, from the values as they are now."""
    snap = None if rec is None else dict(rec) if fields is None else {n: rec.get(n) for n in fields}
    return functools.partial(sch.encode, header, snap, fields)


@dataclass
class _PlatformTopic:
    name: str
    schema_json: str
    schema_id: str
    parsed: Any


@dataclass
class _Stream:
    """One open Subscribe call (for resets)."""

    context: Any
    reset: threading.Event = field(default_factory=threading.Event)


class EventBus:
    """The replay log of every topic, and the change-capture hook of the store."""

    def __init__(
        self, store: Store, *, retention_s: float = 72 * 3600, max_events: int = 1_000_000
    ):
        self.store = store
        self.retention_s = retention_s
        self.max_events = max_events
        self._log: deque[BusEvent] = deque()
        self._next_replay = 1
        self._expired_upto = 0  # highest replay id dropped from the log
        self._cond = threading.Condition()
        self._schemas: dict[str, ChangeSchema] = {}  # object name -> change schema
        self._by_schema_id: dict[str, str] = {}  # schema id -> JSON
        self._platform: dict[str, _PlatformTopic] = {}
        self._commit_number = 0
        self._run = uuid.uuid4().hex  # this bus's id, the base of event ids and transaction keys
        self.delivery_delay_s = 0.0
        self.streams: list[_Stream] = []
        self.published = 0
        store.on_commit = self._on_commit

    # ---- schemas and topics -------------------------------------------------------------

    def change_schema(self, obj: ObjectSchema) -> ChangeSchema:
        sch = self._schemas.get(obj.name)
        if sch is None:
            sch = self._schemas[obj.name] = ChangeSchema.build(obj)
            self._by_schema_id[sch.schema_id] = sch.schema_json
        return sch

    def topic_schema(self, topic: str) -> tuple[str, str] | None:
        """(schema id, schema JSON) of a topic, None if no such topic."""
        if topic.startswith("/data/") and topic.endswith("ChangeEvent"):
            base = topic[len("/data/") : -len("ChangeEvent")]
            name = base[:-2] + "__c" if base.endswith("__") else base
            obj = self.store.schema(name)
            if obj is None:
                return None
            sch = self.change_schema(obj)
            return sch.schema_id, sch.schema_json
        plat = self._platform.get(topic)
        return (plat.schema_id, plat.schema_json) if plat else None

    def schema_json(self, schema_id: str) -> str | None:
        return self._by_schema_id.get(schema_id)

    def define_platform_event(self, name: str, fields: dict[str, str]) -> str:
        """Declare ``/event/<name>`` with fields name -> Avro type (``EventUuid`` is added)."""
        topic = f"/event/{name}"
        doc = {
            "type": "record",
            "name": name,
            "namespace": "com.sforce.eventbus",
            "fields": [
                {"name": "CreatedDate", "type": "long"},
                {"name": "CreatedById", "type": "string"},
                {"name": "EventUuid", "type": ["null", "string"], "default": None},
                *({"name": k, "type": ["null", t], "default": None} for k, t in fields.items()),
            ],
        }
        text = orjson.dumps(doc).decode()
        sid = hashlib.md5(text.encode()).hexdigest()[:22]
        self._platform[topic] = _PlatformTopic(
            topic, text, sid, fastavro.parse_schema(doc, named_schemas={})
        )
        self._by_schema_id[sid] = text
        return topic

    def publish_platform_event(self, topic: str, values: dict[str, Any]) -> str:
        """Publish one platform event; returns its EventUuid."""
        plat = self._platform[topic]
        event_uuid = str(uuid.uuid4())
        body = {
            "CreatedDate": int(time.time() * 1000),
            "CreatedById": API_USER_ID,
            "EventUuid": event_uuid,
            **values,
        }
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, plat.parsed, body)
        self._append(topic, plat.schema_id, buf.getvalue())
        return event_uuid

    # ---- the log ------------------------------------------------------------------------

    def _append(self, topic: str, schema_id: str, payload: bytes | Callable[[], bytes]) -> int:
        with self._cond:
            replay = self._next_replay
            self._next_replay += 1
            self._log.append(
                BusEvent(
                    replay, topic, schema_id, payload, f"{self._run}-{replay:012x}", time.time()
                )
            )
            self.published += 1
            self._trim()
            self._cond.notify_all()
            return replay

    def _trim(self) -> None:
        horizon = time.time() - self.retention_s
        log = self._log
        while log and (len(log) > self.max_events or log[0].at < horizon):
            self._expired_upto = log.popleft().replay

    def expire(self, upto_replay: int | None = None) -> None:
        """Drop events from the log (all of them by default), as retention would."""
        with self._cond:
            while self._log and (upto_replay is None or self._log[0].replay <= upto_replay):
                self._expired_upto = self._log.popleft().replay

    @property
    def latest_replay(self) -> int:
        with self._cond:
            return self._next_replay - 1

    def events(self, topic: str | None = None) -> list[BusEvent]:
        with self._cond:
            return [e for e in self._log if topic is None or e.topic == topic]

    # ---- change capture -----------------------------------------------------------------

    def _header(
        self,
        obj: ObjectSchema,
        ids: list[str],
        change: str,
        origin: str,
        user: str,
        tx_key: str,
        seq: int,
        number: int,
    ) -> dict[str, Any]:
        return {
            "entityName": obj.name,
            "recordIds": ids,
            "changeType": change,
            "changeOrigin": origin,
            "transactionKey": tx_key,
            "sequenceNumber": seq,
            "commitTimestamp": int(time.time() * 1000),
            "commitNumber": number,
            "commitUser": user,
            "nulledFields": [],
            "diffFields": [],
            "changedFields": [],
        }

    def _on_commit(self, tx: Tx) -> None:
        """Turn a committed transaction's writes into change events (called under the store lock)."""
        self._commit_number += 1
        # uuid-shaped, cheaper than uuid4() on every write
        tx_key = f"{self._run[:8]}-0000-4000-8000-{self._commit_number:012x}"
        origin = tx.origin
        user = tx.user or API_USER_ID
        undo = tx.undo
        if len(undo) == 1 and undo[0][0] in ("insert", "delete"):  # the common case, fast
            kind, obj, rid = undo[0][0], undo[0][1], undo[0][2]
            sch = self.change_schema(obj)
            if kind == "insert":
                h = self._header(obj, [rid], "CREATE", origin, user, tx_key, 1, self._commit_number)
                self._append(
                    sch.topic, sch.schema_id, _later(sch, h, self.store.live[obj.name][rid], None)
                )
            else:
                h = self._header(obj, [rid], "DELETE", origin, user, tx_key, 1, self._commit_number)
                self._append(sch.topic, sch.schema_id, _later(sch, h, None, None))
            return
        # (object, change type, changed field names) -> record ids, in first-write order
        groups: dict[tuple[str, str, frozenset[str]], list[str]] = {}
        objs: dict[str, ObjectSchema] = {}
        firsts: dict[tuple[str, str], tuple[str, Any]] = {}
        for entry in tx.undo:
            kind, obj, rid = entry[0], entry[1], entry[2]
            objs[obj.name] = obj
            key = (obj.name, rid)
            if key not in firsts:
                firsts[key] = (kind, entry[3] if kind == "update" else None)
            else:  # several writes of one record in one transaction: one net change
                first_kind, old = firsts[key]
                if first_kind == "insert" and kind == "delete":
                    firsts[key] = ("skip", None)
                elif first_kind == "update" and kind == "delete":
                    firsts[key] = ("delete", None)
        for (oname, rid), (kind, old) in firsts.items():
            obj = objs[oname]
            if kind == "skip":
                continue
            if kind == "insert":
                groups.setdefault((oname, "CREATE", frozenset()), []).append(rid)
            elif kind == "undelete":
                groups.setdefault((oname, "UNDELETE", frozenset()), []).append(rid)
            elif kind == "delete":
                groups.setdefault((oname, "DELETE", frozenset()), []).append(rid)
            else:
                new = self.store.live[oname].get(rid)
                if new is None:
                    continue
                changed = frozenset(
                    f.name
                    for f in obj.fields
                    if f.name not in _NOT_IN_EVENTS and old.get(f.name) != new.get(f.name)
                )
                if changed:
                    groups.setdefault((oname, "UPDATE", changed), []).append(rid)
        seq = 0
        for (oname, change, changed), ids in groups.items():
            obj = objs[oname]
            sch = self.change_schema(obj)
            for start in range(0, len(ids), 200):
                chunk = ids[start : start + 200]
                seq += 1
                header = self._header(
                    obj, chunk, change, origin, user, tx_key, seq, self._commit_number
                )
                if change == "DELETE":
                    rec = None
                    fields: set[str] | None = None
                elif change == "UPDATE":
                    rec = self.store.live[oname][chunk[0]]
                    fields = set(changed)
                else:
                    rec = self.store.live[oname][chunk[0]]
                    fields = None
                if change in ("CREATE", "UNDELETE") and len(chunk) > 1:
                    # created records differ in their values: one event per record
                    for rid in chunk:
                        h = self._header(
                            obj, [rid], change, origin, user, tx_key, seq, self._commit_number
                        )
                        seq += 1
                        self._append(
                            sch.topic,
                            sch.schema_id,
                            _later(sch, h, self.store.live[oname][rid], None),
                        )
                    continue
                if change == "UPDATE" and len(chunk) > 1:
                    # one event only when the changed values are equal too
                    by_values: dict[bytes, list[str]] = {}
                    for rid in chunk:
                        vals = orjson.dumps(
                            [self.store.live[oname][rid].get(n) for n in sorted(changed)]
                        )
                        by_values.setdefault(vals, []).append(rid)
                    for same in by_values.values():
                        h = self._header(
                            obj, same, change, origin, user, tx_key, seq, self._commit_number
                        )
                        seq += 1
                        self._append(
                            sch.topic,
                            sch.schema_id,
                            _later(sch, h, self.store.live[oname][same[0]], set(changed)),
                        )
                    continue
                self._append(sch.topic, sch.schema_id, _later(sch, header, rec, fields))

    # ---- injected faults ----------------------------------------------------------------

    def inject_gap(self, sobject: str, ids: list[str], change: str = "UPDATE") -> int:
        """Publish a GAP_<change> event for these records (their values are not sent)."""
        obj = self.store.schema(sobject)
        assert obj is not None
        sch = self.change_schema(obj)
        header = self._header(obj, ids, f"GAP_{change}", "", API_USER_ID, str(uuid.uuid4()), 1, 0)
        return self._append(sch.topic, sch.schema_id, sch.encode(header, None, None))

    def inject_overflow(self, sobject: str) -> int:
        """Publish a GAP_OVERFLOW event (a transaction too large to send as change events)."""
        obj = self.store.schema(sobject)
        assert obj is not None
        sch = self.change_schema(obj)
        header = self._header(obj, [], "GAP_OVERFLOW", "", API_USER_ID, str(uuid.uuid4()), 1, 0)
        return self._append(sch.topic, sch.schema_id, sch.encode(header, None, None))

    def reset_streams(self) -> None:
        """End every open Subscribe stream with UNAVAILABLE (a server-side reset)."""
        for s in list(self.streams):
            s.reset.set()
        with self._cond:
            self._cond.notify_all()


def _replay_bytes(n: int) -> bytes:
    return n.to_bytes(8, "big")


class PubSubServer:
    """The gRPC server (TLS with the emulator's certificate) over one :class:`EventBus`."""

    def __init__(
        self,
        bus: EventBus,
        sessions: Sessions,
        *,
        host: str = "127.0.0.1",
        cert_file: str | None = None,
        key_file: str | None = None,
        keepalive_s: float = 270.0,
        idle_timeout_s: float | None = None,
        max_batch: int = 100,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.keepalive_s = keepalive_s
        self.idle_timeout_s = idle_timeout_s
        self.max_batch = max_batch
        self.calls: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handlers = {
            "Subscribe": grpc.stream_stream_rpc_method_handler(
                self._subscribe,
                request_deserializer=pb.FetchRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            ),
            "GetTopic": grpc.unary_unary_rpc_method_handler(
                self._get_topic,
                request_deserializer=pb.TopicRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            ),
            "GetSchema": grpc.unary_unary_rpc_method_handler(
                self._get_schema,
                request_deserializer=pb.SchemaRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            ),
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("eventbus.v1.PubSub", handlers),)
        )
        if cert_file and key_file:
            with open(cert_file, "rb") as fh:
                cert = fh.read()
            with open(key_file, "rb") as fh:
                key = fh.read()
            self.port = self._server.add_secure_port(
                f"{host}:0", grpc.ssl_server_credentials(((key, cert),))
            )
        else:
            self.port = self._server.add_insecure_port(f"{host}:0")
        self._server.start()

    def stop(self) -> None:
        self.bus.reset_streams()
        self._server.stop(0.5).wait(2)

    # ---- auth ---------------------------------------------------------------------------

    def _auth(self, context: grpc.ServicerContext) -> None:
        md = {k: v for k, v in context.invocation_metadata()}
        token = md.get("accesstoken")
        tenant = str(md.get("tenantid", ""))
        if self.sessions.valid(str(token) if token else None) is None or not md.get("instanceurl"):
            context.set_trailing_metadata((("error-code", AUTH_ERROR),))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid session or missing instanceurl")
        if tenant[:15] != ORG_ID:
            context.set_trailing_metadata((("error-code", AUTH_ERROR),))
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"tenantid {tenant!r} does not match the session's org",
            )

    def _topic(self, topic: str, context: grpc.ServicerContext) -> tuple[str, str]:
        found = self.bus.topic_schema(topic)
        if found is None:
            context.set_trailing_metadata((("error-code", TOPIC_NOT_FOUND),))
            context.abort(grpc.StatusCode.NOT_FOUND, f"Topic not found: {topic}")
        assert found is not None
        return found

    # ---- unary --------------------------------------------------------------------------

    def _get_topic(self, req: pb.TopicRequest, context: grpc.ServicerContext) -> pb.TopicInfo:
        self.calls.append("GetTopic")
        self._auth(context)
        schema_id, _ = self._topic(req.topic_name, context)
        return pb.TopicInfo(
            topic_name=req.topic_name,
            tenant_guid=ORG_ID,
            can_publish=req.topic_name.startswith("/event/"),
            can_subscribe=True,
            schema_id=schema_id,
            rpc_id=str(uuid.uuid4()),
        )

    def _get_schema(self, req: pb.SchemaRequest, context: grpc.ServicerContext) -> pb.SchemaInfo:
        self.calls.append("GetSchema")
        self._auth(context)
        text = self.bus.schema_json(req.schema_id)
        if text is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Schema not found: {req.schema_id}")
        return pb.SchemaInfo(schema_json=text, schema_id=req.schema_id, rpc_id=str(uuid.uuid4()))

    # ---- Subscribe ----------------------------------------------------------------------

    def _subscribe(
        self, requests: Iterator[pb.FetchRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.FetchResponse]:
        self.calls.append("Subscribe")
        self._auth(context)
        bus = self.bus
        try:
            first = next(requests)
        except StopIteration:
            return
        topic = first.topic_name
        self._topic(topic, context)
        credit = [first.num_requested]
        done = threading.Event()

        def read_requests() -> None:
            try:
                for req in requests:
                    if req.topic_name and req.topic_name != topic:
                        done.set()
                        return
                    with bus._cond:
                        credit[0] += req.num_requested
                        bus._cond.notify_all()
            except Exception:
                pass
            finally:
                done.set()
                with bus._cond:
                    bus._cond.notify_all()

        reader = threading.Thread(target=read_requests, name="sfemu-pubsub-req", daemon=True)
        reader.start()
        with bus._cond:
            if first.replay_preset == pb.CUSTOM:
                after = int.from_bytes(first.replay_id, "big") if first.replay_id else -1
                if after < bus._expired_upto or after >= bus._next_replay or after < 0:
                    context.set_trailing_metadata((("error-code", REPLAY_CORRUPTED),))
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"The Replay ID validation failed. rpcId: {uuid.uuid4()}",
                    )
            elif first.replay_preset == pb.EARLIEST:
                after = bus._expired_upto
            else:
                after = bus._next_replay - 1
        stream = _Stream(context)
        bus.streams.append(stream)
        last_sent = time.monotonic()
        last_event = time.monotonic()
        try:
            while context.is_active() and not done.is_set():
                if stream.reset.is_set():
                    context.abort(grpc.StatusCode.UNAVAILABLE, "stream reset by the server")
                batch: list[BusEvent] = []
                with bus._cond:
                    if credit[0] > 0:
                        for ev in bus._log:
                            if ev.replay > after and ev.topic == topic:
                                batch.append(ev)
                                if len(batch) >= min(credit[0], self.max_batch):
                                    break
                        credit[0] -= len(batch)
                    if not batch:
                        bus._cond.wait(0.05)
                    latest = bus._next_replay - 1
                now = time.monotonic()
                if batch:
                    if bus.delivery_delay_s:
                        time.sleep(bus.delivery_delay_s)
                    after = batch[-1].replay
                    yield pb.FetchResponse(
                        events=[
                            pb.ConsumerEvent(
                                event=pb.ProducerEvent(
                                    id=e.event_id, schema_id=e.schema_id, payload=e.payload
                                ),
                                replay_id=_replay_bytes(e.replay),
                            )
                            for e in batch
                        ],
                        latest_replay_id=_replay_bytes(after),
                        rpc_id=str(uuid.uuid4()),
                        pending_num_requested=credit[0],
                    )
                    last_sent = last_event = now
                    continue
                if self.idle_timeout_s is not None and now - last_event >= self.idle_timeout_s:
                    return  # the server ends idle streams
                if now - last_sent >= self.keepalive_s:
                    # a keep-alive: no events, the latest replay id of the bus (all earlier
                    # events of this topic were delivered)
                    with bus._cond:
                        pending = any(e.replay > after and e.topic == topic for e in bus._log)
                        if not pending:
                            after = max(after, latest)
                    yield pb.FetchResponse(
                        latest_replay_id=_replay_bytes(max(after, 0)),
                        rpc_id=str(uuid.uuid4()),
                        pending_num_requested=credit[0],
                    )
                    last_sent = now
        finally:
            if stream in bus.streams:
                bus.streams.remove(stream)
