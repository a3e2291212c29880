"""Kafka plumbing: a producer that knows which source position is safe to acknowledge,
topic administration, and a consumer factory for sinks.

Delivery tracking: a source hands :meth:`EventProducer.send` a batch of records together with
the source position (offset) that becomes safe once *every* record of the batch -- and of every
earlier batch -- was confirmed by the broker. Batches are "windows" in a FIFO; each window
counts its outstanding records and all records of a window share one delivery callback (no
per-record allocation). :meth:`EventProducer.safe_offset` pops completed windows from the
front, so the safe offset never passes an undelivered record, whatever order delivery
reports arrive in across partitions.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from cdc_bridge import metrics
from cdc_bridge.envelope import Record
from cdc_bridge.errors import ConfigError, FatalError, RetriableError

__all__ = [
    "DEFAULT_PRODUCER_CONFIG",
    "DeliveryTracker",
    "EventProducer",
    "LibrdkafkaLog",
    "TopicAdmin",
    "TopicSettings",
    "make_consumer",
    "probe_cluster",
    "topic_ids",
    "with_logger",
]

log = logging.getLogger(__name__)

# Durable, ordered, fast. Idempotence gives per-partition order and no duplicates from
# librdkafka's own retries; message.timeout.ms=0 retries forever, so an outage holds the safe
# position instead of failing records. murmur2 partitions keys like the Java clients do, so
# Debezium and Kafka Connect consumers see the same key -> partition mapping.
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 10,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "message.timeout.ms": 0,
    "partitioner": "murmur2_random",
    "message.max.bytes": 16_777_216,
}


class _Window:
    """Records sent together; ``offset`` is safe once ``remaining`` reaches zero."""

    __slots__ = ("client", "error", "offset", "remaining")

    def __init__(self, offset: Any, count: int, client: str = "cdc-bridge") -> None:
        self.offset = offset
        self.remaining = count
        self.error: KafkaError | None = None
        self.client = client

    def on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.error = err
            metrics.kafka_delivery_errors.labels(client=self.client).inc()
        else:
            self.remaining -= 1


class DeliveryTracker:
    """FIFO of windows; the safe offset is the last offset of the completed prefix.

    Delivery callbacks only decrement their window's counter (they run on the poller
    thread); :meth:`safe_offset` pops completed windows from the front under a lock.
    """

    def __init__(self, client: str = "cdc-bridge") -> None:
        self.client = client
        self._windows: collections.deque[_Window] = collections.deque()
        self._lock = threading.Lock()
        self._safe: Any = None

    def open_window(self, offset: Any, count: int) -> _Window:
        window = _Window(offset, count, self.client)
        with self._lock:
            self._windows.append(window)
        return window

    def safe_offset(self) -> Any:
        with self._lock:
            windows = self._windows
            while windows:
                front = windows[0]
                if front.error is not None:
                    raise FatalError(
                        f"Kafka did not accept a record: {front.error.str()}; "
                        "nothing after the last confirmed position is acknowledged"
                    )
                if front.remaining > 0:
                    break
                windows.popleft()
                if front.offset is not None:
                    self._safe = front.offset
            return self._safe

    def pending_windows(self) -> int:
        with self._lock:
            return len(self._windows)

    def in_flight(self) -> int:
        with self._lock:
            return sum(w.remaining for w in self._windows)


class LibrdkafkaLog:
    """Target of librdkafka's log callback: its syslog levels mapped onto Python logging, so
    its lines share the bridge's format (``--log-format json``) and component tags."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if level <= 2:
            py = logging.ERROR
        elif level <= 4:
            py = logging.WARNING
        elif level == 5:
            py = logging.INFO
        else:
            py = logging.DEBUG
        self._log.log(py, msg, *args)


def with_logger(conf: dict[str, Any], name: str = "cdc_bridge.kafka.client") -> dict[str, Any]:
    """``conf`` with librdkafka's log lines routed through Python logging (unless set)."""
    conf.setdefault("logger", LibrdkafkaLog(name))
    return conf


class TopicSettings:
    """How auto-created topics look: partitions, replication factor, topic configs."""

    __slots__ = ("config", "partitions", "replication_factor")

    def __init__(
        self,
        partitions: int = 1,
        replication_factor: int = -1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.config = dict(config or {})


class TopicAdmin:
    """Creates topics on first use and remembers which ones exist."""

    def __init__(
        self, client_config: Mapping[str, Any], settings: TopicSettings | None = None
    ) -> None:
        self._admin = AdminClient(with_logger(dict(client_config), "cdc_bridge.kafka.admin"))
        self.settings = settings or TopicSettings()
        self._known: set[str] = set()
        self._ids: dict[str, str] = {}  # topic -> id when first seen (see lost())
        self._lock = threading.Lock()

    def list_topics(self, timeout: float = 10.0) -> dict[str, int]:
        """Topic name -> partition count."""
        try:
            md = self._admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise RetriableError(f"cannot reach Kafka to list topics: {exc}") from exc
        return {name: len(t.partitions) for name, t in md.topics.items() if not t.error}

    def ensure(self, topics: Iterable[str], settings: TopicSettings | None = None) -> None:
        """Create the topics that do not exist yet (idempotent, safe across processes)."""
        settings = settings or self.settings
        with self._lock:
            wanted = [t for t in set(topics) if t not in self._known]
            if not wanted:
                return
            existing = self.list_topics()
            missing = [t for t in wanted if t not in existing]
            if missing:
                futures = self._admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                            config=settings.config,
                        )
                        for t in missing
                    ],
                    operation_timeout=30,
                )
                for name, fut in futures.items():
                    try:
                        fut.result()
                        log.info("created topic %s (%d partitions)", name, settings.partitions)
                    except KafkaException as exc:
                        err = exc.args[0] if exc.args else None
                        if (
                            isinstance(err, KafkaError)
                            and err.code() == KafkaError.TOPIC_ALREADY_EXISTS
                        ):
                            continue
                        raise FatalError(f"cannot create topic {name!r}: {exc}") from exc
            self._known.update(wanted)
        self._remember_ids(wanted)

    def topic_ids(self, topics: Iterable[str], timeout: float = 5.0) -> dict[str, str | None]:
        """Topic -> its id (a topic re-created under the same name gets a new one); None for
        a topic the cluster does not have. Brokers without topic ids give no entry. Raises
        RetriableError when Kafka does not answer."""
        from confluent_kafka import TopicCollection

        names = sorted(set(topics))
        if not names:
            return {}
        try:
            futures = self._admin.describe_topics(TopicCollection(names), request_timeout=timeout)
        except (KafkaException, TypeError, ValueError) as exc:
            raise RetriableError(f"cannot describe topics on Kafka: {exc}") from exc
        out: dict[str, str | None] = {}
        for name, fut in futures.items():
            try:
                desc = fut.result()
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    out[name] = None
                    continue
                raise RetriableError(f"cannot describe topic {name!r}: {exc}") from exc
            topic_id = str(getattr(desc, "topic_id", "") or "")
            if topic_id and topic_id.strip("A=") != "":  # all-zero uuid: no ids on this broker
                out[name] = topic_id
        return out

    def _remember_ids(self, topics: Iterable[str]) -> None:
        try:
            ids = self.topic_ids(topics)
        except RetriableError as exc:
            log.debug("topic ids not recorded: %s", exc)
            return
        with self._lock:
            self._ids.update({t: i for t, i in ids.items() if i is not None})

    def lost(self, timeout: float = 5.0) -> list[str]:
        """Topics this admin created or saw that the cluster no longer has: deleted, or
        re-created under the same name (a new topic id: e.g. the cluster came back empty and
        a producer's request auto-created it). Raises RetriableError when Kafka does not
        answer."""
        existing = self.list_topics(timeout)
        with self._lock:
            known = set(self._known)
            ids = dict(self._ids)
        gone = {t for t in known if t not in existing}
        with_ids = sorted(t for t in known - gone if t in ids)
        if with_ids:
            now = self.topic_ids(with_ids, timeout)
            gone.update(t for t in with_ids if t in now and now[t] != ids[t])
        return sorted(gone)

    def recreate(self, topics: Iterable[str]) -> None:
        """Create ``topics`` again (after :meth:`lost` found them gone)."""
        topics = list(topics)
        with self._lock:
            self._known.difference_update(topics)
            for t in topics:
                self._ids.pop(t, None)
        self.ensure(topics)

    def delete(self, topics: Sequence[str]) -> None:
        futures = self._admin.delete_topics(list(topics), operation_timeout=30)
        for fut in futures.values():
            try:
                fut.result()
            except KafkaException:
                pass
        with self._lock:
            self._known.difference_update(topics)


def probe_cluster(
    bootstrap_servers: str, client_config: Mapping[str, Any] | None = None, timeout: float = 5.0
) -> int:
    """Ask the cluster for its metadata; the number of brokers. Raises RetriableError naming
    the address and ``[kafka] bootstrap_servers`` when it does not answer in ``timeout``."""
    quiet = logging.getLogger("cdc_bridge.kafka.probe")
    conf: dict[str, Any] = {**(client_config or {}), "bootstrap.servers": bootstrap_servers}
    conf["logger"] = quiet  # refused connections are the probe's answer, not log noise
    try:
        admin = AdminClient(conf)
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        text = err.str() if isinstance(err, KafkaError) else str(err)
        raise RetriableError(
            f"cannot reach Kafka at {bootstrap_servers} ([kafka] bootstrap_servers) within "
            f"{timeout:g}s: {text}; check the address and that the brokers run and accept "
            "connections from here (`cdc-bridge check --connect` tests it)"
        ) from None
    return len(md.brokers)


class EventProducer:
    """A confluent-kafka producer with delivery tracking and topic auto-creation.

    Thread model: any thread may call :meth:`send`; a background thread polls delivery
    reports. :meth:`safe_offset` may be called from any thread.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        config: Mapping[str, Any] | None = None,
        *,
        client_id: str = "cdc-bridge",
        topics: TopicSettings | None = None,
        admin_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.client_id = client_id
        conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id}
        conf.update(DEFAULT_PRODUCER_CONFIG)
        conf.update(config or {})
        with_logger(conf, "cdc_bridge.kafka.producer")
        self._fatal: KafkaError | None = None
        conf["error_cb"] = self._on_error
        try:
            self._producer = Producer(conf)
        except KafkaException as exc:
            raise ConfigError(f"invalid Kafka producer configuration: {exc}") from exc
        admin_conf = {"bootstrap.servers": bootstrap_servers}
        admin_conf.update(admin_config or {})
        self.admin = TopicAdmin(admin_conf, topics)
        self.tracker = DeliveryTracker(client_id)
        metrics.sample(metrics.kafka_producer_queue, self.__len__, client=client_id)
        self._poll_lock = threading.Lock()
        self._last_send = 0.0
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name=f"{client_id}-poll", daemon=True
        )
        self._poller.start()
        self.sent = 0

    # -- delivery --------------------------------------------------------------------------

    def _on_error(self, err: KafkaError) -> None:
        metrics.kafka_client_errors.labels(
            client=self.client_id, fatal=str(err.fatal()).lower()
        ).inc()
        if err.fatal():
            self._fatal = err
            log.error("fatal Kafka producer error: %s", err)
        else:
            log.debug("Kafka producer: %s", err)

    def _serve(self, timeout: float) -> bool:
        """Serve delivery reports unless another thread is already doing it (then False)."""
        if self._poll_lock.acquire(blocking=False):
            try:
                self._producer.poll(timeout)
            finally:
                self._poll_lock.release()
            return True
        return False

    def _poll_loop(self) -> None:
        # A busy sender serves reports itself (no GIL ping-pong between threads); this thread
        # takes over when sends pause, so an idle source's offsets still advance.
        while not self._closed.is_set():
            if time.monotonic() - self._last_send > 0.02:
                if not self._serve(0.05):
                    # the sender is serving a long run of reports: without this sleep the
                    # loop spins and takes the GIL from it (seen as 2-5x the CPU per row)
                    time.sleep(0.005)
            else:
                time.sleep(0.02)

    def send(self, records: Sequence[Record], offset: Any = None) -> None:
        """Produce ``records``; ``offset`` becomes safe when they and all before are delivered.

        ``offset=None`` marks an intermediate chunk (e.g. part of a large transaction): its
        delivery does not move the safe offset by itself. Blocks while librdkafka's queue is
        full (backpressure). Raises :class:`FatalError` once the producer failed.
        """
        if self._fatal is not None:
            raise FatalError(f"Kafka producer failed: {self._fatal.str()}")
        window = self.tracker.open_window(offset, len(records))
        if not records:
            return
        topics = {r[0] for r in records} - self.admin._known
        if topics:
            self.admin.ensure(topics)
        produce = self._producer.produce
        cb = window.on_delivery
        for topic, key, value in records:
            while True:
                try:
                    produce(topic, value, key, on_delivery=cb)
                    break
                except BufferError:
                    if self._fatal is not None:
                        raise FatalError(f"Kafka producer failed: {self._fatal.str()}") from None
                    if not self._serve(0.005):
                        time.sleep(0.001)
                except KafkaException as exc:
                    raise FatalError(f"cannot produce to {topic!r}: {exc}") from exc
        self.sent += len(records)
        self._last_send = time.monotonic()
        self._serve(0)

    def safe_offset(self) -> Any:
        """The highest offset such that every record sent up to it was confirmed."""
        offset = self.tracker.safe_offset()
        if self._fatal is not None and self.tracker.pending_windows():
            raise FatalError(f"Kafka producer failed: {self._fatal.str()}")
        return offset

    def in_flight(self) -> int:
        """Records sent but not yet confirmed (for metrics and backpressure)."""
        return self.tracker.in_flight()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record is confirmed; False if some are still in flight."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            if remaining == 0 or time.monotonic() >= deadline:
                return remaining == 0

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, stop the poller; True if everything was delivered."""
        ok = self.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=2)
        return ok

    def __len__(self) -> int:
        return len(self._producer)


def make_consumer(
    bootstrap_servers: str,
    group_id: str,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """A consumer for sinks: manual commits, read from the start of new groups."""
    from confluent_kafka import Consumer

    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
        # Routes subscribe by pattern (`shop.public.*`): a topic created after the subscription
        # is only seen at the next metadata refresh (librdkafka default: 5 minutes).
        "topic.metadata.refresh.interval.ms": 5_000,
    }
    conf.update(config or {})
    with_logger(conf, "cdc_bridge.kafka.consumer")
    try:
        return Consumer(conf)
    except KafkaException as exc:
        raise ConfigError(f"invalid Kafka consumer configuration: {exc}") from exc


_NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"  # the all-zero UUID: the broker gave none


def topic_ids(admin: AdminClient, topics: Iterable[str], timeout: float = 10.0) -> dict[str, str]:
    """Topic name -> the broker's topic id (a new id when a topic is deleted and re-created).

    Topics that do not exist, and brokers that do not report ids, are left out. Raises
    RetriableError when Kafka does not answer.
    """
    wanted = sorted(set(topics))
    if not wanted:
        return {}
    try:
        futures = admin.describe_topics(TopicCollection(wanted), request_timeout=timeout)
    except KafkaException as exc:
        if _unsupported(exc):
            return {}
        raise RetriableError(f"cannot describe topics {wanted}: {exc}") from exc
    out: dict[str, str] = {}
    for name, fut in futures.items():
        try:
            desc = fut.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._UNKNOWN_TOPIC,
            ):
                continue
            if _unsupported(exc):
                return {}
            raise RetriableError(f"cannot describe topic {name!r}: {exc}") from exc
        tid = str(desc.topic_id) if desc.topic_id is not None else ""
        if tid and tid != _NO_TOPIC_ID:
            out[name] = tid
    return out


def _unsupported(exc: KafkaException) -> bool:
    """The broker cannot describe topics with ids (too old): no ids, not an outage."""
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and err.code() in (
        KafkaError._UNSUPPORTED_FEATURE,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError.INVALID_REQUEST,
    )
