"""Poison records on a database route: wrong-typed values (small batches and COPY-sized ones),
bytes that are not JSON, JSON that is not an envelope, a 5 MB record. Each bad record ends on
the dead-letter topic with its original bytes, everything else is applied, the route goes on;
the test ends comparing the target with the source rows value for value."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_bridge.sinks.database.sink import normalize_url
from tests.faults._routes import (
    assert_dead_letters,
    assert_target,
    encoded,
    item,
    item_events,
    items_topic,
    produce_records,
    target_rows,
)
from tests.routes_support import config, run_routes


def _items_table(dsn: str) -> str:
    """The target table with ``qty`` an integer: a non-numeric qty cannot be written."""
    url = normalize_url(dsn)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, qty integer, name text)")
    engine.dispose()
    return url.render_as_string(hide_password=False)


def _route(topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "items",
        "from": topic,
        "table": "items",
        "max_retries": 1,
        "retry_backoff_ms": 50,
        **extra,
    }


def _wait(running: Any, cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if running.errors:
            raise AssertionError(f"the route stopped: {running.errors[0]!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("rows", [10, 200], ids=["small-batch", "copy-sized-batch"])
def test_wrong_typed_value_is_dead_lettered_and_the_rest_applied(
    kafka: Any, pg_database: str, topic_name: Any, rows: int
) -> None:
    url = _items_table(pg_database)
    topic = items_topic(topic_name, kafka.bootstrap)
    bad = {3, rows - 5}
    source = [item(i, qty="lots" if i in bad else None) for i in range(1, rows + 1)]
    produce_records(kafka.bootstrap, topic, encoded(item_events(source)))
    cfg = config(kafka.bootstrap, url, [_route(topic, batch_size=500, linger_ms=300)], bridge=topic)
    running = run_routes(cfg)
    try:
        _wait(
            running,
            lambda: (
                len(target_rows(url, "items")) == rows - len(bad)
                and running.workers[0].dead == len(bad)
            ),
            60,
            "the good rows in the target",
        )
        # the route goes on after the bad rows
        later = [item(i) for i in range(rows + 1, rows + 4)]
        produce_records(kafka.bootstrap, topic, encoded(item_events(later)))
        _wait(running, lambda: rows + 3 in target_rows(url, "items"), 30, "later rows")
    finally:
        running.close()
    expected = {
        r["id"]: {"id": r["id"], "qty": int(r["qty"]), "name": r["name"]}
        for r in [*source, *later]
        if r["id"] not in bad
    }
    assert_target(url, "items", expected)
    assert_dead_letters(kafka.bootstrap, topic, "items", topic, [i - 1 for i in sorted(bad)])


def test_undecodable_records_and_a_5mb_record_are_dead_lettered(
    kafka: Any, pg_database: str, topic_name: Any
) -> None:
    url = _items_table(pg_database)
    topic = items_topic(topic_name, kafka.bootstrap)
    good = encoded(item_events([item(i) for i in range(1, 6)]))
    big = os.urandom(5 * 1024 * 1024)
    records = [
        good[0],
        (topic, b'{"id": 90}', b"\x00\xffnot json at all"),  # offset 1
        good[1],
        (topic, b'{"id": 91}', b'{"hello": "not an envelope"}'),  # offset 3
        good[2],
        (topic, b'{"id": 92}', big),  # offset 5: 5 MB of noise
        good[3],
        good[4],
    ]
    produce_records(kafka.bootstrap, topic, records)
    running = run_routes(config(kafka.bootstrap, url, [_route(topic)], bridge=topic))
    try:
        _wait(
            running,
            lambda: len(target_rows(url, "items")) == 5 and running.workers[0].dead == 3,
            60,
            "5 rows applied and 3 dead letters",
        )
    finally:
        running.close()
    assert_target(
        url, "items", {i: {"id": i, "qty": i * 10, "name": f"item {i}"} for i in range(1, 6)}
    )
    letters = assert_dead_letters(kafka.bootstrap, topic, "items", topic, [1, 3, 5])
    assert {d.offset: d.value for d in letters}[5] == big
