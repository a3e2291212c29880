"""A topic deleted and re-created (or a Kafka cluster lost and rebuilt) under a route whose
sink stores offsets in the target: the route must not resume the new topic at the offsets of
the old one (skipping what it holds). It stops -- only that route -- with the reason and the
recovery command in the log, ``/readyz`` (503) and ``cdc-bridge status``; after
``cdc-bridge routes reset`` it reads the new topic from the start and nothing is missing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from cdc_bridge.errors import RouteHalted
from cdc_bridge.routes import build_workers, identity_problems
from tests.faults._routes import (
    assert_target,
    dead_letters,
    encoded,
    item,
    item_events,
    produce_records,
    target_rows,
)
from tests.faults.support import bridge_config, cli, wait_for
from tests.routes_support import Running, config


def _recreate(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.delete_topics([topic]).values():
        fut.result()
    deadline = time.monotonic() + 30
    while True:
        try:
            for fut in admin.create_topics([NewTopic(topic, 1)]).values():
                fut.result()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _halted(code: int, body: dict[str, Any]) -> bool:
    route = body["routes"].get("items") or {}
    return code == 503 and route.get("state") == "halted"


def _expected(ids: range) -> dict[int, dict[str, Any]]:
    return {i: {"id": i, "qty": str(i * 10), "name": f"item {i}"} for i in ids}


def test_recreated_topic_stops_the_route_until_reset(
    tmp_path: Path, kafka: Any, pg_database: str, topic_name: Any, bridge_process: Any
) -> None:
    topic = topic_name("items")
    _create(kafka.bootstrap, topic)
    produce_records(kafka.bootstrap, topic, encoded(item_events([item(i) for i in range(1, 6)])))
    conf = bridge_config(
        tmp_path,
        kafka.bootstrap,
        sinks=[{"name": "target", "kind": "database", "url": pg_database}],
        routes=[{"name": "items", "from": topic, "to": "target", "table": "items"}],
        bridge={"name": f"b{uuid.uuid4().hex[:8]}"},
    )
    first = bridge_process(conf, name="first")
    wait_for(lambda: len(target_rows(pg_database, "items")) == 5, 60, "the first 5 rows")
    assert first.stop() == 0

    # The topic is deleted and re-created; it now holds 8 other records (offsets 0-7),
    # more than the 5 the route stored an offset for.
    _recreate(kafka.bootstrap, topic)
    produce_records(kafka.bootstrap, topic, encoded(item_events([item(i) for i in range(6, 14)])))

    second = bridge_process(conf, name="second")
    body = second.wait_readyz(_halted, 30, "the route halted")
    detail = body["routes"]["items"]["detail"]
    assert "re-created" in detail and "cdc-bridge routes reset --route items" in detail
    code, status = second.status()
    assert code == 1
    (route,) = status["routes"]
    assert "re-created" in (route["error"] or ""), route
    # nothing of the new topic was applied at the old offsets
    assert sorted(target_rows(pg_database, "items")) == [1, 2, 3, 4, 5]
    assert "ERROR" in second.log() and "routes reset" in second.log()
    assert second.stop() == 1

    done = cli("routes", "reset", "--route", "items", "--config", str(second.config_path))
    assert done.returncode == 0, done.stderr
    assert "forgot the offsets of 1 partition(s)" in done.stdout

    third = bridge_process(conf, name="third")
    wait_for(lambda: len(target_rows(pg_database, "items")) == 13, 60, "all 13 rows")
    third.wait_ready(30)
    assert third.stop() == 0
    assert_target(pg_database, "items", _expected(range(1, 14)))
    assert dead_letters(kafka.bootstrap, conf["bridge"]["name"], "items") == []


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, 1)]).values():
        fut.result()


def test_without_topic_ids_a_partition_ending_below_the_stored_offset_is_detected() -> None:
    """Brokers that report no topic ids: the offset-range check decides (pure function)."""
    stored = {("a", 0): 5, ("a", 1): 3, ("b", 0): 7}
    ends = {("a", 0): 2, ("a", 1): 9, ("b", 0): 7}
    problems = identity_problems(stored, {}, {}, lambda t, p: ends[(t, p)])
    assert len(problems) == 1 and problems[0].startswith(
        "a[0] ends at offset 2, below the offset 5"
    )
    # with ids, the ids decide: same id -> fine whatever the watermark says; new id -> halted
    assert identity_problems(stored, {("b", 0): "X"}, {"b": "X"}, lambda t, p: 0) == [
        p for p in identity_problems(stored, {}, {}, lambda t, p: 0) if not p.startswith("b")
    ]
    (changed,) = identity_problems({("b", 0): 7}, {("b", 0): "X"}, {"b": "Y"}, lambda t, p: 99)
    assert "re-created" in changed and "was X, is Y" in changed


def test_a_topic_id_that_changes_while_the_route_runs_stops_it(
    kafka: Any, pg_database: str, topic_name: Any
) -> None:
    """The route re-checks its topics' ids every few seconds. (Deleting a topic under a
    running consumer crashes librdkafka against the test broker, so the re-creation is
    simulated: the id the route learnt at assignment is replaced by another one.)"""
    topic = topic_name("items")
    _create(kafka.bootstrap, topic)
    produce_records(kafka.bootstrap, topic, encoded(item_events([item(i) for i in range(1, 6)])))
    cfg = config(
        kafka.bootstrap,
        pg_database,
        [{"name": "items", "from": topic, "table": "items"}],
        bridge=f"b{uuid.uuid4().hex[:8]}",
    )
    running = Running(build_workers(cfg))
    try:
        wait_for(lambda: len(target_rows(pg_database, "items")) == 5, 60, "the first 5 rows")
        worker = running.workers[0]
        assert topic in worker.sink.context.topic_ids  # learnt at assignment, stored with offsets
        worker.sink.context.topic_ids[topic] = "AAAAAAAAAAAAAAAAAAAAAQ"  # "the old topic"
        wait_for(lambda: running.errors, 30, "the route to stop")
    finally:
        running.stop.set()
        for t in running.threads:
            t.join(30)
        for w in running.workers:
            w.close()
    (error,) = running.errors
    assert isinstance(error, RouteHalted), repr(error)
    assert "re-created while the route consumed it" in str(error)
    assert "cdc-bridge routes reset --route items" in str(error)
