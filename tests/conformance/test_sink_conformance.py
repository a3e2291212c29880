"""The database sink fed with events that Debezium itself produced: real Debezium captures a
PostgreSQL and a MariaDB table (snapshot and streaming), its records go to Kafka as Debezium
writes them, and a route applies them -- as users run it -- into PostgreSQL, MariaDB and
SQLite targets. Each target must equal the source tables value for value: unchanged TOASTed
text/bytea/arrays (Debezium's placeholders), decimals with 35-65 digits, MySQL TIME up to
+-838:59:59, bytea/binary values with trailing zero bytes, deletes, tombstones, key changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from cdc_bridge.testing.services import KafkaService, MariaDBService, PostgresService
from tests.conformance.debezium import (
    DebeziumEngine,
    Record,
    mysql_properties,
    postgres_properties,
)
from tests.conformance.mysql_proxy import MySqlRewriteProxy
from tests.conformance.scenario import pg_dsn_parts, snapshot_done
from tests.routes_support import config, produce, run_routes, wait_for

pytestmark = pytest.mark.conformance

# -- the PostgreSQL source ---------------------------------------------------------------------

PG_SETUP = [
    "CREATE TABLE pvals (id integer PRIMARY KEY, big numeric(40,20), num numeric, b bytea,"
    " body text, data bytea, tags text[], nums integer[], decs numeric(10,3)[], n integer)",
    "ALTER TABLE pvals ALTER body SET STORAGE EXTERNAL, ALTER data SET STORAGE EXTERNAL,"
    " ALTER tags SET STORAGE EXTERNAL, ALTER nums SET STORAGE EXTERNAL",
]
PG_BIG = (
    "repeat('s', 9000), decode(repeat('00ab', 5000), 'hex'), ARRAY[repeat('t', 9000), 'u'],"
    " array_fill(7, ARRAY[3000])"
)
PG_SNAPSHOT = [
    "INSERT INTO pvals VALUES (1, 12345678901234567890.12345678901234567891,"
    f" -1234567890123456789012345678.123456789, '\\x00000000', {PG_BIG}, '{{1.5,-2.125}}', 1)",
    "INSERT INTO pvals VALUES (2, -99999999999999999999.99999999999999999999, 0.000000001,"
    " '\\x4100', 'short', '\\x00', '{}', '{}', '{}', 2)",
    "INSERT INTO pvals (id) VALUES (3)",
]
PG_STREAM = [
    ["UPDATE pvals SET n = 10 WHERE id = 1"],  # unchanged TOAST: Debezium's placeholders
    [f"INSERT INTO pvals VALUES (4, 0.1, 1e-30, '\\x0000', {PG_BIG}, '{{0}}', 4)"],
    ["UPDATE pvals SET n = 40, big = 1 WHERE id = 4", "UPDATE pvals SET body = 'x' WHERE id = 1"],
    ["UPDATE pvals SET id = 30 WHERE id = 3"],  # key change: d + tombstone + c
    ["DELETE FROM pvals WHERE id = 2"],
    ["INSERT INTO pvals (id, n) VALUES (6, 6)", "DELETE FROM pvals WHERE id = 6"],
]
PG_COLUMNS = {
    "id": "int",
    "big": "dec",
    "num": "dec",
    "b": "bytes",
    "body": "str",
    "data": "bytes",
    "tags": "str_list",
    "nums": "int_list",
    "decs": "dec_list",
    "n": "int",
}

# -- the MariaDB source ------------------------------------------------------------------------

MY_SETUP = [
    "CREATE TABLE mvals (id INT PRIMARY KEY, d65 DECIMAL(65,30), d DECIMAL(10,2), tm TIME(6),"
    " tm0 TIME, bn BINARY(4), vb VARBINARY(8), bl BLOB, dt6 DATETIME(6), da DATE,"
    " ts TIMESTAMP(6) NULL, f DOUBLE, v VARCHAR(30)) DEFAULT CHARSET=utf8mb4"
]
MY_SNAPSHOT = [
    "INSERT INTO mvals VALUES (1, 1.5, 12.34, '12:34:56.789012', '01:02:03', X'01020304',"
    " X'00FF00', X'DEADBEEF', '2024-02-29 13:14:15.123456', '2024-02-29',"
    " '2024-02-29 13:14:15.5', 2.5, 'héllo')",
    "INSERT INTO mvals VALUES (2,"
    " 12345678901234567890123456789012345.123456789012345678901234567891, -99999999.99,"
    " '838:59:59.000000', '-838:59:59', X'00000000', X'0000', X'00', '9999-12-31 23:59:59.999999',"
    " '1000-01-01', '2038-01-19 03:14:07', -1.7976931348623157e308, '')",
    "INSERT INTO mvals VALUES (3,"
    " -99999999999999999999999999999999999.999999999999999999999999999999, 0.01,"
    " '-838:59:59.000000', '838:59:59', X'41000000', X'', X'', '1969-07-20 20:17:40.654321',"
    " '1970-01-01', '1970-01-01 00:00:01', 5e-324, 'x')",
    "INSERT INTO mvals (id) VALUES (4)",
]
MY_STREAM = [
    [
        "INSERT INTO mvals VALUES (5, 0.000000000000000000000000000001, 0, '-00:00:00.000001',"
        " '24:00:00', X'00000001', X'00', X'0000', '2000-01-01 00:00:00', '2000-01-01',"
        " '2000-01-01 00:00:00', 0, 'five')"
    ],
    ["UPDATE mvals SET d65 = d65 / 3, tm = '-01:00:00' WHERE id = 1"],
    ["DELETE FROM mvals WHERE id = 4"],
    ["UPDATE mvals SET id = 30 WHERE id = 3"],  # key change
    [
        "INSERT INTO mvals (id, v) VALUES (6, 'six')",
        "UPDATE mvals SET v = 'SIX' WHERE id = 6",
        "DELETE FROM mvals WHERE id = 6",
    ],
]
MY_COLUMNS = {
    "id": "int",
    "d65": "dec",
    "d": "dec",
    "tm": "time",
    "tm0": "time",
    "bn": "bytes",
    "vb": "bytes",
    "bl": "bytes",
    "dt6": "dt",
    "da": "date",
    "ts": "dt",
    "f": "float",
    "v": "str",
}

_ids = itertools.count(int(os.environ.get("CDC_CONFORMANCE_SERVER_ID", "8100")) + 3000)


# -- normalising values read back from any database --------------------------------------------


def _time_us(v: Any) -> int:
    if isinstance(v, dt.timedelta):
        return v // dt.timedelta(microseconds=1)
    if isinstance(v, dt.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    text = str(v)
    neg = text.startswith("-")
    hms, _, frac = text.lstrip("-").partition(".")
    h, m, s = (int(x) for x in hms.split(":"))
    us = ((h * 60 + m) * 60 + s) * 1_000_000 + (int(frac.ljust(6, "0")) if frac else 0)
    return -us if neg else us


def _naive_utc(v: Any) -> dt.datetime:
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v  # type: ignore[no-any-return]


def _norm(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if kind.endswith("_list"):
        items = json.loads(v) if isinstance(v, str) else list(v)
        return [_norm(kind[:-5], x) for x in items]
    if kind == "dec":
        return decimal.Decimal(str(v))
    if kind == "time":
        return _time_us(v)
    if kind == "bytes":
        return bytes(v)
    if kind == "dt":
        return _naive_utc(v)
    if kind == "date":
        return dt.date.fromisoformat(v) if isinstance(v, str) else v
    if kind == "float":
        return float(v)
    if kind == "int":
        return int(v)
    return v


def _rows(rows: list[tuple[Any, ...]], kinds: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    out = {}
    for r in rows:
        norm = {c: _norm(k, x) for (c, k), x in zip(kinds.items(), r, strict=True)}
        out[norm["id"]] = norm
    return out


def _pg_rows(dsn: str, table: str, kinds: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {', '.join(kinds)} FROM {table}").fetchall()
    return _rows(rows, kinds)


def _my_rows(
    kwargs: Mapping[str, Any], table: str, kinds: Mapping[str, str]
) -> dict[int, dict[str, Any]]:
    conn = pymysql.connect(**kwargs)
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT {', '.join(kinds)} FROM {table}")
        return _rows(list(cur.fetchall()), kinds)


def _target_rows(url: str, table: str, kinds: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "mysql":
                conn.exec_driver_sql("SET time_zone = '+00:00'")
            if not sa.inspect(conn).has_table(table):
                return {}
            return _rows(
                [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(kinds)} FROM {table}")],
                kinds,
            )
    except sa.exc.SQLAlchemyError:
        return {}  # a column not added yet
    finally:
        engine.dispose()


# -- capture --------------------------------------------------------------------------------


def _deleted(record_id: int) -> Callable[[list[Record]], bool]:
    def done(records: list[Record]) -> bool:
        for _t, _k, v in records:
            if v is not None:
                p = json.loads(v)["payload"]
                if p.get("op") == "d" and (p.get("before") or {}).get("id") == record_id:
                    return True
        return False

    return done


def _pg_capture(
    dsn: str, debezium: Callable[[Mapping[str, str]], DebeziumEngine], prefix: str
) -> list[Record]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in PG_SETUP + PG_SNAPSHOT:
            conn.execute(s)
    engine = debezium(
        postgres_properties(
            pg_dsn_parts(dsn), prefix, prefix, prefix, **{"table.include.list": "public.pvals"}
        )
    )
    engine.wait(snapshot_done(3), settle=0)
    with psycopg.connect(dsn) as conn:
        for tx in PG_STREAM:
            with conn.transaction():
                for s in tx:
                    conn.execute(s)
    records = engine.wait(_deleted(6), settle=0.5)
    engine.stop()
    return records


def _my_capture(
    mariadb: MariaDBService,
    database: str,
    debezium: Callable[[Mapping[str, str]], DebeziumEngine],
    prefix: str,
) -> list[Record]:
    def run(statements: list[str], transaction: bool = False) -> None:
        conn = mariadb.connect(database)
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            if transaction:
                cur.execute("BEGIN")
            for s in statements:
                cur.execute(s)
            if transaction:
                cur.execute("COMMIT")

    run(MY_SETUP + MY_SNAPSHOT)
    with MySqlRewriteProxy(mariadb.host, mariadb.port) as proxy:
        engine = debezium(
            mysql_properties(
                "127.0.0.1",
                proxy.port,
                mariadb.user,
                mariadb.password,
                prefix,
                next(_ids),
                [f"{database}.mvals"],
            )
        )
        try:
            engine.wait(snapshot_done(4), settle=0)
            for tx in MY_STREAM:
                run(tx, transaction=True)
            return engine.wait(_deleted(6), settle=0.5)
        finally:
            engine.stop()


@pytest.fixture(scope="module")
def captured(
    postgres: PostgresService,
    mariadb: MariaDBService,
    kafka: KafkaService,
    debezium_jvm: None,
) -> Iterator[dict[str, Any]]:
    """Both captures, produced to Kafka once for all targets; the source tables' rows."""
    from tests.conformance.debezium import DebeziumEngine as Engine

    engines: list[Engine] = []

    def start(props: Mapping[str, str]) -> Engine:
        e = Engine(props)
        engines.append(e)
        e.start()
        return e

    n = next(_ids)
    pg_db, my_db = f"sinkconf_{os.getpid()}_{n}", f"sinkconf_{os.getpid()}_{n}"
    pg_dsn = postgres.create_database(pg_db)
    my = mariadb.create_database(my_db)
    pg_prefix, my_prefix = f"dbzsinkpg{os.getpid()}x{n}", f"dbzsinkmy{os.getpid()}x{n}"
    try:
        pg_records = _pg_capture(pg_dsn, start, pg_prefix)
        my_records = _my_capture(mariadb, my.name, start, my_prefix)
        pg_topic = f"{pg_prefix}.public.pvals"
        my_topic = f"{my_prefix}.{my.name}.mvals"
        produce(
            kafka.bootstrap, [r for r in pg_records + my_records if r[0] in (pg_topic, my_topic)]
        )
        yield {
            "pg_topic": pg_topic,
            "my_topic": my_topic,
            "pg_rows": _pg_rows(pg_dsn, "pvals", PG_COLUMNS),
            "my_rows": _my_rows(my.connect_kwargs(), "mvals", MY_COLUMNS),
            "pg_records": pg_records,
        }
    finally:
        for e in engines:
            e.stop()
        postgres.drop_database(pg_db)
        mariadb.drop_database(my.name)


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
    elif request.param == "postgres":
        dsn = request.getfixturevalue("pg_database")
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        # MySQL TIME beyond a day fits a Postgres interval (a time column would dead-letter
        # it): the user creates those columns, the sink adds the rest.
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE mvals (id integer PRIMARY KEY, tm interval, tm0 interval)"
            )
        engine.dispose()
        yield url
    else:
        db = request.getfixturevalue("mariadb_database")
        yield db.dsn.replace("mysql://", "mysql+pymysql://", 1)


def test_sink_writes_debezium_events_value_for_value(
    captured: dict[str, Any], target: str, kafka: KafkaService
) -> None:
    # the capture really holds what this test is about
    raw = b"".join(v for _t, _k, v in captured["pg_records"] if v)
    assert b"__debezium_unavailable_value" in raw  # unchanged TOASTed text
    assert b"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==" in raw  # ... and bytea
    assert any(r[2] is None for r in captured["pg_records"])  # tombstones

    n = next(_ids)
    cfg = config(
        kafka.bootstrap,
        target,
        [
            {"name": f"pg-{n}", "from": captured["pg_topic"], "table": "{table}"},
            {"name": f"my-{n}", "from": captured["my_topic"], "table": "{table}"},
        ],
        bridge=f"sinkconf{n}",
        consumer={"auto.offset.reset": "earliest"},
    )
    with run_routes(cfg) as running:
        for table, kinds, key in (
            ("pvals", PG_COLUMNS, "pg_rows"),
            ("mvals", MY_COLUMNS, "my_rows"),
        ):
            expected = captured[key]
            try:
                wait_for(
                    lambda table=table, kinds=kinds, expected=expected: (
                        _target_rows(target, table, kinds) == expected
                    ),
                    timeout=40,
                    what=f"{table} in {target.split(':')[0]}",
                )
            except AssertionError:
                got = _target_rows(target, table, kinds)
                diff = {
                    i: {c: (expected.get(i, {}).get(c), (got.get(i) or {}).get(c)) for c in kinds}
                    for i in set(expected) | set(got)
                    if expected.get(i) != got.get(i)
                }
                raise AssertionError(
                    f"{table}: source != target (source, target): {diff}"
                ) from None
        assert all(w.dead == 0 for w in running.workers), "dead letters"
