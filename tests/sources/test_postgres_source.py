"""Integration tests of the Postgres source: a private PostgreSQL, the embedded broker, and
the events compared field by field with Debezium's."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from cdc_bridge.testing.services import KafkaService
from tests.connect_schema import validate
from tests.sources.pg_harness import make_config, payload, read_topic, run_source

_names = itertools.count(1)


def src_name() -> str:
    return f"pg{next(_names)}"


def sql(dsn: str, *stmts: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in stmts:
            conn.execute(s)


def ops(records: list[tuple[Any, Any]]) -> list[str | None]:
    return [payload(r)["op"] if r[1] is not None else None for r in records]


def test_insert_update_delete_truncate(pg_database: str, kafka: KafkaService) -> None:
    sql(pg_database, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int)")
    name = src_name()
    cfg = make_config(pg_database, name, tables=["public.items"], snapshot="never")
    with run_source(kafka.bootstrap, cfg):
        sql(
            pg_database,
            "INSERT INTO items VALUES (1, 'one', 10), (2, 'two', NULL)",
            "UPDATE items SET qty = 11 WHERE id = 1",
            "DELETE FROM items WHERE id = 2",
            "TRUNCATE items",
        )
        recs = read_topic(kafka.bootstrap, f"{name}.public.items", 6)
    assert ops(recs) == ["c", "c", "u", "d", None, "t"]
    key, value = recs[0]
    assert key["payload"] == {"id": 1}
    assert key["schema"]["name"] == f"{name}.public.items.Key"
    validate(value["schema"], value["payload"])
    p = value["payload"]
    assert p["before"] is None and p["after"] == {"id": 1, "name": "one", "qty": 10}
    src = p["source"]
    assert list(src) == [
        "version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us",
        "ts_ns", "schema", "table", "txId", "lsn", "xmin",
    ]  # fmt: skip
    assert src["connector"] == "postgresql" and src["name"] == name
    assert src["schema"] == "public" and src["table"] == "items" and src["snapshot"] == "false"
    assert isinstance(src["txId"], int) and isinstance(src["lsn"], int)
    seq = __import__("json").loads(src["sequence"])
    assert len(seq) == 2 and seq[1] == str(src["lsn"])
    assert payload(recs[1])["source"]["txId"] == src["txId"]  # same transaction
    assert payload(recs[2])["before"] is None  # REPLICA IDENTITY DEFAULT, key unchanged
    assert payload(recs[2])["after"]["qty"] == 11
    d = payload(recs[3])
    assert d["before"] == {"id": 2, "name": None, "qty": None} and d["after"] is None
    assert recs[4] == (recs[3][0], None)  # tombstone with the same key
    t = payload(recs[5])
    assert recs[5][0] is None and t["before"] is None and t["after"] is None
    fields = {f["field"]: f for f in value["schema"]["fields"][0]["fields"]}
    assert fields["id"]["optional"] is False and fields["name"]["optional"] is False
    assert fields["qty"]["optional"] is True
