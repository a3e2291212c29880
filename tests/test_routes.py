"""The route engine against a real Kafka broker and SQLite targets: consuming, filters,
mappings, ops, globs, schemaless topics, dead letters and their replay."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_bridge.config import RouteConfigBase
from cdc_bridge.dlq import dlq_topic, read_dead_letters
from cdc_bridge.routes import ReplayResult, replay_dead_letters, route_name, subscription
from tests.routes_support import (
    col,
    config,
    create_topic,
    encode,
    event,
    expected_row,
    norm_row,
    produce,
    row,
    run_routes,
    table,
    wait_for,
)


def select(url: str, sql: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.exec_driver_sql(sql)]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def count(url: str, tbl: str) -> int:
    rows = select(url, f'SELECT COUNT(*) AS n FROM "{tbl}"')
    return rows[0]["n"] if rows else 0


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.db'}"


def test_route_names_and_globs() -> None:
    r = RouteConfigBase.model_validate({"from": "shop.public.*", "to": "dw"})
    assert route_name(r) == "shop.public.all-to-dw"
    assert subscription(["shop.public.*", "a.b.c"]) == [r"^shop\.public\..*$", "a.b.c"]


def test_route_applies_topic_to_sqlite_exactly(
    kafka: Any, topic_name: Any, sqlite_url: str
) -> None:
    prefix = topic_name("shop")
    t = table(source=prefix)
    create_topic(kafka.bootstrap, t.topic, partitions=3)
    events = [event(t, "c", None, row(i)) for i in range(40)]
    events += [event(t, "u", row(i), row(i, name=f"new {i}")) for i in range(0, 40, 3)]
    events += [event(t, "d", row(i), None) for i in range(0, 40, 5)]
    total = produce(kafka.bootstrap, encode(events))
    cfg = config(kafka.bootstrap, sqlite_url, [{"name": "r1", "from": f"{prefix}.public.*"}])
    with run_routes(cfg) as running:
        wait_for(
            lambda: (
                sum(
                    r["applied"]
                    for r in select(sqlite_url, "SELECT applied FROM cdc_bridge_offsets")
                )
                == total
            ),
            what="all records applied",
        )
        assert running.workers[0].dead == 0
    expected = {
        i: norm_row(expected_row(i, name=f"new {i}" if i % 3 == 0 else f"name {i}"))
        for i in range(40)
        if i % 5
    }
    got = {r["id"]: norm_row(r) for r in select(sqlite_url, "SELECT * FROM customers")}
    assert got == expected
    offsets = select(sqlite_url, "SELECT * FROM cdc_bridge_offsets")
    assert {r["group_id"] for r in offsets} == {"test.r1"}
    assert sum(r["next_offset"] for r in offsets) == total


def test_filter_ops_and_mapping(kafka: Any, topic_name: Any, sqlite_url: str) -> None:
    prefix = topic_name("shop")
    t = table(
        source=prefix,
        columns=(
            col("id", "int32", False),
            col("first", "string"),
            col("last", "string"),
            col("country", "string"),
            col("secret", "string"),
        ),
    )
    create_topic(kafka.bootstrap, t.topic)

    def r(i: int, country: str) -> dict[str, Any]:
        return {"id": i, "first": f"F{i}", "last": f"L{i}", "country": country, "secret": "pw"}

    events = [event(t, "c", None, r(i, "US" if i % 2 else "DE")) for i in range(10)]
    events.append(event(t, "d", r(1, "US"), None))  # deletes are not selected by ops
    events.append(event(t, "u", r(3, "US"), r(3, "CA")))  # leaves the filter: deleted
    produce(kafka.bootstrap, encode(events))
    cfg = config(
        kafka.bootstrap,
        sqlite_url,
        [
            {
                "name": "us",
                "from": t.topic,
                "ops": ["c", "u", "r"],
                "filter": 'after.country == "US" and op != "d"',
                "table": "us_{table}",
                "mapping": {
                    "exclude": ["secret"],
                    "rename": {"id": "customer_id", "country": "cc"},
                    "constants": {"origin": "shop"},
                    "computed": {"full_name": 'concat(after.first, " ", upper(after.last))'},
                },
            }
        ],
    )
    with run_routes(cfg) as running:
        wait_for(
            lambda: running.workers[0].applied + running.workers[0].skipped == len(events) + 1,
            what="all consumed",
        )
    got = select(sqlite_url, "SELECT * FROM us_customers ORDER BY customer_id")
    assert got == [
        {
            "customer_id": i,
            "first": f"F{i}",
            "last": f"L{i}",
            "cc": "US",
            "origin": "shop",
            "full_name": f"F{i} L{i}",
        }
        for i in (1, 5, 7, 9)
    ]


def test_schemaless_topics_and_tombstone_only_deletes(
    kafka: Any, topic_name: Any, sqlite_url: str
) -> None:
    prefix = topic_name("shop")
    t = table(source=prefix, columns=(col("id", "int32", False), col("name", "string")))
    create_topic(kafka.bootstrap, t.topic)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    engine.dispose()
    recs = encode(
        [event(t, "c", None, {"id": i, "name": f"n{i}"}) for i in range(5)], schemas=False
    )
    # a compacted topic may keep only the tombstone of a deleted key
    recs.append((t.topic, b'{"id": 2}', None))
    produce(kafka.bootstrap, recs)
    cfg = config(kafka.bootstrap, sqlite_url, [{"name": "nos", "from": t.topic}])
    with run_routes(cfg):
        wait_for(
            lambda: (
                sum(
                    r["applied"]
                    for r in select(sqlite_url, "SELECT applied FROM cdc_bridge_offsets")
                )
                == 6
            ),
            what="applied",
        )
    assert [r["id"] for r in select(sqlite_url, "SELECT id FROM customers ORDER BY id")] == [
        0,
        1,
        3,
        4,
    ]


def test_poison_records_go_to_the_dlq_and_replay(
    kafka: Any, topic_name: Any, sqlite_url: str
) -> None:
    prefix = topic_name("shop")
    bridge = topic_name("br")
    t = table(source=prefix, columns=(col("id", "int32", False), col("n", "int32")))
    create_topic(kafka.bootstrap, t.topic)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, n INTEGER CHECK (n < 100))"
        )
    recs = encode([event(t, "c", None, {"id": 1, "n": 1})])
    recs.append((t.topic, b'{"id": 99}', b"this is not json"))
    recs += encode([event(t, "c", None, {"id": 2, "n": 500})])  # violates the CHECK
    recs += encode([event(t, "c", None, {"id": 3, "n": 3})])
    produce(kafka.bootstrap, recs)
    cfg = config(
        kafka.bootstrap,
        sqlite_url,
        [{"name": "p", "from": t.topic, "max_retries": 1, "retry_backoff_ms": 10}],
        bridge=bridge,
    )
    with run_routes(cfg) as running:
        wait_for(lambda: running.workers[0].dead == 2, what="two dead letters")
        wait_for(lambda: count(sqlite_url, "customers") == 2, what="good rows applied")
    assert [r["id"] for r in select(sqlite_url, "SELECT id FROM customers ORDER BY id")] == [1, 3]

    letters = list(read_dead_letters(kafka.bootstrap, dlq_topic(bridge, "p")))
    assert [(d.topic, d.partition, d.offset, d.code) for d in letters] == [
        (t.topic, 0, 1, "invalid_json"),
        (t.topic, 0, 2, "IntegrityError"),
    ]
    assert "CHECK constraint failed" in letters[1].error
    assert letters[1].value == recs[2][2]
    assert letters[1].timestamp > 0

    # fix the target, replay: the constraint violation is applied, the garbage fails again
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE customers RENAME TO old")
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.exec_driver_sql("INSERT INTO customers SELECT * FROM old")
    engine.dispose()
    result = replay_dead_letters(cfg, "p")
    assert (result.replayed, result.failed) == (1, 1)
    assert select(sqlite_url, "SELECT * FROM customers ORDER BY id") == [
        {"id": 1, "n": 1},
        {"id": 2, "n": 500},
        {"id": 3, "n": 3},
    ]
    # replaying again does nothing: each letter is replayed once, the undecodable one stays
    assert replay_dead_letters(cfg, "p") == ReplayResult()
    letters = list(read_dead_letters(kafka.bootstrap, dlq_topic(bridge, "p")))
    assert [d.code for d in letters] == ["invalid_json", "IntegrityError"]


def test_check_reports_bad_expressions_with_the_route_path() -> None:
    from pydantic import ValidationError

    from cdc_bridge.sinks.database.config import DatabaseRouteConfig

    with pytest.raises(ValidationError) as info:
        DatabaseRouteConfig.model_validate({"from": "a", "to": "db", "filter": "after.x == == 1"})
    err = info.value.errors()[0]
    assert err["loc"] == ("filter",)
    assert "position 12" in err["msg"]
    with pytest.raises(ValidationError) as info:
        DatabaseRouteConfig.model_validate(
            {"from": "a", "to": "db", "mapping": {"computed": {"x": "nope(1)"}}}
        )
    err = info.value.errors()[0]
    assert err["loc"] == ("mapping", "computed")
    assert "computed.x" in err["msg"] and "unknown function 'nope'" in err["msg"]
    json.dumps(err["msg"])


def test_glob_route_picks_up_topics_created_later(
    kafka: Any, topic_name: Any, sqlite_url: str
) -> None:
    prefix = topic_name("shop")
    t = table(source=prefix, columns=(col("id", "int32", False), col("name", "string")))
    cfg = config(kafka.bootstrap, sqlite_url, [{"name": "late", "from": f"{prefix}.public.*"}])
    with run_routes(cfg):
        time.sleep(3)  # the route subscribed while no matching topic existed
        create_topic(kafka.bootstrap, t.topic)
        produce(kafka.bootstrap, encode([event(t, "c", None, {"id": 1, "name": "late"})]))
        wait_for(lambda: count(sqlite_url, "customers") == 1, timeout=30, what="the new topic")
