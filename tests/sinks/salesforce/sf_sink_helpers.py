"""Helpers for the Salesforce sink tests: sink configs for the emulator, change records in Kafka format."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.events import CONNECTOR_POSTGRES, ChangeEvent, Column, TableSchema
from cdc_bridge.sinks.base import SinkContext, SinkRecord
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig, SalesforceSinkConfig
from cdc_bridge.sinks.salesforce.sink import SalesforceSink
from cdc_bridge.testing.salesforce import SalesforceEmulator
from tests.connect_schema import decode_json_record

_offsets = itertools.count()


def sink_config(emu: SalesforceEmulator, **kw: Any) -> SalesforceSinkConfig:
    """A password-flow sink config that logs in to the emulator and trusts its CA."""
    data: dict[str, Any] = {"name": "crm", **emu.login_settings(), "quota_pause_s": 0.2}
    data.update(kw)
    return SalesforceSinkConfig.model_validate(data)


def route_config(**kw: Any) -> SalesforceRouteConfig:
    data: dict[str, Any] = {
        "from": "shop.public.customers",
        "to": "crm",
        "sobject": "Account",
        "external_id": "External_Id__c",
        "fields": {"Name": "name", "BillingCity": "city", "NumberOfEmployees": "employees"},
    }
    data.update(kw)
    return SalesforceRouteConfig.model_validate(data)


def make_sink(
    emu: SalesforceEmulator, sink: dict[str, Any] | None = None, **route: Any
) -> SalesforceSink:
    s = SalesforceSink(
        sink_config(emu, **(sink or {})), route_config(**route), SinkContext("test", "r", "test.r")
    )
    s.open()
    return s


CUSTOMERS = TableSchema(
    connector=CONNECTOR_POSTGRES,
    source_name="shop",
    database="shop",
    namespace="public",
    table="customers",
    columns=(
        Column("id", {"type": "int32", "optional": False}),
        Column("name", {"type": "string", "optional": True}),
        Column("city", {"type": "string", "optional": True}),
        Column("employees", {"type": "int32", "optional": True}),
    ),
    key_columns=("id",),
)

CONTACTS = TableSchema(
    connector=CONNECTOR_POSTGRES,
    source_name="shop",
    database="shop",
    namespace="public",
    table="contacts",
    columns=(
        Column("id", {"type": "int32", "optional": False}),
        Column("last_name", {"type": "string", "optional": True}),
        Column("customer_id", {"type": "int32", "optional": True}),
        Column(
            "birthdate",
            {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1},
        ),
    ),
    key_columns=("id",),
)


def ev(
    table: TableSchema, op: str, after: dict[str, Any] | None, before: dict[str, Any] | None = None
) -> ChangeEvent:
    return ChangeEvent(
        table=table,
        op=op,
        before=before,
        after=after,
        ts_us=1_700_000_000_000_000,
        source={"schema": "public", "table": table.table, "txId": 1, "lsn": 1, "xmin": None},
    )


def to_records(events: Iterable[ChangeEvent], *, schemas: bool = True) -> list[SinkRecord]:
    """Encode events exactly as the sources write them, then decode them as a route would."""
    out: list[SinkRecord] = []
    for topic, key, value in EnvelopeEncoder(schemas=schemas).encode(events):
        key_payload = decode_json_record(key)
        if value is None:
            out.append(
                SinkRecord(
                    topic,
                    0,
                    next(_offsets),
                    0,
                    "d",
                    key_payload,
                    None,
                    None,
                    tombstone=True,
                    raw_key=key,
                )
            )
            continue
        payload = decode_json_record(value)
        fields = None
        if schemas:
            import orjson

            schema = orjson.loads(value)["schema"]
            row = next(f for f in schema["fields"] if f["field"] == "after")
            fields = {f["field"]: f for f in row["fields"]}
        out.append(
            SinkRecord(
                topic,
                0,
                next(_offsets),
                0,
                payload["op"],
                key_payload,
                payload["before"],
                payload["after"],
                source=payload["source"],
                fields=fields,
                key_fields=tuple(key_payload or ()),
                raw_key=key,
                raw_value=value,
            )
        )
    return out


def accounts(emu: SalesforceEmulator) -> dict[str, dict[str, Any]]:
    """Live Account records by External_Id__c."""
    return {r["External_Id__c"]: r for r in emu.records("Account") if r.get("External_Id__c")}


def data_calls(emu: SalesforceEmulator) -> int:
    return emu.calls("data")


def kinds(emu: SalesforceEmulator, names: Sequence[str]) -> dict[str, int]:
    return {n: emu.calls(n) for n in names}
