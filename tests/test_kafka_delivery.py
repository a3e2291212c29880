"""Delivery tracking against a real broker: 10,000 events over several partitions, with an
outage (broker SIGSTOPped) in the middle. The safe offset holds while the broker is away and
reaches the end afterwards; every record is on the topic exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from cdc_bridge.kafka import EventProducer, TopicSettings
from cdc_bridge.testing.services import KafkaService

PARTITIONS = 4
TOTAL = 10_000
WINDOW = 50  # records per send(), each with its own offset (like a small transaction)


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=0.5):
            if msg.error() is None:
                values.append(msg.value())
    consumer.close()
    return values


def test_safe_offset_holds_during_outage_and_catches_up(
    kafka: KafkaService, topic_name: Callable[..., str]
) -> None:
    topic = topic_name("delivery")
    producer = EventProducer(
        kafka.bootstrap,
        {"linger.ms": 5},
        topics=TopicSettings(partitions=PARTITIONS),
    )
    try:
        producer.admin.ensure([topic])

        def send_range(start: int, stop: int) -> None:
            for first in range(start, stop, WINDOW):
                records = [
                    (topic, str(i).encode(), str(i).encode()) for i in range(first, first + WINDOW)
                ]
                producer.send(records, first + WINDOW)  # offset = count of records sent so far

        # Phase 1: half the events with the broker up; the safe offset reaches the half.
        half = TOTAL // 2
        send_range(0, half)
        assert wait_for(lambda: producer.safe_offset() == half, 30)

        # Phase 2: broker paused; the rest is sent but nothing can be confirmed.
        kafka.pause()
        try:
            send_range(half, TOTAL)
            observed = set()
            for _ in range(20):  # 2 s of observation while the broker is away
                observed.add(producer.safe_offset())
                time.sleep(0.1)
            assert observed == {half}, f"safe offset moved while the broker was paused: {observed}"
            assert producer.in_flight() == TOTAL - half
        finally:
            kafka.resume()

        # Phase 3: broker back; everything is delivered and the safe offset reaches the end.
        assert wait_for(lambda: producer.safe_offset() == TOTAL, 120), producer.safe_offset()
        assert producer.in_flight() == 0
    finally:
        producer.close()

    values = read_all(kafka.bootstrap, topic, TOTAL)
    counts = Counter(values)
    assert len(counts) == TOTAL, f"missing {TOTAL - len(counts)} records"
    assert max(counts.values()) == 1, "idempotent producer wrote duplicates"


def test_safe_offset_tracks_interleaved_partitions(
    kafka: KafkaService, topic_name: Callable[..., str]
) -> None:
    """Windows spanning several partitions: each window's offset is reported only when all of
    its records landed; offsets come back in send order."""
    topic = topic_name("windows")
    producer = EventProducer(kafka.bootstrap, topics=TopicSettings(partitions=PARTITIONS))
    seen: list[int] = []
    try:
        producer.admin.ensure([topic])
        for w in range(1, 101):
            producer.send([(topic, f"{w}-{i}".encode(), b"x") for i in range(w % 7 + 1)], w)
            current = producer.safe_offset()
            if current is not None and (not seen or seen[-1] != current):
                seen.append(current)
        assert wait_for(lambda: producer.safe_offset() == 100, 30)
        seen.append(producer.safe_offset())
    finally:
        producer.close()
    assert seen == sorted(seen), "safe offset went backwards"
    assert seen[-1] == 100


def test_poll_thread_waits_while_the_sender_serves_reports(kafka: KafkaService) -> None:
    """While the sending thread holds the report lock (a long run of delivery callbacks), the
    background poller must wait, not spin: spinning took the GIL from the sender and cost 2-5x
    the CPU per row in the capture benchmark."""
    producer = EventProducer(kafka.bootstrap)
    attempts = 0
    serve = producer._serve

    def counting_serve(timeout: float) -> bool:
        nonlocal attempts
        attempts += 1
        return serve(timeout)

    producer._serve = counting_serve  # type: ignore[method-assign]
    try:
        with producer._poll_lock:  # what send() holds while it serves reports
            producer._last_send = 0.0  # the poller's turn
            time.sleep(0.5)
        # a sleeping poller tries about 100 times in 0.5 s; a spinning one, tens of thousands
        assert 0 < attempts < 500, attempts
    finally:
        producer.close(5)
