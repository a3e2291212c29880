"""PostgreSQL: the same workload captured by real Debezium (pgoutput, its own slot and
publication) and by cdc-bridge on the same database; every event compared field by field and
every cdc-bridge record parsed by Kafka Connect's JsonConverter.

One compact workload covers snapshot and streaming: a wide table of every supported type
(typical values, NULLs, extremes), composite keys, a keyless table, replica identity DEFAULT
and FULL, unchanged TOASTed text/bytea/arrays, key changes, deletes and tombstones,
multi-statement transactions, TRUNCATE (skipped by default), a table name that is not a legal
topic name, generated columns and DDL (ADD COLUMN) while streaming.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import psycopg
import pytest

from cdc_bridge.testing.services import KafkaService
from tests.conformance.debezium import DebeziumEngine, Record, postgres_properties
from tests.conformance.scenario import conform, pg_dsn_parts
from tests.sources.pg_harness import make_config, run_source

pytestmark = pytest.mark.conformance

# (column, type, typical value, extreme value, other extreme) as SQL literals.
TYPES: list[tuple[str, str, str, str, str]] = [
    ("c_bool", "boolean", "true", "false", "true"),
    ("c_int2", "smallint", "12", "-32768", "32767"),
    ("c_int4", "integer", "123", "-2147483648", "2147483647"),
    ("c_int8", "bigint", "1234", "-9223372036854775808", "9223372036854775807"),
    ("c_float4", "real", "1.5", "-3.4e38", "'Infinity'"),
    ("c_float8", "double precision", "2.718281828459045", "-1.7976931348623157e308", "5e-324"),
    ("c_float8_nan", "double precision", "'NaN'", "'-Infinity'", "'Infinity'"),
    ("c_num", "numeric(10,2)", "1234.56", "-99999999.99", "0.01"),
    ("c_num0", "numeric(18,0)", "42", "-999999999999999999", "999999999999999999"),
    ("c_numbig", "numeric(38,10)", "1.5", "-1234567890123456789012345678.0123456789", "0"),
    ("c_numvar", "numeric", "3.14159", "-12345678901234567890.123456789", "0.000001"),
    ("c_money", "money", "12.34", "-92233720368547758.08", "92233720368547758.07"),
    ("c_text", "text", "'hello'", "''", "'ünï 😀 \"q\" \\\\ tab\t'"),
    ("c_varchar", "varchar(20)", "'abc'", "''", "'12345678901234567890'"),
    ("c_char", "char(5)", "'ab'", "' '", "'abcde'"),
    ("c_qchar", '"char"', "'x'", "'\\001'", "'z'"),
    ("c_name", "name", "'nm'", "''", "'a_name'"),
    ("c_bytea", "bytea", "'\\x00ff'", "'\\x'", "'\\x00000000'"),
    ("c_date", "date", "'2024-02-29'", "'4713-01-01 BC'", "'5874897-12-31'"),
    ("c_date_inf", "date", "'1970-01-01'", "'-infinity'", "'infinity'"),
    ("c_time", "time", "'12:34:56.789012'", "'00:00:00'", "'24:00:00'"),
    ("c_time3", "time(3)", "'12:34:56.789'", "'00:00:00'", "'23:59:59.999'"),
    ("c_time0", "time(0)", "'12:34:56'", "'00:00:00'", "'23:59:59'"),
    ("c_timetz", "timetz", "'12:34:56.5+02'", "'00:00:00+00'", "'23:59:59.999999-14:59'"),
    ("c_ts", "timestamp", "'2024-01-02 03:04:05.123456'", "'4713-01-01 00:00:00 BC'",
     "'294276-12-31 23:59:59.999999'"),
    ("c_ts3", "timestamp(3)", "'2024-01-02 03:04:05.123'", "'1900-01-01 00:00:00'",
     "'2100-12-31 23:59:59.999'"),
    ("c_ts_inf", "timestamp", "'1970-01-01 00:00:00'", "'-infinity'", "'infinity'"),
    ("c_tstz", "timestamptz", "'2024-01-02 03:04:09.5+00'", "'1900-01-01 00:00:00+00'",
     "'2100-12-31 23:59:59.999999+02'"),
    ("c_tstz3", "timestamptz(3)", "'2024-01-02 03:04:09+00'", "'1999-12-31 23:59:59.1+05:30'",
     "'2000-01-01 00:00:00.123-08'"),
    ("c_tstz0", "timestamptz(0)", "'2024-01-02 03:04:09+00'", "'1970-01-01 00:00:00+00'",
     "'2038-01-19 03:14:08+00'"),
    ("c_tstz_inf", "timestamptz", "'2024-01-02 03:04:09+00'", "'-infinity'", "'infinity'"),
    ("c_interval", "interval", "'1 year 2 months 3 days 04:05:06.789'", "'-1 day -00:00:01'",
     "'178000000 years'"),
    ("c_json", "json", "'{\"a\": [1, 2]}'", "'null'", "'[]'"),
    ("c_jsonb", "jsonb", "'{\"a\": [1, 2]}'", "'{}'", "'\"s\"'"),
    ("c_xml", "xml", "'<a>b</a>'", "''", "'<r x=\"1\"/>'"),
    ("c_uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
     "'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
    ("c_inet", "inet", "'192.168.0.1/24'", "'::1'", "'10.0.0.1'"),
    ("c_cidr", "cidr", "'10.0.0.0/8'", "'::/0'", "'192.168.1.0/24'"),
    ("c_macaddr", "macaddr", "'08:00:2b:01:02:03'", "'00:00:00:00:00:00'", "'ff:ff:ff:ff:ff:ff'"),
    ("c_macaddr8", "macaddr8", "'08:00:2b:01:02:03:04:05'", "'00:00:00:00:00:00:00:00'",
     "'ff:ff:ff:ff:ff:ff:ff:ff'"),
    ("c_bit1", "bit(1)", "B'1'", "B'0'", "B'1'"),
    ("c_bit", "bit(10)", "B'1010101010'", "B'0000000000'", "B'1111111111'"),
    ("c_bit9", "bit(9)", "B'100000001'", "B'000000000'", "B'111111111'"),
    ("c_bit8", "bit(8)", "B'11111111'", "B'10000000'", "B'00000001'"),
    ("c_varbit", "varbit(20)", "B'101'", "B''", "B'11111111111111111111'"),
    ("c_varbit_n", "bit varying", "B'1'", "B'0'", "B'10000000000000000'"),
    ("c_point", "point", "'(1.5,-2.5)'", "'(0,0)'", "'(-1e300,1e300)'"),
    ("c_box", "box", "'((0,0),(1,1))'", "'((-1,-1),(1,1))'", "'((2,3),(4,5))'"),
    ("c_circle", "circle", "'<(1,2),3>'", "'<(0,0),0>'", "'<(-1.5,2.5),10>'"),
    ("c_line", "line", "'{1,2,3}'", "'{1,-1,0}'", "'{0,1,5}'"),
    ("c_lseg", "lseg", "'[(0,0),(1,1)]'", "'[(1,2),(3,4)]'", "'[(-1,-1),(1,1)]'"),
    ("c_path", "path", "'[(0,0),(1,1),(2,0)]'", "'((0,0),(1,1))'", "'[(1,1)]'"),
    ("c_polygon", "polygon", "'((0,0),(1,1),(1,0))'", "'((0,0))'", "'((1,2),(3,4),(5,6),(7,8))'"),
    ("c_tsvector", "tsvector", "'a fat cat'", "''", "'''x y'':1A'"),
    ("c_tsquery", "tsquery", "'fat & cat'", "''", "'!x | y:*'"),
    ("c_pg_lsn", "pg_lsn", "'16/B374D848'", "'0/0'", "'FFFFFFFF/FFFFFFFF'"),
    ("c_hstore", "hstore", "'a=>1, b=>NULL'", "''", "'\"k y\"=>\"v,w\"'"),
    ("c_citext", "citext", "'MiXed'", "''", "'x'"),
    ("c_ltree", "ltree", "'Top.Science'", "''", "'a'"),
    ("c_int4range", "int4range", "'[1,10)'", "'empty'", "'(,)'"),
    ("c_int8range", "int8range", "'[1,10)'", "'empty'", "'[5,)'"),
    ("c_numrange", "numrange", "'[1.5,2.5]'", "'empty'", "'(,3)'"),
    ("c_tsrange", "tsrange", "'[2024-01-01 00:00,2024-01-02 00:00)'", "'empty'", "'(,)'"),
    ("c_tstzrange", "tstzrange", "'[2024-01-01 00:00+00,2024-01-02 00:00+00)'", "'empty'",
     "'(,)'"),
    ("c_daterange", "daterange", "'[2024-01-01,2024-02-01)'", "'empty'", "'(,)'"),
    ("c_enum", "mood", "'happy'", "'sad'", "'ok'"),
    ("c_domain", "posint", "1", "2147483647", "5"),
    ("c_oid", "oid", "42", "0", "4294967295"),
    ("c_int_arr", "integer[]", "'{1,2,NULL}'", "'{}'", "'{2147483647}'"),
    ("c_text_arr", "text[]", "'{\"a b\",NULL,\"\"}'", "'{}'", "'{\"x,y\",\"q\\\"\"}'"),
    ("c_varchar_arr", "varchar(5)[]", "'{a,b}'", "'{}'", "'{abcde}'"),
    ("c_bool_arr", "boolean[]", "'{t,f}'", "'{}'", "'{NULL}'"),
    ("c_int8_arr", "bigint[]", "'{1,-9223372036854775808}'", "'{}'", "'{0}'"),
    ("c_float8_arr", "float8[]", "'{1.5,-2.25}'", "'{}'", "'{0}'"),
    ("c_num_arr", "numeric(10,3)[]", "'{1.5,-2.125}'", "'{}'", "'{0}'"),
    ("c_numvar_arr", "numeric[]", "'{1.5,-2.125}'", "'{}'", "'{0}'"),
    ("c_uuid_arr", "uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'", "'{}'",
     "'{00000000-0000-0000-0000-000000000000}'"),
    ("c_date_arr", "date[]", "'{2024-01-01,1970-01-01}'", "'{}'", "'{1900-01-01}'"),
    ("c_ts_arr", "timestamp[]", "'{\"2024-01-01 00:00:00.5\"}'", "'{}'", "'{\"1970-01-01 00:00:00\"}'"),
    ("c_tstz_arr", "timestamptz[]", "'{\"2024-01-01 00:00:00.5+00\"}'", "'{}'",
     "'{\"1970-01-01 00:00:00+00\"}'"),
    ("c_jsonb_arr", "jsonb[]", "ARRAY['{\"a\":1}'::jsonb]", "'{}'", "ARRAY['[]'::jsonb]"),
    ("c_enum_arr", "mood[]", "'{happy,sad}'", "'{}'", "'{ok}'"),
    ("c_bytea_arr", "bytea[]", "ARRAY['\\x00ff'::bytea]", "'{}'", "ARRAY['\\x'::bytea]"),
    ("c_int2_arr", "smallint[]", "'{1,-32768}'", "'{}'", "'{32767}'"),
    ("c_float4_arr", "real[]", "'{1.5,NaN}'", "'{}'", "'{-Infinity}'"),
    ("c_char_arr", "char(3)[]", "'{a,bcd}'", "'{}'", "'{\" \"}'"),
    ("c_inet_arr", "inet[]", "'{10.0.0.1,::1/64}'", "'{}'", "'{192.168.0.0/16}'"),
    ("c_interval_arr", "interval[]", "'{1 day,-1 month}'", "'{}'", "'{00:00:01.5}'"),
    ("c_time_arr", "time[]", "'{12:00:00.25}'", "'{}'", "'{00:00:00}'"),
    ("c_money_arr", "money[]", "'{1.5}'", "'{}'", "'{-2}'"),
    ("c_timetz_arr", "timetz[]", "'{12:00:00+02}'", "'{}'", "'{00:00:00+00}'"),
    ("c_macaddr_arr", "macaddr[]", "'{08:00:2b:01:02:03}'", "'{}'", "'{00:00:00:00:00:00}'"),
    ("c_cidr_arr", "cidr[]", "'{10.0.0.0/8}'", "'{}'", "'{::/0}'"),
    ("c_json_arr", "json[]", "ARRAY['{\"a\":1}'::json]", "'{}'", "ARRAY['[]'::json]"),
    ("c_xml_arr", "xml[]", "ARRAY['<a/>'::xml]", "'{}'", "ARRAY['<b/>'::xml]"),
    ("c_oid_arr", "oid[]", "'{1,2}'", "'{}'", "'{4294967295}'"),
    ("c_bit_arr", "bit(3)[]", "'{101}'", "'{}'", "'{000}'"),
    ("c_name_arr", "name[]", "'{a,b}'", "'{}'", "'{c}'"),
    ("c_numrange_arr", "numrange[]", "'{\"[1,2)\"}'", "'{}'", "'{empty}'"),
    ("c_citext_arr", "citext[]", "'{A,b}'", "'{}'", "'{c}'"),
    ("c_ltree_arr", "ltree[]", "'{a.b}'", "'{}'", "'{c}'"),
    ("c_hstore_arr", "hstore[]", "ARRAY['a=>1'::hstore]", "'{}'", "ARRAY[''::hstore]"),
    ("c_comp", "pair", "ROW(1, 'x')", "ROW(NULL, NULL)", "ROW(-1, '')"),
    ("c_custom_range", "floatrange", "'[1.5,2.5)'", "'empty'", "'(,)'"),
    ("c_tstz3_arr", "timestamptz(3)[]", "'{\"2024-01-01 00:00:00.5+00\"}'", "'{}'", "'{}'"),
]  # fmt: skip

# TOASTed columns: (column, type, SQL of a value large enough to be stored out of line)
TOASTED: list[tuple[str, str, str]] = [
    ("body", "text", "repeat('s', 9000)"),
    ("data", "bytea", "decode(repeat('ab', 9000), 'hex')"),
    ("tags", "text[]", "ARRAY[repeat('t', 9000)]"),
    ("vcs", "varchar(9000)[]", "ARRAY[repeat('v', 9000)]"),
    ("nums", "integer[]", "array_fill(7, ARRAY[3000])"),
    ("bigs", "bigint[]", "array_fill(7::bigint, ARRAY[3000])"),
    ("smalls", "smallint[]", "array_fill(7::smallint, ARRAY[6000])"),
    ("decs", "numeric(5,2)[]", "array_fill(1.5::numeric, ARRAY[3000])"),
    ("dates", "date[]", "array_fill('2024-01-01'::date, ARRAY[3000])"),
    ("uuids", "uuid[]", "array_fill('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, ARRAY[1000])"),
    ("byteas", "bytea[]", "ARRAY[decode(repeat('cd', 9000), 'hex')]"),
    ("jsonbs", "jsonb", "jsonb_build_object('k', repeat('j', 9000))"),
    ("xmls", "xml", "('<a>' || repeat('x', 9000) || '</a>')::xml"),
    ("hs", "hstore", "hstore('k', repeat('h', 9000))"),
]

SETUP = [
    # a replication origin (cluster-wide: created once per server) for source.origin/origin_lsn
    "DO $$ BEGIN PERFORM pg_replication_origin_create('conformance_origin'); "
    "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    "CREATE EXTENSION hstore",
    "CREATE EXTENSION citext",
    "CREATE EXTENSION ltree",
    "CREATE TYPE mood AS ENUM ('happy', 'sad', 'ok')",
    "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
    "CREATE TYPE pair AS (a integer, b text)",
    "CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi)",
    "CREATE TABLE types (id integer PRIMARY KEY, "
    + ", ".join(f"{c} {t}" for c, t, *_ in TYPES)
    + ")",
    # defaults, NOT NULL columns, a generated column
    "CREATE TABLE defaults (id serial PRIMARY KEY, name text NOT NULL DEFAULT 'anon',"
    " qty integer NOT NULL DEFAULT 7, price numeric(8,2) DEFAULT 1.25,"
    " flag boolean DEFAULT false, created date DEFAULT '2020-01-01',"
    " doubled integer GENERATED ALWAYS AS (qty * 2) STORED,"
    " neg integer DEFAULT -1, big bigint DEFAULT 9223372036854775807, f8 float8 DEFAULT 1.5,"
    " f4 real DEFAULT -2.5, vc varchar(10) DEFAULT 'v''q', ch char(3) DEFAULT 'c',"
    " nvar numeric DEFAULT 3.5, ts timestamp DEFAULT '2020-01-02 03:04:05.5',"
    " ts_now timestamp DEFAULT now(), tstz timestamptz DEFAULT '2020-01-02 03:04:05+02',"
    " tstz_now timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP, d_now date DEFAULT CURRENT_DATE,"
    " t time DEFAULT '12:30', ival interval DEFAULT '1 day', u uuid DEFAULT"
    " 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', j jsonb DEFAULT '{\"k\": 1}', m mood DEFAULT 'sad',"
    " b bit(3) DEFAULT B'101', b1 bit(1) DEFAULT B'1', ba bytea DEFAULT '\\x01',"
    " arr integer[] DEFAULT '{1}', nul text DEFAULT NULL, dom posint DEFAULT 3,"
    " ts_inf timestamp DEFAULT 'infinity', mon money DEFAULT 5)",
    "CREATE TABLE composite (a integer, b text, c varchar(10), v integer, PRIMARY KEY (a, b))",
    "CREATE TABLE keyless (x integer, y text)",
    "ALTER TABLE keyless REPLICA IDENTITY FULL",
    "CREATE TABLE full_ident (id integer PRIMARY KEY, v text, n integer)",
    "ALTER TABLE full_ident REPLICA IDENTITY FULL",
    'CREATE TABLE "Order Items" (id integer PRIMARY KEY, "Item Name" text)',
    "CREATE TABLE toast (id integer PRIMARY KEY, n integer, "
    + ", ".join(f"{c} {t}" for c, t, _ in TOASTED)
    + ")",
    "ALTER TABLE toast " + ", ".join(f"ALTER {c} SET STORAGE EXTERNAL" for c, _, _ in TOASTED),
    "CREATE TABLE marker (id integer PRIMARY KEY)",
]


def _row(rid: int, which: int) -> str:
    """INSERT of the wide table: which 0 typical, 1 NULLs, 2 and 3 the extremes."""
    vals = ["NULL"] * len(TYPES) if which == 1 else [t[{0: 2, 2: 3, 3: 4}[which]] for t in TYPES]
    return f"INSERT INTO types VALUES ({rid}, {', '.join(vals)})"


SNAPSHOT_ROWS = [
    *(_row(i + 1, i) for i in range(4)),
    "INSERT INTO defaults (name) VALUES ('first')",
    "INSERT INTO defaults DEFAULT VALUES",
    "INSERT INTO composite VALUES (1, 'x', 'c1', 10), (1, 'y', NULL, 11)",
    "INSERT INTO keyless VALUES (1, 'one'), (NULL, NULL)",
    "INSERT INTO full_ident VALUES (1, 'a', 1)",
    "INSERT INTO \"Order Items\" VALUES (1, 'widget')",
    "INSERT INTO toast VALUES (1, 1, " + ", ".join(v for _, _, v in TOASTED) + ")",
]
SNAPSHOT_COUNT = 4 + 2 + 2 + 2 + 1 + 1 + 1

# Streaming workload: each entry is one transaction.
STREAM: list[list[str]] = [
    [_row(101 + i, i) for i in range(4)],
    ["UPDATE types SET c_int4 = 7, c_text = 'changed' WHERE id = 1"],
    ["UPDATE types SET id = 1001 WHERE id = 2"],  # key change (DEFAULT identity)
    ["DELETE FROM types WHERE id = 3"],
    [
        "INSERT INTO defaults (qty) VALUES (3)",
        "INSERT INTO defaults (qty, price, flag, name, neg) VALUES (5, NULL, NULL, 'x', NULL)",
        "UPDATE defaults SET qty = 4 WHERE id = 1",
        "DELETE FROM defaults WHERE id = 2",
    ],
    [
        "INSERT INTO composite VALUES (2, 'z', 'c2', 12)",
        "UPDATE composite SET v = 99 WHERE a = 1 AND b = 'x'",
        "UPDATE composite SET b = 'w' WHERE a = 1 AND b = 'y'",
        "DELETE FROM composite WHERE a = 2",
    ],
    [  # a transaction replayed from elsewhere: Debezium fills source.origin and origin_lsn
        "SELECT pg_replication_origin_session_setup('conformance_origin')",
        "SELECT pg_replication_origin_xact_setup('0/1234', now())",
        "INSERT INTO composite VALUES (3, 'o', 'origin', 13)",
    ],
    [
        "INSERT INTO keyless VALUES (2, 'two')",
        "UPDATE keyless SET y = 'uno' WHERE x = 1",
        "DELETE FROM keyless WHERE x = 2",
    ],
    [
        "UPDATE full_ident SET v = 'b' WHERE id = 1",
        "UPDATE full_ident SET id = 2 WHERE id = 1",
        "DELETE FROM full_ident WHERE id = 2",
    ],
    ["INSERT INTO \"Order Items\" VALUES (2, 'gadget')", 'DELETE FROM "Order Items" WHERE id = 1'],
    ["INSERT INTO toast VALUES (2, 1, " + ", ".join(v for _, _, v in TOASTED) + ")"],
    ["UPDATE toast SET n = 2 WHERE id IN (1, 2)"],  # unchanged TOAST: placeholders
    ["UPDATE toast SET body = 'short', n = 3 WHERE id = 2"],
    ["TRUNCATE composite"],  # skipped by default (Debezium skipped.operations=t)
    ["ALTER TABLE full_ident ADD COLUMN extra text DEFAULT 'dflt'"],
    ["INSERT INTO full_ident (id, v, n) VALUES (5, 'e', 5)"],
    ["INSERT INTO full_ident VALUES (6, 'f', 6, 'given')", "DELETE FROM full_ident WHERE id = 5"],
    ["INSERT INTO marker VALUES (1)"],
]


# Differences caused by Debezium bugs (meaningless values on Debezium's side), each listed in
# docs/compatibility.md; a pattern matches "<topic> <difference>" of the comparator's report.
DEBEZIUM_BUGS = {
    "*.public.types value.payload.after.c_name: debezium null != cdc-bridge *":
        "Debezium streams `name` columns as null (its snapshot has the value)",
    "*.public.types value.payload.after.c_date: debezium 1001860 != cdc-bridge -2440550":
        "Debezium's snapshot loses the era of a BC date (its stream has -2440550)",
    "*.public.types value.payload.after.c_date_inf: debezium * != cdc-bridge null":
        "date 'infinity'/'-infinity': Debezium writes arbitrary day numbers that differ "
        "between its snapshot and its stream; cdc-bridge writes null",
    "*.public.types value.payload.after.c_ts: debezium -9223372036853775810"
    " != cdc-bridge 9223372036854775807":
        "timestamp past int64 microseconds (year 294276): Debezium overflows to a negative "
        "number, cdc-bridge clamps to the int64 maximum",
    "*.public.defaults value.*ts_inf*: debezium -9223372036853775810"
    " != cdc-bridge 9223372036825200000":
        "DEFAULT 'infinity' on a timestamp: Debezium's default overflows; cdc-bridge writes "
        "the infinity value Debezium uses for row values",
    "*.public.types value.schema.*.c_bit_arr*":
        "bit(n)[]: Debezium declares a single Bits value and always writes null; cdc-bridge "
        "writes the array of Bits",
    "*.public.types value.payload.*.c_bit_arr: debezium null != *":
        "bit(n)[]: Debezium declares a single Bits value and always writes null",
}  # fmt: skip


def _has_marker(records: list[Record]) -> bool:
    return any(t.endswith(".public.marker") and v is not None for t, _, v in records)


def _sql(dsn: str, statements: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s)


def _transaction(dsn: str, statements: list[str]) -> None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        for s in statements:
            conn.execute(s)


def test_postgres_matches_debezium(
    pg_database: str,
    kafka: KafkaService,
    debezium: Callable[[Mapping[str, str]], DebeziumEngine],
    unique_prefix: Callable[[str], str],
) -> None:
    _sql(pg_database, SETUP + SNAPSHOT_ROWS)
    dbz_prefix, our_prefix = unique_prefix("dbzpg"), unique_prefix("cbpg")
    engine = debezium(
        postgres_properties(pg_dsn_parts(pg_database), dbz_prefix, dbz_prefix, dbz_prefix)
    )
    # Kafka's JsonConverter writes a column's default for a NULL; cdc-bridge keeps the NULL
    # unless replace_null_with_default (a documented difference): compared with the option on.
    cfg = make_config(
        pg_database,
        our_prefix,
        snapshot="initial",
        heartbeat_interval_ms=0,
        replace_null_with_default=True,
    )

    def stream() -> None:
        for tx in STREAM:
            _transaction(pg_database, tx)

    conform(
        engine,
        run_source(kafka.bootstrap, cfg),
        bootstrap=kafka.bootstrap,
        debezium_prefix=dbz_prefix,
        our_prefix=our_prefix,
        snapshot_rows=SNAPSHOT_COUNT,
        stream=stream,
        done=_has_marker,
        ignore=DEBEZIUM_BUGS,
        # both read the same WAL: positions, transaction ids and commit times are equal
        exact_streaming_source=("lsn", "txId", "sequence", "ts_ms", "ts_us", "ts_ns", "xmin"),
    )
