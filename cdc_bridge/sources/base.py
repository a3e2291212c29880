"""The one small interface every capture adapter implements, and what it runs with.

A source is built from its validated config, can :meth:`Source.check` its prerequisites
(used by ``cdc-bridge check --connect`` and before streaming), and :meth:`Source.run` s until
its context says stop. It hands events to :meth:`SourceContext.emit` together with the
source position (an ``Offset``) that is safe once those events are on Kafka, and acknowledges
to its database only what :meth:`SourceContext.safe_offset` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, ClassVar, Protocol, runtime_checkable

from cdc_bridge import metrics
from cdc_bridge.envelope import EnvelopeEncoder, Record
from cdc_bridge.errors import RetriableError
from cdc_bridge.events import ChangeEvent
from cdc_bridge.kafka import EventProducer

__all__ = ["Offset", "OffsetStore", "Source", "SourceContext"]

_OP = attrgetter("op")


@runtime_checkable
class Offset(Protocol):
    """A source position that round-trips through a JSON-able dict (stored in the state store).

    Each adapter defines its own (``PostgresOffset``, ``MySqlOffset``, ``MongoOffset``) with
    ``to_dict()`` and a ``from_dict()`` classmethod.
    """

    def to_dict(self) -> dict[str, Any]: ...


class OffsetStore(Protocol):
    """Where a source's last safe position lives (the bridge's state store)."""

    def load_offset(self, source: str) -> dict[str, Any] | None: ...

    def save_offset(self, source: str, offset: dict[str, Any]) -> None: ...


class SourceContext:
    """What a running source gets from the runtime: emit, safe offset, stored offset, stop.

    The runtime also calls :meth:`checkpoint` periodically and at shutdown, which persists the
    safe offset to the state store when it moved.
    """

    def __init__(
        self,
        name: str,
        producer: EventProducer,
        encoder: EnvelopeEncoder,
        store: OffsetStore | None = None,
        stop: threading.Event | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.producer = producer
        self.encoder = encoder
        self.store = store
        self.stopping = stop or threading.Event()
        self.log = logger or logging.getLogger(f"cdc_bridge.source.{name}")
        self._saved: dict[str, Any] | None = None
        # Set by the coordinator (the source's checkpoint_interval_ms); see maybe_checkpoint.
        self.checkpoint_interval_s = 1.0
        self._last_checkpoint = time.monotonic()
        # Counts stream_established() calls: the coordinator resets its backoff when it moved.
        self.established = 0
        self._checkpoint_lock = threading.Lock()
        self.events_emitted = 0
        self.last_emit_monotonic = time.monotonic()
        # Operations surface (cdc_bridge.metrics): counted per batch, sampled at scrape time.
        self.last_event_ts_us = 0  # commit time of the last emitted event
        self.acked_monotonic = time.monotonic()  # last time the safe offset moved / was idle
        self._op_counters: dict[str, Any] = {}
        self._snapshotting = False
        self._last_safe: Any = None
        self._g_last_ts = metrics.source_last_event_timestamp.labels(source=name)
        self._g_lag = metrics.source_lag_seconds.labels(source=name)
        metrics.sample(metrics.source_events_in_flight, producer.in_flight, source=name)
        metrics.sample(metrics.source_ack_age_seconds, self.ack_age, source=name)
        metrics.source_snapshot_running.labels(source=name).set(0)

    def emit(self, events: Sequence[ChangeEvent], offset: Offset | None = None) -> None:
        """Encode and produce ``events``; ``offset`` is safe once they are all on Kafka."""
        self.producer.send(self.encoder.encode(events), offset)
        self.events_emitted += len(events)
        self.last_emit_monotonic = time.monotonic()
        if events:
            self._count(events)

    def _count(self, events: Sequence[ChangeEvent]) -> None:
        """Per-batch metrics: events by op (C-speed count), last commit time, snapshot flag."""
        counters = self._op_counters
        for op, n in Counter(map(_OP, events)).items():
            child = counters.get(op)
            if child is None:
                child = counters[op] = metrics.source_events.labels(source=self.name, op=op)
            child.inc(n)
        last = events[-1]
        self.last_event_ts_us = last.ts_us
        committed = last.ts_us / 1e6
        self._g_last_ts.set(committed)
        # Like Debezium's MilliSecondsBehindSource: capture time - commit time of the batch.
        self._g_lag.set(max(0.0, time.time() - committed))
        snapshotting = last.snapshot not in ("false", "last")
        if snapshotting != self._snapshotting:
            self._snapshotting = snapshotting
            metrics.source_snapshot_running.labels(source=self.name).set(int(snapshotting))

    def ack_age(self) -> float:
        """Seconds since the acknowledged position last moved while records were pending."""
        if self.producer.in_flight() == 0:
            return 0.0
        return time.monotonic() - self.acked_monotonic

    def emit_records(self, records: Sequence[Record], offset: Offset | None = None) -> None:
        """Produce ready-made records (schema-change topic, heartbeats) under the same tracking."""
        self.producer.send(records, offset)

    def safe_offset(self) -> Any:
        """The highest offset whose events, and all events before them, Kafka confirmed."""
        return self.producer.safe_offset()

    def stream_established(self) -> None:
        """The adapter (re)connected its stream: a later failure starts a fresh backoff."""
        self.established += 1

    def backpressure(self, limit: int) -> None:
        """Wait while more than ``limit`` records are unacknowledged (bounded memory)."""
        producer = self.producer
        while len(producer) > limit and not self.stopping.is_set():
            time.sleep(0.002)

    def maybe_checkpoint(self) -> None:
        """Checkpoint if ``checkpoint_interval_s`` passed since the last one: the one cadence
        every adapter uses from its loop. A state store that is briefly unreachable is not
        the stream's problem: the next checkpoint stores the newer position."""
        now = time.monotonic()
        if now - self._last_checkpoint >= self.checkpoint_interval_s:
            self._last_checkpoint = now
            try:
                self.checkpoint()
            except RetriableError as exc:
                self.log.warning("checkpoint failed (retried at the next one): %s", exc)

    def load_offset(self) -> dict[str, Any] | None:
        """The offset stored by the last run (None on first start or without a store)."""
        if self.store is None:
            return None
        self._saved = self.store.load_offset(self.name)
        return self._saved

    def checkpoint(self) -> Any:
        """Persist the current safe offset if it moved; returns it.

        Safe to call from the source's own thread and the runtime's at once: the lock keeps an
        older offset from overwriting a newer one.
        """
        with self._checkpoint_lock:
            offset = self.safe_offset()
            if offset is not None and self.store is not None:
                as_dict = offset.to_dict()
                if as_dict != self._saved:
                    self.store.save_offset(self.name, as_dict)
                    self._saved = as_dict
            if offset is not self._last_safe or self.producer.in_flight() == 0:
                self._last_safe = offset
                self.acked_monotonic = time.monotonic()
            return offset


class Source(ABC):
    """A capture adapter. Subclasses set ``kind`` and implement ``check`` and ``run``."""

    kind: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config
        self.name: str = config.name

    @abstractmethod
    def check(self) -> None:
        """Connect and verify prerequisites; raise ConfigError with a fix-it message."""

    @abstractmethod
    def run(self, ctx: SourceContext) -> None:
        """Snapshot if configured, then stream until ``ctx.stopping`` is set.

        Must return promptly (within a second or so) after ``ctx.stopping`` is set. Raises
        FatalError when it cannot go on; nothing undelivered is ever acknowledged.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called after run returns or fails)."""
