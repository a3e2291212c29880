"""Helpers for the MongoDB integration tests: a source running in a thread and a topic reader
(crash tests run the shared ``cdc_bridge.testing.sources`` process runner)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bson import json_util
from bson.json_util import JSONMode, JSONOptions
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer, TopicSettings
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.source import MongoSource
from tests.connect_schema import decode_json_record

LEGACY = JSONOptions(json_mode=JSONMode.LEGACY)


class RunningSource:
    """A MongoSource running in a thread against a real broker, stopped like the runtime does."""

    def __init__(self, config: MongoSourceConfig, bootstrap: str, store: Any) -> None:
        self.producer = EventProducer(
            bootstrap, {"linger.ms": 5}, topics=TopicSettings(partitions=1)
        )
        self.ctx = SourceContext(config.name, self.producer, EnvelopeEncoder(), store)
        self.source = MongoSource(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"source-{config.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.source.run(self.ctx)
        except BaseException as exc:
            self.error = exc

    def stop(self, timeout: float = 30) -> None:
        self.ctx.stopping.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "source did not stop"
        self.producer.flush(timeout)
        self.ctx.checkpoint()
        self.source.close()
        self.producer.close(timeout)

    def wait_finished(self, timeout: float) -> None:
        self.thread.join(timeout)


class TopicReader:
    """Reads one single-partition topic from the beginning, accumulating (key, value) payloads."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[tuple[Any, Any]] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"check-{topic}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def poll(self, seconds: float = 0.5) -> None:
        for msg in self.consumer.consume(1000, timeout=seconds):
            if msg.error() is None:
                self.records.append(
                    (decode_json_record(msg.key()), decode_json_record(msg.value()))
                )

    def until(
        self, predicate: Callable[[list[tuple[Any, Any]]], bool], timeout: float = 60
    ) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self.records):
                return True
        return predicate(self.records)

    def close(self) -> None:
        self.consumer.close()


def doc_id(key: Any) -> Any:
    """The document _id from a record key ``{"id": "<relaxed Extended JSON>"}``."""
    return json_util.loads(key["id"])


def events(records: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Non-tombstone values."""
    return [v for _, v in records if v is not None]


def ids_with(records: list[tuple[Any, Any]], ops: str = "cr") -> set[Any]:
    return {doc_id(k) for k, v in records if v is not None and v["op"] in ops}


def replay(records: list[tuple[Any, Any]]) -> dict[Any, dict[str, Any]]:
    """Apply the events in topic order: the collection state a consumer would rebuild."""
    state: dict[Any, dict[str, Any]] = {}
    for key, value in records:
        if value is None:
            continue
        i = doc_id(key)
        if value["op"] == "d":
            state.pop(i, None)
        elif value["after"] is not None:
            state[i] = json_util.loads(value["after"], json_options=LEGACY)
    return state
