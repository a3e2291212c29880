"""Property test: every encoded key and value matches its own Connect schema."""

from __future__ import annotations

import base64
import string

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.events import CONNECTOR_MYSQL, CONNECTOR_POSTGRES, ChangeEvent, Column, TableSchema
from tests.connect_schema import validate

# (Connect field schema, strategy for its payload values)
INT64 = st.integers(-(2**63), 2**63 - 1)
TYPES: list[tuple[dict, st.SearchStrategy]] = [
    ({"type": "boolean"}, st.booleans()),
    ({"type": "int16"}, st.integers(-(2**15), 2**15 - 1)),
    ({"type": "int32"}, st.integers(-(2**31), 2**31 - 1)),
    ({"type": "int64"}, INT64),
    ({"type": "double"}, st.floats(allow_nan=False, allow_infinity=False)),
    ({"type": "string"}, st.text()),
    ({"type": "bytes"}, st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode())),
    (
        {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2"},
        },
        st.binary(min_size=1, max_size=8).map(lambda b: base64.b64encode(b).decode()),
    ),
    (
        {"type": "int32", "name": "io.debezium.time.Date", "version": 1},
        st.integers(-100_000, 100_000),
    ),
    ({"type": "int64", "name": "io.debezium.time.MicroTimestamp", "version": 1}, INT64),
    (
        {"type": "string", "name": "io.debezium.time.ZonedTimestamp", "version": 1},
        st.just("2024-01-02T03:04:05.123456Z"),
    ),
    ({"type": "string", "name": "io.debezium.data.Json", "version": 1}, st.just('{"a": [1, 2]}')),
    (
        {"type": "array", "items": {"type": "int32", "optional": True}},
        st.lists(st.one_of(st.none(), st.integers(-5, 5))),
    ),
]

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10)


@st.composite
def table_and_rows(draw: st.DrawFn) -> tuple[TableSchema, list[ChangeEvent]]:
    cols = draw(
        st.lists(
            st.tuples(names, st.integers(0, len(TYPES) - 1), st.booleans()),
            min_size=1,
            max_size=8,
            unique_by=lambda c: c[0],
        )
    )
    connector = draw(st.sampled_from([CONNECTOR_POSTGRES, CONNECTOR_MYSQL]))
    columns = []
    strategies = {}
    for name, type_index, optional in cols:
        schema, values = TYPES[type_index]
        columns.append(Column(name, {**schema, "optional": optional}))
        strategies[name] = st.one_of(st.none(), values) if optional else values
    required = [c.name for c in columns if not c.schema["optional"]]
    key = (
        tuple(draw(st.lists(st.sampled_from(required), unique=True, max_size=2)))
        if required
        else ()
    )
    table = TableSchema(connector, "src", "db", "ns", draw(names), tuple(columns), key)
    # rows come from adapters in column order
    row = st.tuples(*(strategies[c.name] for c in columns)).map(
        lambda vals: dict(zip([c.name for c in columns], vals, strict=True))
    )
    source = (
        {
            "schema": "ns",
            "table": table.table,
            "txId": 1,
            "lsn": 2,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }
        if connector == CONNECTOR_POSTGRES
        else {
            "table": table.table,
            "server_id": 1,
            "gtid": None,
            "file": "b.000001",
            "pos": 4,
            "row": 0,
            "thread": None,
            "query": None,
        }
    )
    events = []
    for op in draw(st.lists(st.sampled_from("cudr"), min_size=1, max_size=5)):
        before = draw(row) if op in "ud" else None
        after = draw(row) if op in "ucr" else None
        events.append(ChangeEvent(table, op, before, after, draw(st.integers(0, 2**50)), source))
    return table, events


@settings(max_examples=300, deadline=None)
@given(table_and_rows(), st.booleans())
def test_every_payload_matches_its_schema(
    case: tuple[TableSchema, list[ChangeEvent]], tombstones: bool
) -> None:
    table, events = case
    records = EnvelopeEncoder(tombstones=tombstones).encode(events)
    assert len(records) >= len(events)
    for topic, key, value in records:
        assert topic == table.topic
        if table.key_columns:
            assert key is not None
            k = orjson.loads(key)
            validate(k["schema"], k["payload"])
        else:
            assert key is None
        if value is None:
            assert tombstones and (key is not None or not table.key_columns)
            continue
        v = orjson.loads(value)
        validate(v["schema"], v["payload"])
