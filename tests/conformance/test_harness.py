"""The conformance harness itself: Kafka Connect's JsonConverter rejects what it must, and the
comparator reports real differences while treating volatile values by presence and type."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.compare import compare
from tests.conformance.debezium import ConformanceError, Record, connect_check

pytestmark = pytest.mark.conformance


def _record(
    prefix: str,
    after: dict[str, Any] | None,
    *,
    col_type: str = "int32",
    ts: int = 1_700_000_000_000,
    op: str = "c",
    lsn: Any = 100,
) -> Record:
    topic = f"{prefix}.public.t"
    row = {
        "type": "struct",
        "fields": [{"type": col_type, "optional": False, "field": "id"}],
        "optional": True,
        "name": f"{topic}.Value",
    }
    source_fields = [
        {"type": "string", "optional": False, "field": "name"},
        {"type": "int64", "optional": False, "field": "ts_ms"},
        {"type": "int64", "optional": True, "field": "lsn"},
    ]
    schema = {
        "type": "struct",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            {
                "type": "struct",
                "fields": source_fields,
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{topic}.Envelope",
        "version": 2,
    }
    payload = {
        "before": None,
        "after": after,
        "source": {"name": prefix, "ts_ms": ts, "lsn": lsn},
        "op": op,
        "ts_ms": ts + 5,
    }
    key_schema = {
        "type": "struct",
        "fields": [{"type": col_type, "optional": False, "field": "id"}],
        "optional": False,
        "name": f"{topic}.Key",
    }
    key = {"schema": key_schema, "payload": {"id": (after or {}).get("id", 1)}}
    return (
        topic,
        json.dumps(key).encode(),
        json.dumps({"schema": schema, "payload": payload}).encode(),
    )


def test_json_converter_accepts_connect_types_and_rejects_others(debezium_jvm: None) -> None:
    connect_check(_record("p", {"id": 1}))
    connect_check(("p.public.t", None, None))  # keyless tombstone-like record: nothing to parse
    with pytest.raises(ConformanceError, match="float32"):
        connect_check(_record("p", {"id": 1.5}, col_type="float32"))
    bad_struct = b'{"schema": {"type": "struct", "fields": []}, "payload": "x"}'
    with pytest.raises(ConformanceError, match="value"):
        connect_check(("p.public.t", None, bad_struct))
    with pytest.raises(ConformanceError, match="key"):
        connect_check(("p.public.t", b'{"id": 1}', None))  # schemas.enable needs the wrapper


def test_compare_reports_differences_and_ignores_volatile_values() -> None:
    dbz = [_record("dbz", {"id": 1}), _record("dbz", {"id": 2})]
    same = [_record("cb", {"id": 1}, ts=1_800_000_000_000, lsn=7), _record("cb", {"id": 2})]
    assert compare(dbz, same, debezium_prefix="dbz", our_prefix="cb")

    other_type = [_record("cb", {"id": 1}, col_type="int64"), _record("cb", {"id": 2})]
    result = compare(dbz, other_type, debezium_prefix="dbz", our_prefix="cb")
    assert not result
    assert any("after.id.type" in d and '"int32"' in d for d in result.diffs), result.report()

    wrong_value = [_record("cb", {"id": 1}), _record("cb", {"id": 3})]
    result = compare(dbz, wrong_value, debezium_prefix="dbz", our_prefix="cb")
    assert any("value.payload.after.id: debezium 2 != cdc-bridge 3" in d for d in result.diffs)

    lsn_type = [_record("cb", {"id": 1}, lsn="100"), _record("cb", {"id": 2})]
    result = compare(dbz, lsn_type, debezium_prefix="dbz", our_prefix="cb")
    assert any("source.lsn: debezium integer" in d for d in result.diffs), result.report()

    missing = [_record("cb", {"id": 1})]
    result = compare(dbz, missing, debezium_prefix="dbz", our_prefix="cb")
    assert any("record count" in d for d in result.diffs)

    tombstone = [_record("cb", {"id": 1}), ("cb.public.t", dbz[1][1], None)]
    result = compare(dbz, tombstone, debezium_prefix="dbz", our_prefix="cb")
    assert any("cdc-bridge has tombstone" in d for d in result.diffs), result.report()
