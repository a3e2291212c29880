"""The database sink never writes a wrong value: TOAST placeholders in every form Debezium
gives them, decimals beyond 28 digits, MySQL TIME beyond a day, deletes for tables that were
never created, arrays of decimals -- against real SQLite, PostgreSQL and MariaDB targets."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from typing import Any

import sqlalchemy as sa

from cdc_bridge.sinks.database.sink import UNAVAILABLE, _name_uuid
from tests.routes_support import col, event, table
from tests.sinks.test_database_sink import Feed, make_sink

_DEC_65_30 = {
    "name": "org.apache.kafka.connect.data.Decimal",
    "version": 1,
    "parameters": {"scale": "30", "connect.decimal.precision": "65"},
}
_MICRO_TIME = {"name": "io.debezium.time.MicroTime", "version": 1}


def _dec_bytes(value: decimal.Decimal, scale: int) -> str:
    unscaled = int(value.scaleb(scale, decimal.Context(prec=100)))
    n = (unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def _select(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def _json_list(v: Any) -> Any:
    import json

    return json.loads(v) if isinstance(v, str) else list(v)


def test_toast_placeholders_in_bytes_uuid_and_array_form_keep_the_target_value(
    target_url: str,
) -> None:
    sink = make_sink(target_url)
    try:
        t = table(
            columns=(
                col("id", "int32", False),
                col("n", "int32"),
                col("b", "bytes"),
                col("tags", "array", items={"type": "string", "optional": True}),
                col("nums", "array", items={"type": "int32", "optional": True}),
                col("fl", "array", items={"type": "double", "optional": True}),
                col("u", "string", name="io.debezium.data.Uuid", version=1),
            )
        )
        raw = UNAVAILABLE.encode()
        full = {
            "id": 1,
            "n": 1,
            "b": base64.b64encode(b"\x00\x01payload\x00").decode(),
            "tags": ["a", "b"],
            "nums": [1, 2, 3],
            "fl": [0.5],
            "u": "6f1c2a52-8d7e-4d7e-9c39-0d6b1b9c0a11",
        }
        placeholder = {
            "id": 1,
            "n": 2,
            "b": base64.b64encode(raw).decode(),
            "tags": [UNAVAILABLE],
            "nums": list(raw),
            "fl": [float(x) for x in raw],
            "u": _name_uuid(raw),
        }
        feed = Feed()
        assert sink.apply(feed([event(t, "c", None, full)])).ok
        # a later batch, and the same collapsed into one batch with the full row
        assert sink.apply(feed([event(t, "u", None, placeholder)])).ok
        full2 = {**full, "id": 2}
        assert sink.apply(
            feed([event(t, "c", None, full2), event(t, "u", None, {**placeholder, "id": 2})])
        ).ok
        rows = _select(target_url, "SELECT id, n, b, tags, nums, fl, u FROM customers ORDER BY id")
        for r in rows:
            assert r[1] == 2, r
            assert bytes(r[2]) == b"\x00\x01payload\x00"
            assert _json_list(r[3]) == ["a", "b"]
            assert _json_list(r[4]) == [1, 2, 3]
            assert _json_list(r[5]) == [0.5]
            assert str(r[6]) == full["u"]
    finally:
        sink.close()


def test_decimals_beyond_28_digits_are_exact(target_url: str) -> None:
    sink = make_sink(target_url)
    try:
        t = table(columns=(col("id", "int32", False), col("d", "bytes", **_DEC_65_30)))
        values = [
            decimal.Decimal("12345678901234567890123456789012345.123456789012345678901234567891"),
            decimal.Decimal("-99999999999999999999999999999999999.999999999999999999999999999999"),
            decimal.Decimal("0.000000000000000000000000000001"),
        ]
        batch = Feed()(
            [event(t, "c", None, {"id": i, "d": _dec_bytes(v, 30)}) for i, v in enumerate(values)]
        )
        assert sink.apply(batch).ok
        got = [
            decimal.Decimal(str(r[0]))
            for r in _select(target_url, "SELECT d FROM customers ORDER BY id")
        ]
        assert got == values
    finally:
        sink.close()


def test_arrays_of_decimals_are_written(target_url: str) -> None:
    sink = make_sink(target_url)
    try:
        item = {"type": "bytes", "optional": True, **_DEC_65_30}
        t = table(columns=(col("id", "int32", False), col("ds", "array", items=item)))
        vals = [decimal.Decimal("1.5"), decimal.Decimal("-12345678901234567890123456789.25")]
        ev = event(t, "c", None, {"id": 1, "ds": [_dec_bytes(v, 30) for v in vals]})
        assert sink.apply(Feed()([ev])).ok
        (stored,) = _select(target_url, "SELECT ds FROM customers")[0]
        assert [decimal.Decimal(str(x)) for x in _json_list(stored)] == vals
    finally:
        sink.close()


def _us(h: int, m: int = 0, s: int = 0, micro: int = 0) -> int:
    sign = -1 if h < 0 else 1
    return sign * ((abs(h) * 3600 + m * 60 + s) * 1_000_000 + micro)


TIMES = {
    1: _us(838, 59, 59),
    2: _us(-838, 59, 59),
    3: -1_000_000,
    4: _us(12, 0, 0, 500_000),
    5: _us(24),
}


def _read_time(v: Any) -> int:
    if isinstance(v, dt.timedelta):
        return v // dt.timedelta(microseconds=1)
    if isinstance(v, dt.time):
        return _us(v.hour, v.minute, v.second, v.microsecond)
    text = str(v)
    neg = text.startswith("-")
    hms, _, frac = text.lstrip("-").partition(".")
    h, m, s = (int(x) for x in hms.split(":"))
    us = _us(h, m, s, int(frac.ljust(6, "0")) if frac else 0)
    return -us if neg else us


def test_mysql_time_beyond_a_day_is_exact_or_dead_lettered(target_url: str) -> None:
    t = table(columns=(col("id", "int32", False), col("tm", "int64", **_MICRO_TIME)))
    events = [event(t, "c", None, {"id": i, "tm": us}) for i, us in TIMES.items()]
    sink = make_sink(target_url)
    try:
        batch = Feed()(events)
        result = sink.apply(batch)
        if target_url.startswith("postgresql"):
            # a time of day column cannot hold 838:59:59 or a negative time: dead letters
            # (the route engine applies the rest), never a wrapped value
            assert set(result.failed) == {0, 1, 2}
            assert all("outside 00:00:00..24:00:00" in str(e) for e in result.failed.values())
            assert sink.apply([r for i, r in enumerate(batch) if i not in result.failed]).ok
            expected = {4: TIMES[4], 5: TIMES[5]}
        else:
            assert result.ok
            expected = TIMES
        tm = "tm::text" if target_url.startswith("postgresql") else "tm"  # psycopg: no 24:00
        rows = dict(_select(target_url, f"SELECT id, {tm} FROM customers ORDER BY id"))
        assert {i: _read_time(v) for i, v in rows.items()} == expected
    finally:
        sink.close()


def test_mysql_time_beyond_a_day_into_a_postgres_interval(pg_database: str) -> None:
    url = pg_database.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id int PRIMARY KEY, tm interval)")
    engine.dispose()
    t = table(columns=(col("id", "int32", False), col("tm", "int64", **_MICRO_TIME)))
    sink = make_sink(url)
    try:
        events = [event(t, "c", None, {"id": i, "tm": us}) for i, us in TIMES.items()]
        assert sink.apply(Feed()(events)).ok
        rows = dict(_select(url, "SELECT id, tm FROM customers ORDER BY id"))
        assert {i: _read_time(v) for i, v in rows.items()} == TIMES
    finally:
        sink.close()


def test_deletes_for_a_table_never_created_are_no_ops(target_url: str) -> None:
    sink = make_sink(target_url)
    try:
        t = table(columns=(col("id", "int32", False), col("n", "int32")))
        feed = Feed()
        # a delete and its tombstone alone
        assert sink.apply(feed([event(t, "d", {"id": 9, "n": 1}, None)])).ok
        # snapshot read, update and delete of one key in one batch: no row is left behind
        batch = feed(
            [
                event(t, "r", None, {"id": 1, "n": 1}),
                event(t, "u", {"id": 1, "n": 1}, {"id": 1, "n": 2}),
                event(t, "d", {"id": 1, "n": 2}, None),
            ]
        )
        assert len(batch) == 4  # the tombstone too
        assert sink.apply(batch).ok
        assert sink.engine is not None
        if sa.inspect(sink.engine).has_table("customers"):
            assert _select(target_url, "SELECT * FROM customers") == []
        # the next row creates the table as usual
        assert sink.apply(feed([event(t, "c", None, {"id": 2, "n": 5})])).ok
        assert _select(target_url, "SELECT id, n FROM customers") == [(2, 5)]
    finally:
        sink.close()
