"""Dead letters: records a route cannot apply, kept on `<bridge>.dlq.<route>` with the reason.

Each dead letter is the original key and value bytes with headers ``error``, ``code``,
``topic``, ``partition``, ``offset``, ``timestamp`` and ``route``. The writer waits for the
broker's confirmation before the route commits past the record, so a dead letter is never
lost. :func:`read_dead_letters` lists them (``cdc-bridge dlq list``); the route engine's
:func:`cdc_bridge.routes.replay_dead_letters` re-applies them (``cdc-bridge dlq replay``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from cdc_bridge.errors import FatalError, RetriableError
from cdc_bridge.kafka import DEFAULT_PRODUCER_CONFIG, TopicAdmin, TopicSettings, with_logger

__all__ = ["DeadLetter", "DeadLetterWriter", "dlq_topic", "read_dead_letters"]

log = logging.getLogger(__name__)

# Headroom above the largest record for the dead letter's headers (reason, origin).
_HEADER_ROOM = 1_048_576


def dlq_topic(bridge: str, route: str) -> str:
    """``<bridge name>.dlq.<route name>``."""
    return f"{bridge}.dlq.{route}"


@dataclass(slots=True)
class DeadLetter:
    """One dead letter: where the record came from, why it failed, its original bytes."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    error: str
    code: str
    route: str = ""
    # Where the dead letter itself sits (filled when read back).
    dlq_partition: int = -1
    dlq_offset: int = -1

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return [
            ("error", self.error.encode()),
            ("code", self.code.encode()),
            ("topic", self.topic.encode()),
            ("partition", str(self.partition).encode()),
            ("offset", str(self.offset).encode()),
            ("timestamp", str(self.timestamp).encode()),
            ("route", self.route.encode()),
        ]


class DeadLetterWriter:
    """Produces dead letters of one route and waits until Kafka has them."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        producer_config: Mapping[str, Any] | None = None,
        topic_settings: TopicSettings | None = None,
    ) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
        conf.update(producer_config or {})
        # Any record a route can read must be dead-letterable: allow what the sources'
        # producer allows (16 MB unless [kafka.producer] says more), plus room for headers.
        limit = max(
            int(conf.get("message.max.bytes", 0)), int(DEFAULT_PRODUCER_CONFIG["message.max.bytes"])
        )
        conf["message.max.bytes"] = limit + _HEADER_ROOM
        self.topic = topic
        self._producer = Producer(with_logger(conf, "cdc_bridge.kafka.dlq"))
        settings = topic_settings or TopicSettings()
        # ...and the broker must take such a record on the dead-letter topic too.
        settings.config.setdefault("max.message.bytes", str(limit + _HEADER_ROOM))
        self._admin = TopicAdmin({"bootstrap.servers": bootstrap_servers}, settings)
        self.count = 0

    def send(self, letters: Sequence[DeadLetter], timeout: float = 60.0) -> None:
        """Produce ``letters`` and wait for every confirmation (RetriableError if not)."""
        if not letters:
            return
        self._admin.ensure([self.topic])
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for letter in letters:
            log.warning(
                "dead letter: %s[%d]@%d -> %s: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                self.topic,
                letter.error,
            )
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        letter.value,
                        letter.key,
                        headers=letter.headers(),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
                except KafkaException as exc:
                    raise FatalError(f"cannot produce to {self.topic!r}: {exc}") from exc
        left = self._producer.flush(timeout)
        if left or errors:
            reason = errors[0].str() if errors else f"{left} not confirmed in {timeout}s"
            raise RetriableError(f"dead-letter topic {self.topic!r} did not take records: {reason}")
        self.count += len(letters)

    def close(self) -> None:
        self._producer.flush(10)


def _header(headers: Any, name: str) -> str:
    for k, v in headers or ():
        if k == name:
            return v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")
    return ""


def read_dead_letters(
    bootstrap_servers: str,
    topic: str,
    *,
    consumer_config: Mapping[str, Any] | None = None,
    start: Mapping[int, int] | None = None,
    timeout: float = 10.0,
) -> Iterator[DeadLetter]:
    """Every dead letter on ``topic`` from ``start`` (partition -> offset) to the current end."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": "cdc-bridge-dlq-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    conf.update(consumer_config or {})
    consumer = Consumer(with_logger(conf, "cdc_bridge.kafka.dlq"))
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        tmeta = md.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            return
        ends: dict[int, int] = {}
        assign = []
        for p in tmeta.partitions:
            _low, high = consumer.get_watermark_offsets(
                KafkaTopicPartition(topic, p), timeout=timeout
            )
            first = (start or {}).get(p, OFFSET_BEGINNING)
            # Read to end-of-partition events, not to the watermark (some brokers report
            # the watermark of the last batch, not of the last record).
            if high > 0:
                ends[p] = high
                assign.append(KafkaTopicPartition(topic, p, first))
        if not assign:
            return
        consumer.assign(assign)
        while ends:
            msg: Any = consumer.poll(timeout)
            if msg is None:
                raise RetriableError(f"timed out reading dead-letter topic {topic!r}")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    ends.pop(msg.partition(), None)
                    continue
                raise RetriableError(f"cannot read {topic!r}: {msg.error().str()}")
            h = msg.headers()
            yield DeadLetter(
                topic=_header(h, "topic"),
                partition=int(_header(h, "partition") or -1),
                offset=int(_header(h, "offset") or -1),
                timestamp=int(_header(h, "timestamp") or 0),
                key=msg.key(),
                value=msg.value(),
                error=_header(h, "error"),
                code=_header(h, "code"),
                route=_header(h, "route"),
                dlq_partition=msg.partition(),
                dlq_offset=msg.offset(),
            )
    finally:
        consumer.close()
