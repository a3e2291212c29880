"""The Java-driver-compatible Extended JSON writer: exact layouts and round trips."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import bson
from bson import SON, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.json_util import JSONMode, JSONOptions, loads
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc_bridge.sources.mongodb._ejson import (
    RELAXED,
    RELAXED_COMPACT,
    STRICT_COMPACT,
    dumps,
    java_double,
    quote,
)


def test_java_double_notation() -> None:
    cases = {
        1.0: "1.0",
        0.1: "0.1",
        100.0: "100.0",
        12.34: "12.34",
        1e7: "1.0E7",
        9999999.0: "9999999.0",
        0.001: "0.001",
        0.0009: "9.0E-4",
        1.5e-10: "1.5E-10",
        2.5e10: "2.5E10",
        -2.5: "-2.5",
        0.0: "0.0",
        123456.789: "123456.789",
        1.7976931348623157e308: "1.7976931348623157E308",
    }
    for value, text in cases.items():
        assert java_double(value) == text, value
    assert java_double(-0.0) == "-0.0"


def test_string_escaping_like_java() -> None:
    assert quote('a"b\\c\n\t') == '"a\\"b\\\\c\\n\\t"'
    assert quote("\x01") == '"\\u0001"'
    assert quote("é") == '"é"'  # letters are written as they are
    assert quote("e\u0301") == '"e\\u0301"'  # combining marks are escaped
    assert quote("😀") == '"\\ud83d\\ude00"'  # astral characters as UTF-16 surrogates
    assert quote("€ ≤ ©") == '"€ ≤ ©"'  # symbols and spaces are written as they are


def test_strict_types() -> None:
    doc = SON(
        [
            ("l", Int64(5)),
            ("big", 2**40),
            ("d", dt.datetime(1969, 12, 31, 23, 59, 59)),
            ("ts", Timestamp(4294967295, 1)),
            ("re", Regex("a.b", "ix")),
            ("min", MinKey()),
            ("max", MaxKey()),
            ("code", Code("f()")),
            ("codews", Code("g()", {"x": 1})),
            ("nan", math.nan),
            ("inf", -math.inf),
            ("uuid", Binary(bytes(16), 4)),
        ]
    )
    assert dumps(doc, STRICT_COMPACT) == (
        '{"l": {"$numberLong": "5"},"big": {"$numberLong": "1099511627776"},"d": {"$date": -1000},'
        '"ts": {"$timestamp": {"t": 4294967295,"i": 1}},"re": {"$regex": "a.b","$options": "ix"},'
        '"min": {"$minKey": 1},"max": {"$maxKey": 1},"code": {"$code": "f()"},'
        '"codews": {"$code": "g()","$scope": {"x": 1}},"nan": {"$numberDouble": "NaN"},'
        '"inf": {"$numberDouble": "-Infinity"},"uuid": {"$binary": "AAAAAAAAAAAAAAAAAAAAAA==","$type": "04"}}'
    )


def test_relaxed_types() -> None:
    doc = SON(
        [
            ("l", Int64(5)),
            ("old", dt.datetime(1969, 12, 31, 23, 59, 59)),
            ("d", dt.datetime(2020, 5, 6, 7, 8, 9, 500000)),
            ("re", Regex("x", "m")),
        ]
    )
    assert dumps(doc, RELAXED_COMPACT) == (
        '{"l": 5,"old": {"$date": {"$numberLong": "-1000"}},"d": {"$date": "2020-05-06T07:08:09.5Z"},'
        '"re": {"$regularExpression": {"pattern": "x","options": "m"}}}'
    )
    assert dumps(SON([("a", 1), ("b", [1, 2])]), RELAXED) == '{"a": 1, "b": [1, 2]}'
    assert dumps(SON(), RELAXED) == "{}"


bson_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(max_size=40).map(lambda b: Binary(b, 0)),
    st.builds(ObjectId),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20
    ).map(lambda d: Decimal128(str(d))),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
field_names = st.text(min_size=1, max_size=8).filter(
    lambda s: not s.startswith("$") and "\x00" not in s
)
documents = st.recursive(
    bson_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(field_names, children, max_size=4),
    ),
    max_leaves=12,
).map(lambda v: {"v": v})


@settings(max_examples=300, deadline=None)
@given(documents)
def test_strict_output_is_json_that_round_trips(doc: dict) -> None:
    emitted = bson.decode(bson.encode(doc))
    text = dumps(emitted, STRICT_COMPACT)
    json.loads(text)  # valid JSON
    opts = JSONOptions(json_mode=JSONMode.LEGACY)
    assert loads(text, json_options=opts) == emitted


@settings(max_examples=300, deadline=None)
@given(documents)
def test_relaxed_output_is_json_that_round_trips(doc: dict) -> None:
    emitted = bson.decode(bson.encode(doc))
    for style in (RELAXED, RELAXED_COMPACT):
        text = dumps(emitted, style)
        json.loads(text)
        assert loads(text) == emitted


def test_double_exponents_per_style() -> None:
    doc = {"a": 2.5e10, "b": 1.5e-10, "c": 12.5}
    assert dumps(doc, STRICT_COMPACT) == '{"a": 2.5E+10,"b": 1.5E-10,"c": 12.5}'
    assert dumps(doc, RELAXED_COMPACT) == '{"a": 2.5E10,"b": 1.5E-10,"c": 12.5}'


def test_compact_layout_has_no_space_after_commas_between_fields() -> None:
    text = dumps(SON([("a", SON([("b", 1), ("c", [1, 2])])), ("d", "x, y")]), STRICT_COMPACT)
    assert text == '{"a": {"b": 1,"c": [1, 2]},"d": "x, y"}'
    assert not re.search(r"\{ |\s\}", text)
