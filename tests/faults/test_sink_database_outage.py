"""The target database goes down under a running route: the route retries with backoff,
``/readyz`` says 503 (route ``retrying``) meanwhile, and when the database is back every record
is applied once -- the target equals the source, no dead letter. (An outage of ~6 s: long
enough for several backoff rounds, short enough for the suite's time budget.)"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from tests.faults._routes import (
    assert_target,
    dead_letters,
    encoded,
    item,
    item_events,
    items_topic,
    produce_records,
    target_rows,
)
from tests.faults.support import bridge_config, wait_for

OUTAGE_S = 6


def test_target_database_down_then_back(
    tmp_path: Path, kafka: Any, faults_postgres: Any, topic_name: Any, bridge_process: Any
) -> None:
    dsn = faults_postgres.create_database(f"t_{uuid.uuid4().hex[:10]}")
    topic = items_topic(topic_name, kafka.bootstrap)
    conf = bridge_config(
        tmp_path,
        kafka.bootstrap,
        sinks=[{"name": "target", "kind": "database", "url": dsn}],
        routes=[{"name": "items", "from": topic, "to": "target", "table": "items"}],
        bridge={"name": f"b{uuid.uuid4().hex[:8]}"},
    )
    bridge = bridge_process(conf)
    produce_records(kafka.bootstrap, topic, encoded(item_events([item(i) for i in range(1, 51)])))
    wait_for(lambda: len(target_rows(dsn, "items")) == 50, 60, "the first 50 rows")
    bridge.wait_ready(30)

    faults_postgres.down("fast")
    down_at = time.monotonic()
    try:
        produce_records(
            kafka.bootstrap, topic, encoded(item_events([item(i) for i in range(51, 101)]))
        )
        body = bridge.wait_readyz(
            lambda code, b: code == 503 and b["routes"]["items"]["state"] == "retrying",
            30,
            "the route retrying its target",
        )
        assert "target" in body["routes"]["items"]["detail"]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert bridge.running()
    finally:
        faults_postgres.up()
    wait_for(lambda: len(target_rows(dsn, "items")) == 100, 60, "all 100 rows after the outage")
    bridge.wait_ready(30)
    assert bridge.stop() == 0
    assert_target(
        dsn, "items", {i: {"id": i, "qty": str(i * 10), "name": f"item {i}"} for i in range(1, 101)}
    )
    assert dead_letters(kafka.bootstrap, conf["bridge"]["name"], "items") == []
    assert "Traceback" not in bridge.log()
