"""Dead letters are never lost: a record that cannot be decoded reaches the dead-letter topic
-- confirmed by Kafka -- before the offsets that pass it are committed, also for a sink that
stores its offsets in the target (the database sink)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from tests.faults._routes import (
    assert_dead_letters,
    assert_target,
    dead_letters,
    encoded,
    item,
    item_events,
    items_topic,
    produce_records,
    target_rows,
)
from tests.faults.support import free_port, wait_for
from tests.routes_support import config, run_routes


def test_undecodable_record_is_dead_lettered_before_the_target_commits_past_it(
    kafka: Any, pg_database: str, topic_name: Any, caplog: pytest.LogCaptureFixture
) -> None:
    topic = items_topic(topic_name, kafka.bootstrap)
    good = encoded(item_events([item(1), item(2)]))
    produce_records(
        kafka.bootstrap, topic, [good[0], (topic, b'{"id": 9}', b"\x00 not json"), good[1]]
    )
    route = {"name": "items", "from": topic, "table": "items", "linger_ms": 50}
    url = pg_database

    # 1. Kafka does not confirm the dead letter (its producer reaches no broker): the route
    #    must not commit the batch past the undecodable record meanwhile. Then it is stopped
    #    (as a crash or a restart would).
    broken = config(kafka.bootstrap, url, [route], bridge=topic)
    broken.kafka = broken.kafka.model_copy(
        update={
            "producer": {
                "bootstrap.servers": f"127.0.0.1:{free_port()}",
                "message.timeout.ms": 1000,
            }
        }
    )
    caplog.set_level(logging.WARNING, logger="cdc_bridge.routes")
    running = run_routes(broken)
    try:
        wait_for(
            lambda: "cannot write dead letters" in caplog.text, 60, "a failed dead-letter send"
        )
    finally:
        running.close()
    assert dead_letters(kafka.bootstrap, topic, "items") == []
    assert target_rows(url, "items") == {}

    # 2. Restarted with a working dead-letter producer: the letter is written, the rows applied.
    running = run_routes(config(kafka.bootstrap, url, [route], bridge=topic))
    try:
        wait_for(
            lambda: len(target_rows(url, "items")) == 2 and running.workers[0].dead == 1,
            30,
            "both rows applied and the dead letter written",
        )
    finally:
        running.close()
    time.sleep(0.2)
    assert_target(url, "items", {1: {"id": 1, "qty": "10"}, 2: {"id": 2, "qty": "20"}})
    assert_dead_letters(kafka.bootstrap, topic, "items", topic, [1])
