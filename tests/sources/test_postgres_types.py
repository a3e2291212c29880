"""Every listed Postgres type through a real server, snapshot and stream, compared field by
field with Debezium's encoding (schema and payload)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import psycopg

from cdc_bridge.testing.services import KafkaService
from cdc_bridge.types.postgres import decimal_bytes
from tests.connect_schema import validate
from tests.sources.pg_harness import make_config, payload, read_topic, run_source

DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE alltypes (
  id int PRIMARY KEY,
  c_bool boolean, c_int2 smallint, c_int4 integer, c_int8 bigint,
  c_float4 real, c_float8 double precision,
  c_num numeric(10,2), c_numv numeric, c_money money,
  c_char char(3), c_varchar varchar(10), c_text text, c_bytea bytea,
  c_date date, c_time time, c_time3 time(3), c_timetz timetz,
  c_ts timestamp, c_ts3 timestamp(3), c_tstz timestamptz, c_interval interval,
  c_json json, c_jsonb jsonb, c_uuid uuid, c_mood mood,
  c_inet inet, c_cidr cidr, c_macaddr macaddr,
  c_int_arr int[], c_text_arr text[], c_num_arr numeric(5,1)[], c_mood_arr mood[],
  c_point point
)
"""

VALUES = """
INSERT INTO alltypes VALUES (
  {id}, true, -32768, 2147483647, -9223372036854775808,
  1.5, -2.25,
  12345678.91, -0.00123, '-1234.56',
  'ab', 'varchar', 'text ü', '\\x00ff',
  '2024-02-29', '13:14:15.123456', '13:14:15.123', '13:14:15.5+02',
  '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.5+01',
  '1 year 2 months 3 days 04:05:06.5',
  '{{"a": [1, 2]}}', '{{"b": true, "a": 1}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
  '{{1,NULL,3}}', '{{"a b","c,d",NULL}}', '{{1.5,-2.0}}', '{{sad,ok}}',
  '(1.5,2)'
)
"""

DAY_US = 86_400_000_000
MONTH_US = 2_629_800_000_000  # 365.25 / 12 days, as Debezium's MicroDuration


def b64(i: int) -> str:
    return base64.b64encode(decimal_bytes(i)).decode()


def expected(id_: int) -> dict[str, Any]:
    return {
        "id": id_,
        "c_bool": True,
        "c_int2": -32768,
        "c_int4": 2147483647,
        "c_int8": -9223372036854775808,
        "c_float4": 1.5,
        "c_float8": -2.25,
        "c_num": b64(1234567891),
        "c_numv": {"scale": 5, "value": b64(-123)},
        "c_money": b64(-123456),
        "c_char": "ab ",
        "c_varchar": "varchar",
        "c_text": "text ü",
        "c_bytea": base64.b64encode(b"\x00\xff").decode(),
        "c_date": 19782,
        "c_time": (13 * 3600 + 14 * 60 + 15) * 1_000_000 + 123456,
        "c_time3": (13 * 3600 + 14 * 60 + 15) * 1000 + 123,
        "c_timetz": "11:14:15.5Z",
        "c_ts": 19782 * DAY_US + (13 * 3600 + 14 * 60 + 15) * 1_000_000 + 123456,
        "c_ts3": (19782 * DAY_US + (13 * 3600 + 14 * 60 + 15) * 1_000_000) // 1000 + 123,
        "c_tstz": "2024-02-29T12:14:15.500000Z",
        "c_interval": 14 * MONTH_US + 3 * DAY_US + (4 * 3600 + 5 * 60 + 6) * 1_000_000 + 500_000,
        "c_json": '{"a": [1, 2]}',
        "c_jsonb": '{"a": 1, "b": true}',
        "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "c_mood": "happy",
        "c_inet": "192.168.0.1/24",
        "c_cidr": "10.0.0.0/8",
        "c_macaddr": "08:00:2b:01:02:03",
        "c_int_arr": [1, None, 3],
        "c_text_arr": ["a b", "c,d", None],
        "c_num_arr": [b64(15), b64(-20)],
        "c_mood_arr": ["sad", "ok"],
        "c_point": {
            "x": 1.5,
            "y": 2.0,
            "wkb": base64.b64encode(b"\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.5, 2)).decode(),
            "srid": None,
        },
    }


def schema_of(fields: list[dict[str, Any]], name: str) -> dict[str, Any]:
    f = next(f for f in fields if f["field"] == name)
    return {k: v for k, v in f.items() if k != "field"}


def test_every_type_snapshot_and_stream(pg_database: str, kafka: KafkaService) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute(DDL)
        c.execute(VALUES.format(id=1))
    cfg = make_config(pg_database, "types", tables=["public.alltypes"], snapshot="initial")
    with run_source(kafka.bootstrap, cfg):
        with psycopg.connect(pg_database, autocommit=True) as c:
            c.execute(VALUES.format(id=2))
        recs = read_topic(kafka.bootstrap, "types.public.alltypes", 2)
    assert [payload(r)["op"] for r in recs] == ["r", "c"]
    for rec, id_ in zip(recs, (1, 2), strict=True):
        value = rec[1]
        validate(value["schema"], value["payload"])
        after = value["payload"]["after"]
        exp = expected(id_)
        assert list(after) == list(exp)
        for k, v in exp.items():
            assert after[k] == v, (k, after[k], v)
    fields = recs[1][1]["schema"]["fields"][1]["fields"]
    assert schema_of(fields, "c_num") == {
        "type": "bytes",
        "optional": True,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "10"},
    }
    assert schema_of(fields, "c_numv")["name"] == "io.debezium.data.VariableScaleDecimal"
    assert schema_of(fields, "c_money")["parameters"] == {"scale": "2"}
    assert schema_of(fields, "c_float4")["type"] == "float"
    assert schema_of(fields, "c_float8")["type"] == "double"
    named = {
        "c_date": ("int32", "io.debezium.time.Date"),
        "c_time": ("int64", "io.debezium.time.MicroTime"),
        "c_time3": ("int32", "io.debezium.time.Time"),
        "c_timetz": ("string", "io.debezium.time.ZonedTime"),
        "c_ts": ("int64", "io.debezium.time.MicroTimestamp"),
        "c_ts3": ("int64", "io.debezium.time.Timestamp"),
        "c_tstz": ("string", "io.debezium.time.ZonedTimestamp"),
        "c_interval": ("int64", "io.debezium.time.MicroDuration"),
        "c_json": ("string", "io.debezium.data.Json"),
        "c_jsonb": ("string", "io.debezium.data.Json"),
        "c_uuid": ("string", "io.debezium.data.Uuid"),
        "c_mood": ("string", "io.debezium.data.Enum"),
    }
    for col, (type_, name) in named.items():
        s = schema_of(fields, col)
        assert (s["type"], s["name"], s["version"]) == (type_, name, 1), col
    assert schema_of(fields, "c_mood")["parameters"] == {"allowed": "sad,ok,happy"}
    assert schema_of(fields, "c_int_arr") == {
        "type": "array",
        "items": {"type": "int32", "optional": True},
        "optional": True,
    }
    assert schema_of(fields, "c_point")["name"] == "io.debezium.data.geometry.Point"
    assert schema_of(fields, "id") == {"type": "int32", "optional": False}


def test_decimal_and_binary_switches(pg_database: str, kafka: KafkaService) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE m (id int PRIMARY KEY, n numeric(6,3), v numeric, b bytea)")
    cfg = make_config(
        pg_database,
        "switch",
        tables=["public.m"],
        snapshot="never",
        decimal_handling="string",
        binary_handling="hex",
    )
    with run_source(kafka.bootstrap, cfg):
        with psycopg.connect(pg_database, autocommit=True) as c:
            c.execute("INSERT INTO m VALUES (1, 1.5, 'NaN', '\\xdeadbeef')")
        recs = read_topic(kafka.bootstrap, "switch.public.m", 1)
    assert payload(recs[0])["after"] == {"id": 1, "n": "1.500", "v": "NaN", "b": "deadbeef"}
