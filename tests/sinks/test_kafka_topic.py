"""The `kafka` sink kind: derived topics with mapped rows (tombstones on delete) or change docs."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from cdc_bridge.sinks.base import SinkContext, SinkRecord
from cdc_bridge.sinks.kafka_topic import (
    KafkaTopicRouteConfig,
    KafkaTopicSink,
    KafkaTopicSinkConfig,
)
from cdc_bridge.testing.services import KafkaService


def _rec(op: str, key: int, after: dict[str, Any] | None, offset: int) -> SinkRecord:
    return SinkRecord(
        topic="shop.public.orders",
        partition=0,
        offset=offset,
        timestamp=1_700_000_000_000,
        op=op,
        key={"id": key},
        before=None,
        after=after,
        source={"name": "shop", "schema": "public", "table": "orders", "db": "shop"},
    )


def _read_all(bootstrap: str, topic: str) -> list[tuple[Any, Any]]:
    """Every record of ``topic``, read to the end of each partition (not to the watermark:
    the embedded broker reports the last batch's base offset + 1 as the high watermark)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "t-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        out: list[tuple[Any, Any]] = []
        for p in sorted(md.topics[topic].partitions):
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            while True:
                msg = consumer.poll(5)
                assert msg is not None, f"timed out reading {topic}[{p}]"
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    break
                assert err is None, err
                value = msg.value()
                out.append(
                    (orjson.loads(msg.key()), orjson.loads(value) if value is not None else None)
                )
        return out
    finally:
        consumer.close()


def _sink(kafka: KafkaService, **route: Any) -> KafkaTopicSink:
    cfg = KafkaTopicSinkConfig(name="notify", kind="kafka", bootstrap_servers=kafka.bootstrap)
    data = {"from": "shop.public.orders", "to": "notify", **route}
    sink = KafkaTopicSink(
        cfg, KafkaTopicRouteConfig.model_validate(data), SinkContext("t", "r", "t.r")
    )
    sink.open()
    return sink


def test_row_format_writes_rows_and_tombstones(kafka: KafkaService) -> None:
    topic = "derived." + uuid.uuid4().hex[:8]
    sink = _sink(kafka, topic=topic)
    try:
        batch = [
            _rec("c", 1, {"id": 1, "total": 1200.5}, 0),
            _rec("u", 1, {"id": 1, "total": 1300.0}, 1),
            _rec("c", 2, {"id": 2, "total": 2000.0}, 2),
            _rec("d", 2, None, 3),
        ]
        assert sink.apply(batch).ok
    finally:
        sink.close()
    rows = _read_all(kafka.bootstrap, topic)
    assert sorted(rows, key=lambda kv: (kv[0]["id"], kv[1] is None)) == [
        ({"id": 1}, {"id": 1, "total": 1200.5}),
        ({"id": 1}, {"id": 1, "total": 1300.0}),
        ({"id": 2}, {"id": 2, "total": 2000.0}),
        ({"id": 2}, None),
    ]
    # Per key order is kept: the last record of each key is its current state.
    last = {k["id"]: v for k, v in rows}
    assert last == {1: {"id": 1, "total": 1300.0}, 2: None}


def test_change_format_and_topic_template(kafka: KafkaService) -> None:
    suffix = uuid.uuid4().hex[:8]
    sink = _sink(kafka, topic="changes-" + suffix + ".{table}", format="change")
    try:
        assert sink.apply([_rec("c", 7, {"id": 7}, 0), _rec("d", 7, None, 1)]).ok
    finally:
        sink.close()
    rows = _read_all(kafka.bootstrap, f"changes-{suffix}.orders")
    assert [(k, v["op"], v["after"]) for k, v in rows] == [
        ({"id": 7}, "c", {"id": 7}),
        ({"id": 7}, "d", None),
    ]
    assert rows[0][1]["source"]["table"] == "orders"


def test_bad_topic_template_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="bad template"):
        KafkaTopicRouteConfig.model_validate({"from": "a", "to": "b", "topic": "x.{nope}"})
