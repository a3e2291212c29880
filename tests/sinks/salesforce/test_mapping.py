"""Mapping of change records to Salesforce operations: columns, constants, templates, formats, lookups, deletes."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from cdc_bridge.errors import ConfigError, RecordError
from cdc_bridge.sinks.base import SinkRecord
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig
from cdc_bridge.sinks.salesforce.mapping import DELETE, UPSERT, Mapper
from cdc_bridge.sinks.salesforce.values import from_connect, render


def route(**kw: Any) -> SalesforceRouteConfig:
    base: dict[str, Any] = {
        "from": "shop.public.customers",
        "to": "crm",
        "sobject": "Account",
        "external_id": "Ext__c",
    }
    base.update(kw)
    return SalesforceRouteConfig.model_validate(base)


def rec(
    op: str,
    after: dict[str, Any] | None,
    before: dict[str, Any] | None = None,
    *,
    key: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> SinkRecord:
    row = after if after is not None else before
    return SinkRecord(
        topic="t",
        partition=0,
        offset=0,
        timestamp=0,
        op=op,
        key=key if key is not None else ({"id": row["id"]} if row else None),
        before=before,
        after=after,
        fields=fields,
        key_fields=("id",),
    )


def decimal_bytes(value: str, scale: int) -> str:
    unscaled = int(Decimal(value).scaleb(scale))
    n = (unscaled.bit_length() + 8) // 8
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def test_columns_constants_templates_and_external_id_from_key() -> None:
    m = Mapper(
        route(
            fields={
                "Name": "name",
                "Source__c": {"value": "shop"},
                "Rating__c": 5,
                "Label__c": "{name} ({country})",
            }
        )
    )
    op = m.map(rec("c", {"id": 7, "name": "Acme", "country": "NL"}))
    assert op is not None and op.kind == UPSERT and op.ext_value == "7"
    assert op.values == {
        "Name": "Acme",
        "Source__c": "shop",
        "Rating__c": 5,
        "Label__c": "Acme (NL)",
        "Ext__c": "7",
    }


def test_external_id_mapped_explicitly_wins_over_key() -> None:
    m = Mapper(route(fields={"Ext__c": "{country}-{id}", "Name": "name"}))
    op = m.map(rec("u", {"id": 7, "name": "Acme", "country": "NL"}))
    assert op is not None and op.ext_value == "NL-7" and op.values["Ext__c"] == "NL-7"


def test_connect_logical_types_are_read_through_the_schema() -> None:
    fields = {
        "id": {"type": "int32"},
        "born": {"type": "int32", "name": "io.debezium.time.Date"},
        "seen": {"type": "int64", "name": "io.debezium.time.MicroTimestamp"},
        "price": {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"},
        },
    }
    m = Mapper(route(fields={"Born__c": "born", "Seen__c": "seen", "Price__c": "price"}))
    seen = int(dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC).timestamp() * 1_000_000)
    op = m.map(
        rec(
            "c",
            {"id": 1, "born": 19_000, "seen": seen, "price": decimal_bytes("-1234.50", 2)},
            fields=fields,
        )
    )
    assert op is not None
    assert op.values["Born__c"] == "2022-01-08"
    assert op.values["Seen__c"] == "2024-05-06T07:08:09.123Z"
    assert op.values["Price__c"] == "-1234.50"


def test_formats_date_datetime_decimal_with_time_zone() -> None:
    m = Mapper(
        route(
            fields={
                "D__c": {"field": "ts", "format": "date"},
                "T__c": {"field": "local", "format": "datetime", "tz": "Europe/Amsterdam"},
                "N__c": {"field": "amount", "format": "decimal", "scale": 1},
                "B__c": {"field": "flag", "format": "bool"},
                "S__c": {"field": "missing", "default": "n/a"},
            }
        )
    )
    op = m.map(
        rec(
            "c",
            {
                "id": 1,
                "ts": "2024-02-03T23:30:00Z",
                "local": "2024-07-01T12:00:00",
                "amount": "2.26",
                "flag": "yes",
            },
        )
    )
    assert op is not None
    assert op.values["D__c"] == "2024-02-03"
    assert op.values["T__c"] == "2024-07-01T10:00:00.000Z"
    assert op.values["N__c"] == "2.3"
    assert op.values["B__c"] is True
    assert op.values["S__c"] == "n/a"


def test_bad_value_for_a_format_is_a_record_error() -> None:
    m = Mapper(route(fields={"N__c": {"field": "amount", "format": "decimal"}}))
    with pytest.raises(RecordError, match="N__c"):
        m.map(rec("c", {"id": 1, "amount": "not a number"}))


def test_lookup_by_external_id_and_clearing_a_lookup() -> None:
    r = route(
        sobject="Contact",
        fields={
            "LastName": "name",
            "Account__r": {"Ext__c": "customer_id"},
            "Account": {"Ext__c": "customer_id"},
        },
    )
    assert set(r.fields) == {"LastName", "Account__r.Ext__c", "Account.Ext__c"}
    m = Mapper(r)
    op = m.map(rec("c", {"id": 2, "name": "Ng", "customer_id": 9}))
    assert op is not None and op.values["Account__r.Ext__c"] == "9"
    op = m.map(rec("u", {"id": 2, "name": "Ng", "customer_id": None}))
    assert op is not None
    assert op.values["Account__c"] is None and op.values["AccountId"] is None
    assert "Account__r.Ext__c" not in op.values
    assert m.parents == ["Account", "Account__r"]


def test_deletes_delete_ignore_soft_and_tombstones() -> None:
    before = {"id": 3, "name": None}
    op = Mapper(route()).map(rec("d", None, before))
    assert op is not None and op.kind == DELETE and op.ext_value == "3"
    assert Mapper(route(deletes="ignore")).map(rec("d", None, before)) is None
    soft = Mapper(route(deletes="soft", soft_delete_field="Gone__c", fields={"Name": "name"}))
    op = soft.map(rec("d", None, before))
    assert op is not None and op.kind == UPSERT and op.values == {"Ext__c": "3", "Gone__c": True}
    op = soft.map(rec("c", {"id": 3, "name": "x"}))
    assert op is not None and op.values["Gone__c"] is False
    tomb = SinkRecord(
        topic="t",
        partition=0,
        offset=1,
        timestamp=0,
        op="d",
        key={"id": 3},
        before=None,
        after=None,
        tombstone=True,
    )
    op = Mapper(route()).map(tomb)
    assert op is not None and op.kind == DELETE and op.ext_value == "3"


def test_composite_key_and_missing_key() -> None:
    m = Mapper(route(key=["region", "id"]))
    op = m.map(rec("c", {"id": 4, "region": "eu"}))
    assert op is not None and op.ext_value == "eu|4"
    nokey = SinkRecord(
        topic="t", partition=0, offset=0, timestamp=0, op="c", key=None, before=None, after={"x": 1}
    )
    with pytest.raises(RecordError, match="no key"):
        Mapper(route()).map(nokey)


def test_automatic_mapping_uses_describe_names_and_ignore_fields() -> None:
    m = Mapper(
        route(ignore_fields=["secret"]),
        auto_fields={"name": "Name", "secret": "Secret__c", "ext__c": "Ext__c"},
    )
    op = m.map(rec("c", {"id": 5, "NAME": "a", "secret": "s", "other": 1}))
    assert op is not None and op.values == {"Name": "a", "Ext__c": "5"}


def test_invalid_expressions_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        Mapper(
            route(
                fields={
                    "A__c": {"field": "a", "format": "weird"},
                    "B__c": {"nothing": 1, "field": "x", "tz": "Mars/Base"},
                    "C__c": "{a.b}",
                }
            )
        )
    text = str(info.value)
    assert (
        "routes.fields.A__c.format" in text and "Mars/Base" in text and "routes.fields.C__c" in text
    )


def test_route_config_validation() -> None:
    with pytest.raises(ValueError, match="soft_delete_field"):
        route(deletes="soft")
    with pytest.raises(ValueError, match="bulk_exit_threshold"):
        route(bulk_threshold=10, bulk_exit_threshold=20)


def test_render_and_from_connect_edge_cases() -> None:
    assert render(Decimal("1E+3")) == "1000"
    assert render(dt.time(1, 2, 3, 456000)) == "01:02:03.456Z"
    assert from_connect(None, {"name": "io.debezium.time.Date"}) is None
    vsd = {"scale": 3, "value": decimal_bytes("12.345", 3)}
    assert from_connect(vsd, {"name": "io.debezium.data.VariableScaleDecimal"}) == Decimal("12.345")
    assert from_connect(3_600_000_000, {"name": "io.debezium.time.MicroTime"}) == dt.time(1, 0)
    assert from_connect(
        "2024-01-01T00:00:00Z", {"name": "io.debezium.time.ZonedTimestamp"}
    ) == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_mongodb_extended_json_rows_and_keys() -> None:
    m = Mapper(
        route(
            fields={
                "Name": "name",
                "N__c": "n",
                "When__c": "when",
                "Price__c": "price",
                "Oid__c": "_id",
            }
        )
    )
    after = {
        "_id": {"$oid": "65ab00000000000000000001"},
        "name": "doc",
        "n": {"$numberLong": "5"},
        "when": {"$date": 1_700_000_000_000},
        "price": {"$numberDecimal": "1.50"},
    }
    rec = SinkRecord(
        topic="m.shop.orders",
        partition=0,
        offset=0,
        timestamp=0,
        op="c",
        key={"id": '{"$oid": "65ab00000000000000000001"}'},
        before=None,
        after=after,
        key_fields=("id",),
    )
    op = m.map(rec)
    assert op is not None and op.ext_value == "65ab00000000000000000001"
    assert op.values["N__c"] == 5 and op.values["Price__c"] == "1.50"
    assert op.values["When__c"] == "2023-11-14T22:13:20.000Z"
    assert op.values["Oid__c"] == "65ab00000000000000000001"
