"""A sink that writes a route's filtered, mapped rows to a Kafka topic (derived streams).

Use it to publish a narrow, consumer-friendly stream next to the raw change topics, e.g.
"high-value orders" for a notification service. Each record is keyed by the route's key
(JSON object) and carries either the mapped row (``format = "row"``: the ``after`` row as a JSON
object, a tombstone on delete, so the topic can be log-compacted and read as a table) or a small
change document (``format = "change"``: ``{"op", "key", "before", "after", "source", "ts_ms"}``).
A batch is confirmed by the broker before the route commits its offsets (at-least-once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson
from confluent_kafka import KafkaError, Producer
from pydantic import Field, model_validator

from cdc_bridge.config import RouteConfigBase, SinkConfigBase
from cdc_bridge.errors import RecordError, RetriableError
from cdc_bridge.kafka import TopicAdmin, TopicSettings
from cdc_bridge.sinks.base import BatchResult, Sink, SinkContext, SinkRecord, TopicPartition

__all__ = ["KafkaTopicRouteConfig", "KafkaTopicSink", "KafkaTopicSinkConfig"]

log = logging.getLogger(__name__)

_TEMPLATE_KEYS = {"source": "s", "schema": "s", "database": "d", "table": "t", "topic": "x"}


class KafkaTopicSinkConfig(SinkConfigBase):
    """A Kafka cluster that derived topics are written to (often the bridge's own)."""

    kind: Literal["kafka"] = Field("kafka", description="Sink kind.", examples=["kafka"])
    bootstrap_servers: str = Field(
        description="Kafka bootstrap servers of the target cluster, comma-separated host:port.",
        examples=["localhost:9092"],
    )
    producer: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka producer properties passed through (TLS, SASL, tuning).",
        examples=[{"compression.type": "zstd"}],
    )
    topic_partitions: int = Field(
        3, ge=1, description="Partitions of target topics this sink creates.", examples=[3]
    )
    topic_config: dict[str, str] = Field(
        default_factory=dict,
        description="Topic configs of created target topics (the row format is compactable: cleanup.policy = compact).",
        examples=[{"cleanup.policy": "compact"}],
    )
    timeout_s: float = Field(
        30.0, gt=0, description="How long a batch may wait for the broker.", examples=[30]
    )


class KafkaTopicRouteConfig(RouteConfigBase):
    """Route keys for ``kind = "kafka"`` sinks."""

    topic: str = Field(
        description="Target topic name template with {source}, {schema}, {database}, {table}, {topic}.",
        examples=["notifications.high-value-orders", "derived.{table}"],
    )
    format: Literal["row", "change"] = Field(
        "row",
        description="row: the mapped row as the value, a tombstone on delete; change: a JSON document with op, key, before, after, source and ts_ms.",
        examples=["row"],
    )

    @model_validator(mode="after")
    def _check_template(self) -> KafkaTopicRouteConfig:
        try:
            self.topic.format(**_TEMPLATE_KEYS)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"topic: bad template {self.topic!r} ({exc}); use {{source}}, {{schema}}, "
                "{database}, {table} or {topic}"
            ) from None
        return self


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode()
    return str(value)


class KafkaTopicSink(Sink):
    """Produces each record of a batch to its topic and waits for the broker's confirmation."""

    def __init__(
        self, config: SinkConfigBase, route: RouteConfigBase, context: SinkContext
    ) -> None:
        super().__init__(config, route, context)
        assert isinstance(config, KafkaTopicSinkConfig)
        self.cfg = config
        self.route_cfg = route if isinstance(route, KafkaTopicRouteConfig) else None
        self._producer: Producer | None = None
        self._admin: TopicAdmin | None = None
        self._fixed_topic: str | None = None
        self.produced = 0

    def _client_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"bootstrap.servers": self.cfg.bootstrap_servers}
        conf.update(self.cfg.producer)
        return conf

    def open(self) -> None:
        if self.route_cfg is None:
            return  # built for `check --connect` without a route
        conf = self._client_config()
        conf.setdefault("enable.idempotence", True)
        conf.setdefault("linger.ms", 5)
        self._producer = Producer(conf)
        admin_conf = {k: v for k, v in conf.items() if not _producer_only(k)}
        self._admin = TopicAdmin(
            admin_conf,
            TopicSettings(partitions=self.cfg.topic_partitions, config=dict(self.cfg.topic_config)),
        )
        template = self.route_cfg.topic
        if "{" not in template:
            self._fixed_topic = template
            self._ensure([template])

    def _ensure(self, topics: Sequence[str]) -> None:
        assert self._admin is not None
        try:
            self._admin.ensure(topics)
        except Exception as exc:
            raise RetriableError(f"cannot create topic(s) {', '.join(topics)}: {exc}") from exc

    def _topic(self, rec: SinkRecord) -> str:
        if self._fixed_topic is not None:
            return self._fixed_topic
        assert self.route_cfg is not None
        src = rec.source or {}
        return self.route_cfg.topic.format(
            source=src.get("name", ""),
            schema=src.get("schema", src.get("db", "")),
            database=src.get("db", ""),
            table=src.get("table", src.get("collection", "")),
            topic=rec.topic,
        )

    def _value(self, rec: SinkRecord) -> bytes | None:
        assert self.route_cfg is not None
        if self.route_cfg.format == "row":
            if rec.op == "d" or rec.after is None:
                return None
            return orjson.dumps(rec.after, default=_default)
        doc = {
            "op": rec.op,
            "key": rec.key,
            "before": rec.before,
            "after": rec.after,
            "source": rec.source,
            "ts_ms": rec.timestamp,
        }
        return orjson.dumps(doc, default=_default)

    def apply(
        self,
        batch: Sequence[SinkRecord],
        positions: Mapping[TopicPartition, int] | None = None,
        *,
        previous: Mapping[TopicPartition, int | None] | None = None,
    ) -> BatchResult:
        producer = self._producer
        if producer is None:
            raise RetriableError("the Kafka sink is not open")
        result = BatchResult()
        errors: dict[int, KafkaError] = {}
        lock = threading.Lock()
        if self._fixed_topic is None:
            self._ensure(sorted({self._topic(r) for r in batch}))

        def report(index: int) -> Any:
            def on_delivery(err: KafkaError | None, _msg: Any) -> None:
                if err is not None:
                    with lock:
                        errors[index] = err

            return on_delivery

        for i, rec in enumerate(batch):
            if rec.op == "t":
                continue
            try:
                key = orjson.dumps(rec.key, default=_default) if rec.key is not None else None
                value = self._value(rec)
                topic = self._topic(rec)
            except (TypeError, KeyError, ValueError) as exc:
                result.failed[i] = RecordError(
                    f"cannot encode the record for Kafka: {exc}", code="encode"
                )
                continue
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=report(i))
                    break
                except BufferError:
                    producer.poll(0.1)
        left = producer.flush(self.cfg.timeout_s)
        if left:
            raise RetriableError(
                f"{left} record(s) not confirmed by Kafka at {self.cfg.bootstrap_servers} "
                f"within {self.cfg.timeout_s:g}s"
            )
        for i, err in errors.items():
            if err.retriable() or err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
                raise RetriableError(f"Kafka refused a record for now: {err.str()}")
            result.failed[i] = RecordError(f"Kafka refused the record: {err.str()}", code="kafka")
        self.produced += len(batch) - len(result.failed)
        return result

    def check(self) -> list[str]:
        from confluent_kafka.admin import AdminClient

        conf = {k: v for k, v in self._client_config().items() if not _producer_only(k)}
        try:
            AdminClient(conf).list_topics(timeout=10)
        except Exception as exc:
            return [f"Kafka at {self.cfg.bootstrap_servers} does not answer: {exc}"]
        return []

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.cfg.timeout_s)
            self._producer = None


_PRODUCER_ONLY = (
    "enable.idempotence",
    "linger.ms",
    "acks",
    "compression",
    "batch.",
    "queue.buffering",
    "message.",
    "retries",
    "delivery.",
)


def _producer_only(key: str) -> bool:
    return key.startswith(_PRODUCER_ONLY)
