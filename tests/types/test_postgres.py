"""Tests for Postgres type mapping: schemas and payloads compared with Debezium's encodings."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc_bridge.types.postgres import (
    PgType,
    TypeOptions,
    column_type,
    decimal_bytes,
    parse_array,
)


def conv(oid: int, typmod: int = -1, text: str | None = None, **opts: object) -> object:
    ct = column_type(oid, typmod, options=TypeOptions(**opts))  # type: ignore[arg-type]
    assert text is not None
    return text if ct.convert is None else ct.convert(text)


def numeric_typmod(p: int, s: int) -> int:
    return ((p << 16) | s) + 4


def test_basic_schemas() -> None:
    assert column_type(16, -1).schema == {"type": "boolean", "optional": True}
    assert column_type(21, -1, optional=False).schema == {"type": "int16", "optional": False}
    assert column_type(23, -1).schema["type"] == "int32"
    assert column_type(20, -1).schema["type"] == "int64"
    assert column_type(700, -1).schema["type"] == "float"
    assert column_type(701, -1).schema["type"] == "double"
    for oid in (25, 1043, 1042, 869, 650, 829):
        assert column_type(oid, -1).schema == {"type": "string", "optional": True}
    assert column_type(17, -1).schema == {"type": "bytes", "optional": True}


def test_basic_values() -> None:
    assert conv(16, text="t") is True and conv(16, text="f") is False
    assert conv(21, text="-32768") == -32768
    assert conv(20, text="9223372036854775807") == 2**63 - 1
    assert conv(700, text="1.5") == 1.5
    # as Kafka's JsonConverter writes Debezium's NaN / infinities: strings
    assert conv(701, text="NaN") == "NaN"
    assert conv(701, text="-Infinity") == "-Infinity"
    assert conv(700, text="Infinity") == "Infinity"
    assert conv(25, text="héllo") == "héllo"


def test_decimal_precise() -> None:
    ct = column_type(1700, numeric_typmod(10, 2))
    assert ct.schema == {
        "type": "bytes",
        "optional": True,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "10"},
    }
    assert ct.convert is not None
    assert ct.convert("1.50") == "AJY="  # unscaled 150 = 0x0096
    assert ct.convert("-1.50") == "/2o="  # -150 = 0xff6a
    assert ct.convert("0.00") == "AA=="
    assert ct.convert("NaN") is None


def test_decimal_variable_scale() -> None:
    ct = column_type(1700, -1)
    assert ct.schema["name"] == "io.debezium.data.VariableScaleDecimal"
    assert [f["field"] for f in ct.schema["fields"]] == ["scale", "value"]
    assert ct.convert is not None
    assert ct.convert("1234.5678") == {"scale": 4, "value": "ALxhTg=="}
    assert ct.convert("-7") == {"scale": 0, "value": "+Q=="}


def test_decimal_string_and_double() -> None:
    assert conv(1700, numeric_typmod(10, 2), "1.50", decimal_handling="string") == "1.50"
    assert column_type(1700, -1, options=TypeOptions(decimal_handling="string")).schema == {
        "type": "string",
        "optional": True,
    }
    assert conv(1700, -1, "1.25", decimal_handling="double") == 1.25
    assert conv(790, -1, "-$1,234.56", decimal_handling="string") == "-1234.56"


def test_money_precise() -> None:
    ct = column_type(790, -1)
    assert ct.schema["name"] == "org.apache.kafka.connect.data.Decimal"
    assert ct.schema["parameters"] == {"scale": "2"}
    assert ct.convert is not None
    assert base64.b64decode(ct.convert("$1,234.56")) == decimal_bytes(123456)
    assert base64.b64decode(ct.convert("-$0.01")) == decimal_bytes(-1)


@pytest.mark.parametrize(
    ("value", "java"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "0080"),
        (-1, "ff"),
        (-128, "80"),
        (-129, "ff7f"),
        (255, "00ff"),
    ],
)
def test_decimal_bytes_match_java_biginteger(value: int, java: str) -> None:
    assert decimal_bytes(value).hex() == java


@given(st.integers(-(2**200), 2**200))
def test_decimal_bytes_roundtrip(v: int) -> None:
    b = decimal_bytes(v)
    assert int.from_bytes(b, "big", signed=True) == v
    assert len(b) == 1 or int.from_bytes(b[1:], "big", signed=True) != v or (b[0] not in (0, 255))


def test_binary_handling() -> None:
    assert conv(17, text="\\x00ff10") == base64.b64encode(b"\x00\xff\x10").decode()
    assert conv(17, text="\\x00ff10", binary_handling="hex") == "00ff10"
    assert conv(17, text="\\x00ff10", binary_handling="base64") == "AP8Q"
    assert (
        column_type(17, -1, options=TypeOptions(binary_handling="hex")).schema["type"] == "string"
    )


def test_temporal() -> None:
    ct = column_type(1082, -1)
    assert ct.schema == {
        "type": "int32",
        "optional": True,
        "name": "io.debezium.time.Date",
        "version": 1,
    }
    assert conv(1082, text="2024-01-02") == (date(2024, 1, 2) - date(1970, 1, 1)).days
    assert conv(1082, text="1969-12-31") == -1
    assert conv(1082, text="0001-01-01 BC") == (date(1, 1, 1) - date(1970, 1, 1)).days - 366
    assert column_type(1083, -1).schema["name"] == "io.debezium.time.MicroTime"
    assert conv(1083, text="03:04:05.123456") == ((3 * 60 + 4) * 60 + 5) * 1_000_000 + 123456
    assert conv(1083, text="24:00:00") == 86_400_000_000
    assert column_type(1083, 3).schema["name"] == "io.debezium.time.Time"
    assert column_type(1083, 3).schema["type"] == "int32"
    assert conv(1083, 3, "00:00:01.5") == 1500
    assert column_type(1114, -1).schema["name"] == "io.debezium.time.MicroTimestamp"
    expected = datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC).timestamp()
    assert conv(1114, text="2024-01-02 03:04:05.12") == round(expected * 1_000_000)
    assert column_type(1114, 3).schema["name"] == "io.debezium.time.Timestamp"
    assert conv(1114, 3, "1970-01-01 00:00:01.5") == 1500
    assert conv(1114, text="infinity") == 9223372036825200000
    assert column_type(1184, -1).schema["name"] == "io.debezium.time.ZonedTimestamp"
    # the fraction padded to the column's precision, as Debezium writes it
    assert conv(1184, text="2024-01-02 03:04:05.12+00") == "2024-01-02T03:04:05.120000Z"
    assert conv(1184, text="2024-01-02 03:04:05+00") == "2024-01-02T03:04:05.000000Z"
    assert conv(1184, text="2024-01-02 01:04:05+05:30") == "2024-01-01T19:34:05.000000Z"
    assert conv(1184, 3, text="2024-01-02 03:04:05+00") == "2024-01-02T03:04:05.000Z"
    assert conv(1184, 3, text="1999-12-31 23:59:59.1+05:30") == "1999-12-31T18:29:59.100Z"
    assert conv(1184, 0, text="2024-01-02 03:04:05+00") == "2024-01-02T03:04:05Z"
    assert column_type(1266, -1).schema["name"] == "io.debezium.time.ZonedTime"
    assert conv(1266, text="03:04:05.5+02") == "01:04:05.5Z"
    assert conv(1266, text="01:00:00-03") == "04:00:00Z"


def test_interval_micro_duration() -> None:
    assert column_type(1186, -1).schema["name"] == "io.debezium.time.MicroDuration"
    month = int(365.25 / 12 * 86400) * 1_000_000
    assert conv(1186, text="P1Y2M3DT4H5M6.5S") == (
        14 * month + 3 * 86_400_000_000 + (4 * 3600 + 5 * 60) * 1_000_000 + 6_500_000
    )
    assert conv(1186, text="PT0S") == 0
    assert conv(1186, text="P-1DT-1H") == -(86_400 + 3600) * 1_000_000
    assert conv(1186, text="PT-0.000001S") == -1


def test_json_uuid_enum_xml() -> None:
    assert column_type(114, -1).schema["name"] == "io.debezium.data.Json"
    assert column_type(3802, -1).schema["name"] == "io.debezium.data.Json"
    assert column_type(2950, -1).schema["name"] == "io.debezium.data.Uuid"
    assert column_type(142, -1).schema["name"] == "io.debezium.data.Xml"
    cat = {5000: PgType(5000, "mood", "e", enum_labels=("sad", "ok", "happy"))}
    ct = column_type(5000, -1, catalog=cat)
    assert ct.schema == {
        "type": "string",
        "optional": True,
        "name": "io.debezium.data.Enum",
        "version": 1,
        "parameters": {"allowed": "sad,ok,happy"},
    }


def test_arrays() -> None:
    ct = column_type(1007, -1)
    assert ct.schema == {
        "type": "array",
        "items": {"type": "int32", "optional": True},
        "optional": True,
    }
    assert ct.convert is not None and ct.convert("{1,NULL,3}") == [1, None, 3]
    assert conv(1009, text='{a,"b,c","d\\"e",NULL,"NULL"}') == ["a", "b,c", 'd"e', None, "NULL"]
    assert conv(1009, text="{}") == []
    assert conv(1007, text="{{1,2},{3,4}}") == [[1, 2], [3, 4]]
    assert conv(1231, numeric_typmod(5, 1), "{1.5,-2.0}") == ["Dw==", "7A=="]  # 15, -20
    cat = {
        5000: PgType(5000, "mood", "e", enum_labels=("sad", "ok")),
        5001: PgType(5001, "_mood", "b", element_oid=5000),
    }
    ect = column_type(5001, -1, catalog=cat)
    assert ect.schema["items"]["name"] == "io.debezium.data.Enum"
    assert ect.convert is not None and ect.convert("{sad,ok}") == ["sad", "ok"]
    assert parse_array("[0:1]={7,8}") == ["7", "8"]


def test_types_debezium_does_not_map_are_left_out() -> None:
    for oid in (603, 718, 628, 601, 602, 604, 3615, 3220, 1187, 791, 143, 1003, 99999):
        assert column_type(oid, -1).skip, oid  # box ... polygon, tsquery, pg_lsn, arrays
    keep = TypeOptions(include_unknown_types=True)
    ct = column_type(603, -1, options=keep)
    assert ct.schema == {"type": "string", "optional": True} and ct.fallback and not ct.skip
    assert column_type(1187, -1, options=keep).schema["type"] == "array"
    for oid in (3904, 3906, 3908, 3910, 3912, 3926):  # builtin ranges: strings, as Debezium
        assert not column_type(oid, -1).skip


def test_bits_point_tsvector() -> None:
    ct = column_type(1560, 10)  # bit(10)
    assert ct.schema == {
        "type": "bytes",
        "optional": True,
        "name": "io.debezium.data.Bits",
        "version": 1,
        "parameters": {"length": "10"},
    }
    assert ct.convert is not None
    assert ct.convert("1010101010") == "qgI="  # 0x2AA little-endian
    assert ct.convert("0000000000") == ""  # BitSet.toByteArray of no set bits
    varbit = column_type(1562, -1)
    assert varbit.schema["parameters"] == {"length": "2147483647"}
    assert column_type(1560, 1).schema == {"type": "boolean", "optional": True}
    point = column_type(600, -1)
    assert point.schema["name"] == "io.debezium.data.geometry.Point"
    assert [f["field"] for f in point.schema["fields"]] == ["x", "y", "wkb", "srid"]
    assert point.convert is not None
    assert point.convert("(1.5,-2.5)") == {
        "x": 1.5,
        "y": -2.5,
        "wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAATA",
        "srid": None,
    }
    assert column_type(3614, -1).schema["name"] == "io.debezium.data.Tsvector"


def test_bc_dates_and_int64_overflow() -> None:
    assert conv(1082, text="4713-01-01 BC") == -2440550  # what PostgreSQL itself computes
    assert conv(1082, text="0001-12-31 BC") == -719163
    assert conv(1114, text="294276-12-31 23:59:59.999999") == 2**63 - 1  # clamped
    assert conv(1186, text="P178000000Y") == 2**63 - 1  # saturates like Debezium


def test_toast_placeholders() -> None:
    assert column_type(25, -1).toast_placeholder == "__debezium_unavailable_value"
    opts = TypeOptions(toast_placeholder="??")
    assert column_type(25, -1, options=opts).toast_placeholder == "??"
    assert column_type(17, -1, options=opts).toast_placeholder == base64.b64encode(b"??").decode()
    assert column_type(1009, -1, options=opts).toast_placeholder == ["??"]
    assert column_type(3802, -1, options=opts).toast_placeholder == "??"
    # Debezium's per-type placeholders for arrays: int4[]/date[]/int8[] get the bytes as
    # numbers, uuid[] a name-based UUID of them, other arrays null
    assert column_type(1007, -1, options=opts).toast_placeholder == [63, 63]
    assert column_type(1016, -1).toast_placeholder[:2] == [95, 95]
    assert column_type(2951, -1).toast_placeholder == ["b68a35a7-17ad-35b3-af2a-ae46edb4545a"]
    assert column_type(1005, -1).toast_placeholder is None  # int2[]
    assert column_type(1231, -1).toast_placeholder is None  # numeric[]


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_date_days_property(d: date) -> None:
    assert conv(1082, text=d.isoformat()) == (d - date(1970, 1, 1)).days


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_timestamp_property(dt: datetime) -> None:
    text = dt.isoformat(sep=" ")
    expected = (dt - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    assert conv(1114, text=text) == expected
    zoned = conv(1184, text=text + "+00")
    assert isinstance(zoned, str) and zoned.endswith("Z")
    assert datetime.fromisoformat(zoned.replace("Z", "+00:00")) == dt.replace(tzinfo=UTC)
