"""Filters on table-mirroring sinks: the target holds the source rows that match the filter.
A row updated so that it no longer matches is deleted (or soft-deleted, per the route's
delete mode); ``on_filter_exit = "keep"`` keeps it with its last matching values."""

from __future__ import annotations

from typing import Any

from tests.faults._routes import assert_target, produce_records, target_rows
from tests.routes_support import col, config, create_topic, encode, event, run_routes, table
from tests.routes_support import wait_for as wait

PEOPLE = table(
    "people", (col("id", "int32", False), col("country", "string"), col("name", "string"))
)


def _p(i: int, country: str) -> dict[str, Any]:
    return {"id": i, "country": country, "name": f"person {i}"}


def test_rows_leaving_the_filter_leave_the_target(
    kafka: Any, pg_database: str, topic_name: Any
) -> None:
    topic = topic_name("people")
    create_topic(kafka.bootstrap, topic)
    source: dict[int, dict[str, Any]] = {}
    events = []

    def change(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        events.append(event(PEOPLE, op, before, after))
        if after is None:
            source.pop((before or {})["id"], None)
        else:
            source[after["id"]] = after

    for i in range(1, 8):
        change("r" if i < 4 else "c", None, _p(i, "US" if i % 2 else "DE"))
    first = encode(events)
    events.clear()
    change("u", None, _p(1, "DE"))  # leaves the filter; old state not in the event
    change("u", _p(3, "US"), _p(3, "CA"))  # leaves the filter, old state known
    change("u", _p(2, "DE"), _p(2, "FR"))  # never matched: nothing to do
    change("u", _p(4, "DE"), _p(4, "US"))  # enters the filter
    change("d", {"id": 5, "country": None, "name": None}, None)  # key-only old state
    change("c", None, _p(8, "DE"))
    then = encode(events)  # with the tombstone of the delete

    base = {"from": topic, "filter": 'after.country == "US"'}
    cfg = config(
        kafka.bootstrap,
        pg_database,
        [
            {**base, "name": "mirror", "table": "mirror"},
            {**base, "name": "soft", "table": "soft", "deletes": "soft"},
            {
                **base,
                "name": "keep",
                "table": "keep",
                "on_filter_exit": "keep",  # event semantics: deletes pass only if selected
                "filter": 'after.country == "US" or op == "d"',
            },
        ],
        bridge=topic,
    )
    with run_routes(cfg) as running:
        n = 0
        for records in (first, then):  # two rounds, so the soft deletes find their rows
            n += produce_records(kafka.bootstrap, topic, records)
            wait(
                lambda n=n: all(w.applied + w.skipped + w.dead == n for w in running.workers),
                60,
                "every record consumed by every route",
            )
    matching = {k: v for k, v in source.items() if v["country"] == "US"}
    assert sorted(matching) == [4, 7]
    assert_target(pg_database, "mirror", matching)
    # soft deletes: the rows that left are flagged, the matching ones are not
    soft = target_rows(pg_database, "soft")
    assert {k for k, r in soft.items() if not r["__deleted"]} == set(matching)
    assert {k for k, r in soft.items() if r["__deleted"]} == {1, 3, 5}
    # keep: rows that left the filter stay with their last matching values
    kept = {**matching, 1: _p(1, "US"), 3: _p(3, "US")}
    assert_target(pg_database, "keep", kept)
