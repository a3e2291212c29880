"""MySQL source without a server: config model, offsets, GTIDs, row decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cdc_bridge.registry import SOURCE_KINDS
from cdc_bridge.sources.coordinator import SnapshotCursor
from cdc_bridge.sources.mysql.binlog import parse_lenenc, parse_table_map
from cdc_bridge.sources.mysql.config import MySqlSourceConfig
from cdc_bridge.sources.mysql.offset import GtidTracker, MySqlOffset
from cdc_bridge.sources.mysql.rows import RowDecoder
from cdc_bridge.types.mysql_columns import ColumnInfo, T


def test_registry_points_at_the_mysql_source() -> None:
    kind = SOURCE_KINDS["mysql"]
    assert kind.config_model() is MySqlSourceConfig
    assert kind.implementation().kind == "mysql"


def test_config_validates_and_hides_the_password() -> None:
    cfg = MySqlSourceConfig(
        name="shop", kind="mysql", dsn="mysql://cdc:s3cret@db1:3307/", tables=["shop.orders"]
    )
    assert cfg.connect_args() == {"host": "db1", "port": 3307, "user": "cdc", "password": "s3cret"}
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())
    with pytest.raises(ValidationError, match="mysql://user:password@host:port/"):
        MySqlSourceConfig(name="x", kind="mysql", dsn="postgres://a@b/")
    with pytest.raises(ValidationError, match=r"tables are named `database\.table`"):
        MySqlSourceConfig(name="x", kind="mysql", dsn="mysql://a@b/", tables=["orders"])
    with pytest.raises(ValidationError):
        MySqlSourceConfig(name="x", kind="mysql", dsn="mysql://a@b/", server_id=0)


def test_every_field_is_documented_with_an_example() -> None:
    for name, field in MySqlSourceConfig.model_fields.items():
        assert field.description, name
        assert field.examples, name


def test_offset_round_trip() -> None:
    o = MySqlOffset("mysql-bin.000003", 1234, "0-1-99", events=2, row=3)
    assert MySqlOffset.from_dict(o.to_dict()) == o
    s = MySqlOffset("f", 4, None, snapshot=SnapshotCursor(("a.b",), "a.c", [7], 100))
    assert MySqlOffset.from_dict(s.to_dict()) == s


def test_offsets_stored_before_the_coordinator_are_migrated() -> None:
    old = {
        "file": "f",
        "pos": 4,
        "snapshot": True,
        "snapshot_done": ["a.b"],
        "snapshot_table": "a.c",
        "snapshot_after": [7],
    }
    assert MySqlOffset.from_dict(old) == MySqlOffset(
        "f", 4, snapshot=SnapshotCursor(("a.b",), "a.c", [7])
    )
    fresh = MySqlOffset.from_dict({"file": "f", "pos": 4, "snapshot": True, "snapshot_done": []})
    assert fresh.snapshot == SnapshotCursor()
    assert MySqlOffset.from_dict({"file": "f", "pos": 4}).snapshot is None


def _tracked(state: str, gtid: str, mariadb: bool) -> str | None:
    tracker = GtidTracker(state, mariadb)
    tracker.add(gtid)
    return tracker.state()


def test_gtid_tracker_merges() -> None:
    assert _tracked("", "0-1-5", True) == "0-1-5"
    assert _tracked("0-1-5,1-2-9", "0-3-6", True) == "0-3-6,1-2-9"
    assert _tracked("0-1-5", "2-1-1", True) == "0-1-5,2-1-1"
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    assert _tracked(f"{uuid}:1-5", f"{uuid}:6", False) == f"{uuid}:1-6"


def test_lenenc() -> None:
    assert parse_lenenc(b"\x05", 0) == (5, 1)
    assert parse_lenenc(b"\xfc\x01\x02", 0) == (0x201, 3)
    assert parse_lenenc(b"\xfd\x01\x02\x03", 0) == (0x030201, 4)
    assert parse_lenenc(b"\xfe" + (2**40).to_bytes(8, "little"), 0) == (2**40, 9)


def _decode(col: ColumnInfo, raw: bytes) -> object:
    dec = RowDecoder([col])
    rows = dec.decode(b"\x00" + raw, 0, 1 + len(raw), [b"\x01"])
    return rows[0][0]


def test_decimal_decoding_matches_mysql_documentation() -> None:
    col = ColumnInfo("d", T.NEWDECIMAL, precision=14, scale=4)
    # MySQL's own example: 1234567890.1234 and its negative
    assert _decode(col, bytes.fromhex("810DFB38D204D2")) == 12345678901234
    assert _decode(col, bytes.fromhex("7EF204C72DFB2D")) == -12345678901234


def test_temporal_decoding() -> None:
    ymd = ((2024 * 13 + 2) << 5) | 29
    hms = (13 << 12) | (14 << 6) | 15
    raw = ((ymd << 17 | hms) + 0x8000000000).to_bytes(5, "big") + (123456).to_bytes(3, "big")
    assert _decode(ColumnInfo("t", T.DATETIME2, fsp=6), raw) == 1709212455123456
    date = (2024 << 9 | 2 << 5 | 29).to_bytes(3, "little")
    assert _decode(ColumnInfo("d", T.DATE), date) == 19782
    assert _decode(ColumnInfo("d", T.DATE), b"\x00\x00\x00") is None  # zero date, nullable
    assert _decode(ColumnInfo("d", T.DATE, nullable=False), b"\x00\x00\x00") == 0
    assert _decode(ColumnInfo("y", T.YEAR), bytes([124])) == 2024
    assert _decode(ColumnInfo("s", T.TIMESTAMP2), (1709212455).to_bytes(4, "big")) == (
        1709212455_000000
    )


def test_integers_and_strings() -> None:
    assert _decode(ColumnInfo("i", T.LONG), (-5).to_bytes(4, "little", signed=True)) == -5
    assert _decode(ColumnInfo("i", T.LONG, unsigned=True), b"\xff\xff\xff\xff") == 2**32 - 1
    assert _decode(ColumnInfo("i", T.INT24), b"\xff\xff\xff") == -1
    assert _decode(ColumnInfo("b", T.LONGLONG, unsigned=True), b"\xff" * 8) == 2**64 - 1
    assert _decode(ColumnInfo("v", T.VARCHAR, length=40), b"\x03abc") == "abc"
    assert _decode(ColumnInfo("v", T.VARCHAR, length=400), b"\x02\x00\xc3\xa9") == "é"
    assert _decode(ColumnInfo("v", T.VARCHAR, length=40, encoding="cp1252"), b"\x01\xe9") == "é"
    assert _decode(ColumnInfo("b", T.BLOB, length=2, binary=True), b"\x02\x00\x00\xff") == (
        b"\x00\xff"
    )
    assert _decode(ColumnInfo("e", T.ENUM, length=1, enum_values=("x", "y")), b"\x02") == "y"
    assert _decode(ColumnInfo("s", T.SET, length=1, set_values=("a", "b", "c")), b"\x05") == "a,c"
    assert _decode(ColumnInfo("b", T.BIT, length=10), b"\x02\x01") == 513


def test_table_map_with_full_metadata() -> None:
    # db "d", table "t", columns: id INT UNSIGNED, v VARCHAR(10) utf8mb4; PK (id)
    body = bytearray()
    body += b"\x00\x00"  # flags
    body += b"\x01d\x00\x01t\x00"
    body += b"\x02" + bytes([T.LONG, T.VARCHAR])
    body += b"\x02" + (40).to_bytes(2, "little")  # metadata: varchar max bytes
    body += b"\x02"  # null bitmap: v nullable
    body += b"\x01\x01\x80"  # SIGNEDNESS: first numeric column unsigned
    body += b"\x02\x01\x2d"  # DEFAULT_CHARSET utf8mb4_general_ci (45)
    body += b"\x04\x05\x02id\x01v"  # COLUMN_NAME
    body += b"\x08\x01\x00"  # SIMPLE_PRIMARY_KEY: column 0
    tm = parse_table_map(7, bytes(body), 0)
    assert (tm.schema, tm.table, tm.primary_key, tm.has_names) == ("d", "t", (0,), True)
    assert [(c.name, c.type, c.unsigned, c.nullable) for c in tm.columns] == [
        ("id", T.LONG, True, False),
        ("v", T.VARCHAR, False, True),
    ]
    assert tm.columns[1].length == 40 and not tm.columns[1].binary


_DIG = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def _mysql_decimal(precision: int, scale: int, unscaled: int) -> bytes:
    """MySQL's binary DECIMAL encoding (decimal2bin), written independently for the test."""
    digits = str(abs(unscaled)).rjust(precision, "0")
    ip, fp = digits[: precision - scale], digits[precision - scale :]
    intg = precision - scale
    out = b""
    lead = intg % 9
    if lead:
        out += int(ip[:lead]).to_bytes(_DIG[lead], "big")
    for k in range(lead, intg, 9):
        out += int(ip[k : k + 9]).to_bytes(4, "big")
    full = scale // 9 * 9
    for k in range(0, full, 9):
        out += int(fp[k : k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(fp[full:]).to_bytes(_DIG[scale % 9], "big")
    raw = bytearray(out)
    raw[0] ^= 0x80
    if unscaled < 0:
        raw = bytearray(x ^ 0xFF for x in raw)
    return bytes(raw)


@given(st.data())
def test_decimal_decoding_round_trips(data: st.DataObject) -> None:
    precision = data.draw(st.integers(1, 65))
    scale = data.draw(st.integers(0, min(precision, 30)))
    unscaled = data.draw(st.integers(-(10**precision) + 1, 10**precision - 1))
    col = ColumnInfo("d", T.NEWDECIMAL, precision=precision, scale=scale)
    assert _decode(col, _mysql_decimal(precision, scale, unscaled)) == unscaled


def test_gtid_tracker() -> None:
    from cdc_bridge.sources.mysql.offset import GtidTracker

    m = GtidTracker("0-1-5,1-2-9", mariadb=True)
    assert m.state() == "0-1-5,1-2-9"
    m.add("0-3-6")
    m.add("2-1-1")
    assert m.state() == "0-3-6,1-2-9,2-1-1"
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    y = GtidTracker(f"{uuid}:1-5", mariadb=False)
    y.add(f"{uuid}:6")
    y.add(f"{uuid}:7")
    assert y.state() == f"{uuid}:1-7"
    assert GtidTracker(None, mariadb=True).state() is None


def test_mysql_binary_json() -> None:
    # {"a": 1, "b": "x"} in MySQL's binary JSON (small object), as a JSON column value
    header = (2).to_bytes(2, "little")
    keys = b"ab"
    # layout: count, size, 2 key entries (4 B), 2 value entries (3 B), keys, string value
    key_off = 4 + 2 * 4 + 2 * 3
    str_off = key_off + len(keys)
    body = (
        header
        + (str_off + 2).to_bytes(2, "little")
        + key_off.to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (key_off + 1).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + b"\x05"
        + (1).to_bytes(2, "little")  # int16 inline
        + b"\x0c"
        + str_off.to_bytes(2, "little")  # string at str_off
        + keys
        + b"\x01x"
    )
    value = b"\x00" + body
    col = ColumnInfo("j", T.JSON, length=4)
    assert _decode(col, len(value).to_bytes(4, "little") + value) == '{"a":1,"b":"x"}'
