"""Every MySQL column type, snapshot and binlog alike, against Debezium's MySQL encoding."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import orjson

from tests.connect_schema import validate
from tests.sources.mysql_support import Running, consume, count, make_config, payloads

COLUMNS = """
 id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
 mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 d DECIMAL(10,2), dn DECIMAL(30,10), f FLOAT, db DOUBLE,
 c CHAR(5), vc VARCHAR(50), tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB,
 dt DATE, dz DATE NOT NULL DEFAULT '2000-01-01', tm TIME, tm6 TIME(6),
 dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6), ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL,
 y YEAR, j JSON, e ENUM('x','y','z'), st SET('a','b','c'), b1 BIT(1), b10 BIT(10)
"""

VALUES = (
    "-128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
    "-9223372036854775808, 18446744073709551615, -12345678.91, "
    "12345678901234567890.1234567890, 1.5, 3.141592653589793, 'ab', 'héllo ✓', 'long text', "
    "X'01020304', X'00FF', X'DEADBEEF', '2024-02-29', '1999-12-31', '-12:34:56', "
    "'838:59:59.999999', '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', "
    "'1969-07-20 20:17:40.654321', '2024-02-29 13:14:15', '2024-02-29 13:14:15.12', 2024, "
    "'{\"a\": [1, 2, {\"b\": null}]}', 'y', 'c,a', b'1', b'1000000001'"
)

NULLS = "id, dz"
ZERO = "SET SESSION sql_mode = ''"


def _dec(unscaled: int) -> str:
    # Java BigInteger.toByteArray(): minimal two's complement
    n = (unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


EXPECTED: dict[str, Any] = {
    "ti": -128,
    "tiu": 255,
    "si": -32768,
    "siu": 65535,
    "mi": -8388608,
    "miu": 16777215,
    "i": -2147483648,
    "iu": 4294967295,
    "bi": -9223372036854775808,
    "biu": -1,  # Debezium's default bigint.unsigned.handling.mode=long wraps
    "d": _dec(-1234567891),
    "dn": _dec(123456789012345678901234567890),
    "f": 1.5,
    "db": 3.141592653589793,
    "c": "ab",
    "vc": "héllo ✓",
    "tx": "long text",
    "bn": _b64(b"\x01\x02\x03\x04"),
    "vb": _b64(b"\x00\xff"),
    "bl": _b64(b"\xde\xad\xbe\xef"),
    "dt": 19782,  # days 1970-01-01 .. 2024-02-29
    "dz": 10956,
    "tm": -(12 * 3600 + 34 * 60 + 56) * 1_000_000,
    "tm6": (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999999,
    "dtm": 1709212455000,
    "dtm3": 1709212455123,
    "dtm6": -14182939345679,  # MicroTimestamp before the epoch
    "ts": "2024-02-29T13:14:15Z",
    "ts3": "2024-02-29T13:14:15.120Z",
    "y": 2024,
    "j": {"a": [1, 2, {"b": None}]},
    "e": "y",
    "st": "a,c",
    "b1": True,
    "b10": _b64((513).to_bytes(2, "little")),
}

SCHEMAS = {
    "ti": ("int16", None),
    "tiu": ("int16", None),
    "siu": ("int32", None),
    "iu": ("int64", None),
    "biu": ("int64", None),
    "d": ("bytes", "org.apache.kafka.connect.data.Decimal"),
    "f": ("float", None),
    "db": ("double", None),
    "bn": ("bytes", None),
    "dt": ("int32", "io.debezium.time.Date"),
    "tm": ("int64", "io.debezium.time.MicroTime"),
    "dtm": ("int64", "io.debezium.time.Timestamp"),
    "dtm3": ("int64", "io.debezium.time.Timestamp"),
    "dtm6": ("int64", "io.debezium.time.MicroTimestamp"),
    "ts": ("string", "io.debezium.time.ZonedTimestamp"),
    "y": ("int32", "io.debezium.time.Year"),
    "j": ("string", None),  # MariaDB JSON is LONGTEXT: a plain string, as Debezium
    "e": ("string", "io.debezium.data.Enum"),
    "st": ("string", "io.debezium.data.EnumSet"),
    "b1": ("boolean", None),
    "b10": ("bytes", "io.debezium.data.Bits"),
}


def _exec(db: Any, *sql: str) -> None:
    import pymysql

    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True, charset="utf8mb4")
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        for s in sql:
            cur.execute(s)


def _rows(db: Any, base: int) -> list[str]:
    return [
        f"INSERT INTO ty VALUES ({base + 1}, {VALUES})",
        f"INSERT INTO ty ({NULLS}) VALUES ({base + 2}, '2000-01-01')",
        ZERO,
        f"INSERT INTO ty (id, dt, dz, dtm, dtm6, ts) VALUES ({base + 3}, '0000-00-00', "
        "'0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00')",
    ]


def _check_row(after: dict[str, Any], zero_dates: str) -> None:
    i = after["id"] % 10
    if i == 1:
        got = dict(after)
        got["j"] = orjson.loads(got["j"])
        for k, v in EXPECTED.items():
            if k == "ts3":
                continue  # snapshot and binlog forms differ (as Debezium's): see _run
            assert got[k] == v, f"{k}: {got[k]!r} != {v!r}"
    elif i == 2:
        assert all(v is None for k, v in after.items() if k not in ("id", "dz"))
        assert after["dz"] == 10957
    else:
        if zero_dates == "auto":  # null where nullable, the default where NOT NULL
            assert after["dt"] is None and after["dtm"] is None and after["ts"] is None
            assert after["dz"] == 10957
        else:
            assert after["dt"] == 0 and after["dz"] == 0 and after["dtm"] == 0
            assert after["ts"] == "1970-01-01T00:00:00Z"


def _run(db: Any, kafka: Any, name: str, zero_dates: str) -> None:
    _exec(db, f"CREATE TABLE ty ({COLUMNS}) DEFAULT CHARSET=utf8mb4", *_rows(db, 0))
    cfg = make_config(db, name, [f"{db.name}.ty"], zero_dates=zero_dates)
    with Running(cfg, kafka.bootstrap) as r:
        r.wait_streaming()
        _exec(db, *_rows(db, 10))
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.ty", count(6))
    vals = payloads(recs)
    assert [v["op"] for v in vals] == ["r", "r", "r", "c", "c", "c"]
    for (_k, v), p in zip(recs, vals, strict=True):
        validate(v["schema"], v["payload"])
        _check_row(p["after"], zero_dates)
    # snapshot and binlog rows encode identically, schemas included -- except that
    # Debezium prints snapshot ZonedTimestamps without trailing fraction zeros
    assert vals[0]["after"]["ts3"] == "2024-02-29T13:14:15.12Z"
    assert vals[3]["after"]["ts3"] == "2024-02-29T13:14:15.120Z"
    for a, b in zip(vals[:3], vals[3:], strict=True):
        assert {k: x for k, x in a["after"].items() if k not in ("id", "ts3")} == {
            k: x for k, x in b["after"].items() if k not in ("id", "ts3")
        }
    assert recs[0][1]["schema"] == recs[3][1]["schema"]
    fields = {f["field"]: f for f in recs[0][1]["schema"]["fields"][1]["fields"]}
    for col, (typ, logical) in SCHEMAS.items():
        assert fields[col]["type"] == typ, col
        assert fields[col].get("name") == logical, col
    assert fields["d"]["parameters"] == {"scale": "2", "connect.decimal.precision": "10"}
    assert fields["e"]["parameters"] == {"allowed": "x,y,z"}
    assert fields["st"]["parameters"] == {"allowed": "a,b,c"}
    assert fields["b10"]["parameters"] == {"length": "10"}


def test_types_auto_zero_dates(mariadb_database: Any, kafka: Any, topic_name: Any) -> None:
    _run(mariadb_database, kafka, topic_name("ty"), "auto")


def test_types_epoch_zero_dates(mariadb_database: Any, kafka: Any, topic_name: Any) -> None:
    _run(mariadb_database, kafka, topic_name("ty"), "epoch")


def test_charset_and_signedness_metadata_with_geometry_and_year(
    mariadb_database: Any, kafka: Any, topic_name: Any
) -> None:
    """MariaDB lists GEOMETRY among character columns and YEAR is not numeric in the
    TableMap metadata: later columns must still get their own charset and signedness."""
    db = mariadb_database
    row = "2024, 4294967295, POINT(1, 2), 'ab', 'cd'"
    _exec(
        db,
        "CREATE TABLE gy (id INT PRIMARY KEY, y YEAR, u INT UNSIGNED, g POINT, "
        "v VARBINARY(5), w VARCHAR(5)) DEFAULT CHARSET=utf8mb4",
        f"INSERT INTO gy VALUES (1, {row})",
    )
    name = topic_name("gy")
    cfg = make_config(db, name, [f"{db.name}.gy"])
    with Running(cfg, kafka.bootstrap) as r:
        r.wait_streaming()
        _exec(db, f"INSERT INTO gy VALUES (2, {row})")
        recs = consume(kafka.bootstrap, f"{name}.{db.name}.gy", count(2))
    snap, streamed = (p["after"] for p in payloads(recs))
    assert streamed["y"] == 2024 and streamed["u"] == 4294967295
    assert streamed["v"] == _b64(b"ab") and streamed["w"] == "cd"
    assert {**snap, "id": 2} == streamed
