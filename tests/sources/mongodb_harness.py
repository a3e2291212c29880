"""Helpers for the MongoDB integration tests: a topic reader and event helpers (sources run on
the shared ``cdc_bridge.testing.sources`` harness: ``SourceThread``, ``SourceProcess``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bson import json_util
from bson.json_util import JSONMode, JSONOptions
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.connect_schema import decode_json_record

LEGACY = JSONOptions(json_mode=JSONMode.LEGACY)


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
