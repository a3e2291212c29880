"""The route engine: Kafka topics -> filtered, mapped batches -> a sink, with offsets and DLQ.

One :class:`RouteWorker` per ``[[routes]]`` entry. It is one member of the route's consumer
group (``<bridge>.<route>`` unless ``group_id``), so several processes with the same config
share the route's partitions. Records are applied in partition order, in batches of up to
``batch_size`` records or ``linger_ms``; offsets are committed only after the sink applied the
batch. On partition revocation the current batch is applied and committed before the
partitions are released, so a rebalance neither loses nor double-applies records.

Sinks with ``transactional_offsets`` (the database sink) store the next offset per partition in
the target, in the batch's transaction; on assignment the worker seeks to those offsets, which
makes the route exactly-once. Other sinks get at-least-once (Kafka commits after apply) and
must be idempotent.

Failures: a record that is not a valid envelope, or that the sink still rejects after
``max_retries`` retries, goes to the dead-letter topic ``<bridge>.dlq.<route>`` (confirmed by
Kafka before the route commits past it); the route moves on. Passing failures of the whole
batch (:class:`RetriableError`) are retried with backoff until they pass or the worker stops.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaError
from confluent_kafka import TopicPartition as KafkaTopicPartition

from cdc_bridge import metrics
from cdc_bridge.config import RouteConfigBase
from cdc_bridge.decode import EnvelopeDecoder, SupersededChange
from cdc_bridge.dlq import DeadLetter, DeadLetterWriter, dlq_topic, read_dead_letters
from cdc_bridge.errors import ConfigError, FatalError, RecordError, RetriableError
from cdc_bridge.expressions import Expression, compile_expression
from cdc_bridge.kafka import make_consumer
from cdc_bridge.mapping import Mapper
from cdc_bridge.sinks.base import FencedError, Sink, SinkContext, SinkRecord, TopicPartition

__all__ = [
    "CompiledRoute",
    "RouteWorker",
    "build_workers",
    "compile_route",
    "replay_dead_letters",
    "route_name",
]

log = logging.getLogger(__name__)

_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def route_name(route: RouteConfigBase) -> str:
    """The route's name: ``name``, or derived from ``from`` and ``to``."""
    if route.name:
        return route.name
    sources = route.from_ if isinstance(route.from_, list) else [route.from_]
    raw = "+".join(sources).replace("*", "all") + "-to-" + route.to
    return _NAME_BAD.sub("_", raw).strip("_") or "route"


def subscription(patterns: Iterable[str]) -> list[str]:
    """Topic names and globs -> a librdkafka subscription (globs become ``^regex$``)."""
    out = []
    for p in patterns:
        if any(c in p for c in "*?["):
            out.append("^" + fnmatch.translate(p).removeprefix("(?s:").removesuffix(")\\Z") + "$")
        else:
            out.append(p)
    return out


@dataclass
class CompiledRoute:
    """A route's record pipeline: ops selection, filter, mapping."""

    name: str
    group_id: str
    topics: list[str]
    ops: frozenset[str]
    filter: Expression | None
    mapper: Mapper
    config: RouteConfigBase

    def prepare(self, rec: SinkRecord) -> SinkRecord | None:
        """Apply ops selection, filter and mapping; None when the route skips the record."""
        if rec.op not in self.ops:
            return None
        flt = self.filter
        mapper = self.mapper
        if flt is None and mapper.identity:
            return rec
        env = {
            "before": rec.before,
            "after": rec.after,
            "op": rec.op,
            "source": rec.source,
            "key": rec.key,
            "topic": rec.topic,
        }
        if flt is not None and not flt.matches(env):
            return None
        if not mapper.identity:
            rec.after = mapper.map_row(rec.after, env)
            rec.before = mapper.map_row(rec.before, env, add=False)
            rec.key = mapper.map_key(rec.key)
            rec.key_fields = mapper.map_key_fields(rec.key_fields)
            rec.fields = mapper.map_fields(rec.fields)
        return rec


def compile_route(route: RouteConfigBase, bridge: str) -> CompiledRoute:
    name = route_name(route)
    sources = route.from_ if isinstance(route.from_, list) else [route.from_]
    return CompiledRoute(
        name=name,
        group_id=route.group_id or f"{bridge}.{name}",
        topics=subscription(sources),
        ops=frozenset(route.ops),
        filter=compile_expression(route.filter) if route.filter else None,
        mapper=Mapper(route.mapping),
        config=route,
    )


class _Stopped(Exception):
    """The worker was asked to stop while waiting; the current batch is abandoned."""


class RouteWorker:
    """Consumes one route's topics and applies them to its sink. ``run`` in a thread."""

    def __init__(
        self,
        route: CompiledRoute,
        sink: Sink,
        *,
        bridge: str,
        bootstrap_servers: str,
        consumer_config: dict[str, Any] | None = None,
        producer_config: dict[str, Any] | None = None,
        pipeline: bool = True,
        state: Any = None,
    ) -> None:
        self.route = route
        self.state = state
        self.sink = sink
        self.bridge = bridge
        self.bootstrap_servers = bootstrap_servers
        self.consumer_config = dict(consumer_config or {})
        self.dlq = DeadLetterWriter(
            bootstrap_servers,
            dlq_topic(bridge, route.name),
            producer_config=producer_config,
        )
        self.decoder = EnvelopeDecoder()
        self.transactional = bool(sink.transactional_offsets)
        self._consumer: Any = None
        self._pending: list[Any] = []
        self.pipeline = pipeline
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"route-{route.name}")
        self._inflight: Future[dict[TopicPartition, int]] | None = None
        self._failed = False
        # transactional sinks: the offsets we believe are stored in the target, per partition
        self._expected: dict[TopicPartition, int | None] = {}
        self._stop = threading.Event()
        self._opened = False
        self._closed = False
        self.applied = 0  # records handed to the sink and applied
        self.skipped = 0  # filtered out / ops not selected
        self.dead = 0  # dead-lettered
        self.batches = 0
        # For cdc_bridge.monitor: partitions owned, and whether the group was joined.
        self.assignment: set[TopicPartition] = set()
        self.joined = False
        self._m_applied = metrics.route_records_applied.labels(route=route.name)
        self._m_filtered = metrics.route_records_filtered.labels(route=route.name)
        self._m_dead = metrics.route_records_dead_lettered.labels(route=route.name)
        self._m_batch = metrics.route_batch_records.labels(route=route.name)
        self._m_apply = metrics.route_apply_seconds.labels(route=route.name)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.route.name

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Consume until ``stop_event`` is set; raise FatalError/ConfigError when it cannot go on."""
        stop = stop_event or self._stop
        self._stop = stop
        self._retrying(self.sink.open, "open the sink")
        self._opened = True
        conf: dict[str, Any] = {
            "max.poll.interval.ms": 600_000,
            # librdkafka pauses fetching for fetch.queue.backoff.ms (default 1 s) whenever its
            # local queue is full, which starves a fast sink: resume fetching promptly.
            "fetch.queue.backoff.ms": 10,
        }
        conf.update(self.consumer_config)
        consumer = self._consumer = make_consumer(self.bootstrap_servers, self.route.group_id, conf)
        self._cooperative = "cooperative" in str(
            conf.get("partition.assignment.strategy", "cooperative-sticky")
        )
        consumer.subscribe(
            self.route.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info(
            "route %s: consuming %s as group %s",
            self.name,
            ", ".join(self.route.config.patterns),  # as written in routes.toml, not the regexes
            self.route.group_id,
        )
        batch_size = self.route.config.batch_size
        linger = self.route.config.linger_ms / 1000.0
        first_at = 0.0
        try:
            while not stop.is_set():
                if self._inflight is not None and self._inflight.done():
                    self._drain()
                room = batch_size - len(self._pending)
                wait = 0.2
                if self._pending:
                    wait = max(0.0, min(wait, first_at + linger - time.monotonic()))
                msgs = consumer.consume(num_messages=max(1, room), timeout=wait)
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        self._on_consume_error(err)
                        continue
                    if not self._pending:
                        first_at = time.monotonic()
                    self._pending.append(msg)
                if self._pending and (
                    len(self._pending) >= batch_size or time.monotonic() - first_at >= linger
                ):
                    self._flush()
            if self._pending:
                self._flush()
            self._drain()
        except _Stopped:
            log.info("route %s: stopped while retrying; the open batch will be replayed", self.name)
            self._pending.clear()
            self._failed = True

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Leave the group (flushing what is pending when possible), close the sink."""
        if self._closed:
            return
        self._closed = True
        consumer, self._consumer = self._consumer, None
        try:
            if self._failed:
                self._pending.clear()
            if consumer is not None:
                consumer.close()
        except Exception as exc:  # closing must not mask the error that stopped the worker
            log.warning("route %s: closing the consumer: %s", self.name, exc)
        finally:
            self._executor.shutdown(wait=True)
            self.dlq.close()
            if self._opened:
                self.sink.close()

    # -- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        log.info("route %s: assigned %s", self.name, _fmt(partitions))
        self.assignment.update((p.topic, p.partition) for p in partitions)
        self.joined = True
        if not self.transactional:
            return
        tps = [(p.topic, p.partition) for p in partitions]
        stored = self._retrying(
            lambda: self.sink.committed_offsets(self.route.group_id, tps), "read stored offsets"
        )
        for p in partitions:
            off = stored.get((p.topic, p.partition))
            self._expected[(p.topic, p.partition)] = off
            p.offset = off if off is not None else OFFSET_INVALID
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        log.info("route %s: revoking %s", self.name, _fmt(partitions))
        self.assignment.difference_update((p.topic, p.partition) for p in partitions)
        try:
            if self._pending:
                self._flush()
            self._drain()
        except _Stopped:
            self._pending.clear()

    def _on_lost(self, consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        self.assignment.difference_update(lost)
        log.warning(
            "route %s: lost %s; dropping their unapplied records", self.name, _fmt(partitions)
        )
        self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in lost]
        self._drain()

    def _on_consume_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise FatalError(f"route {self.name}: Kafka consumer failed: {err.str()}")
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            log.debug("route %s: %s", self.name, err.str())
            return
        log.warning("route %s: Kafka: %s", self.name, err.str())

    # -- applying --------------------------------------------------------------------------

    def _retrying(self, fn: Callable[[], Any], what: str) -> Any:
        """Call ``fn`` until it does not raise RetriableError (backoff 0.5 s -> 30 s)."""
        delay = 0.5
        while True:
            try:
                return fn()
            except RetriableError as exc:
                log.warning(
                    "route %s: cannot %s (%s); retrying in %.1fs", self.name, what, exc, delay
                )
                if self._stop.wait(delay):
                    raise _Stopped() from exc
                delay = min(delay * 2, 30.0)

    def _flush(self) -> None:
        """Hand the pending messages to the applier (after the previous batch finished).

        Pipelined: batch N is applied in the applier thread while batch N+1 is consumed;
        batches are applied and committed strictly in order, one at a time.
        """
        if self._failed:
            return
        msgs, self._pending = self._pending, []
        batch = self._prepare(msgs)
        self._drain()
        if self.pipeline:
            self._inflight = self._executor.submit(self._apply_batch, *batch)
        else:
            try:
                self._commit(self._apply_batch(*batch))
            except FencedError as exc:
                self._refence(exc)

    def _drain(self) -> None:
        """Wait for the batch being applied, then commit its offsets (in the consumer's
        thread: librdkafka calls must not race a rebalance); re-raise what stopped it."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            try:
                positions = inflight.result()
            except FencedError as exc:
                self._refence(exc)
                return
            except BaseException:
                self._failed = True
                raise
            self._commit(positions)

    def _refence(self, exc: FencedError) -> None:
        """Another consumer applied our partitions: drop what we hold, seek to the target's offsets."""
        log.warning("route %s: %s; re-reading the stored offsets", self.name, exc)
        self._pending.clear()
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        tps = [(p.topic, p.partition) for p in assigned]
        stored = self._retrying(
            lambda: self.sink.committed_offsets(self.route.group_id, tps), "read stored offsets"
        )
        for p in assigned:
            tp = (p.topic, p.partition)
            self._expected[tp] = stored.get(tp)
            if tp in stored:
                consumer.seek(KafkaTopicPartition(p.topic, p.partition, stored[tp]))

    def process(self, msgs: Sequence[Any]) -> None:
        """Decode, select, apply and commit one batch of Kafka messages (synchronously)."""
        try:
            self._commit(self._apply_batch(*self._prepare(msgs)))
        except FencedError as exc:
            self._refence(exc)

    def _apply_batch(
        self,
        records: list[SinkRecord],
        positions: dict[TopicPartition, int],
        dead: list[DeadLetter],
    ) -> dict[TopicPartition, int]:
        applied, dead_before, started = self.applied, self.dead, time.perf_counter()
        try:
            self.apply(records, positions, dead)
            self.batches += 1
            # Metrics once per batch, never per record (cdc_bridge.metrics).
            self._m_apply.observe(time.perf_counter() - started)
            self._m_applied.inc(self.applied - applied)
            self._m_dead.inc(self.dead - dead_before)
        except FencedError:
            raise
        except BaseException:
            self._failed = True
            raise
        return positions

    def _prepare(
        self, msgs: Sequence[Any]
    ) -> tuple[list[SinkRecord], dict[TopicPartition, int], list[DeadLetter]]:
        """Decode, select and map: records for the sink, next offsets, undecodable records."""
        positions: dict[TopicPartition, int] = {}
        records: list[SinkRecord] = []
        dead: list[DeadLetter] = []
        decode = self.decoder.decode
        prepare = self.route.prepare
        skipped = self.skipped
        for m in msgs:
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            positions[(topic, partition)] = offset + 1
            ts = m.timestamp()[1]
            try:
                rec = decode(topic, partition, offset, ts, m.key(), m.value())
                prepared = prepare(rec)
            except SupersededChange:
                prepared = None
            except RecordError as exc:
                dead.append(self._letter(topic, partition, offset, ts, m.key(), m.value(), exc))
                continue
            if prepared is None:
                self.skipped += 1
            else:
                records.append(prepared)
        self._m_batch.observe(len(msgs))
        self._m_filtered.inc(self.skipped - skipped)
        return records, positions, dead

    def apply(
        self,
        records: list[SinkRecord],
        positions: dict[TopicPartition, int],
        dead: list[DeadLetter] | None = None,
    ) -> None:
        """Apply ``records`` with bounded retries of failing ones; dead-letter the rest."""
        dead = list(dead or [])
        cfg = self.route.config
        backoff = cfg.retry_backoff_ms / 1000.0
        todo = list(range(len(records)))
        errors: dict[int, RecordError] = {}
        tx_positions = positions if self.transactional else None
        expected = self._expected
        previous = {tp: expected.get(tp) for tp in positions} if self.transactional else None
        attempt = 0
        while True:
            batch = [records[i] for i in todo]
            if self.transactional and attempt > cfg.max_retries:
                # Out of retries: dead-letter what still fails *before* committing the rest
                # (with the offsets), so a crash in between replays rather than skips.
                failed = [i for i in todo if i in errors]
                if failed:
                    dead.extend(self._record_letter(records[i], errors[i]) for i in failed)
                    self._send_dead(dead)
                    dead = []
                    todo = [i for i in todo if i not in errors]
                    errors = {}
                    batch = [records[i] for i in todo]
            if self.transactional:
                call = _bind_kw(self.sink.apply, batch, tx_positions, previous=previous)
            else:
                call = _bind(self.sink.apply, batch, None)
            result = self._retrying(call, "apply a batch")
            if result.ok:
                self.applied += len(batch)
                if self.transactional:
                    expected.update(positions)
                break
            new_errors = {todo[j]: e for j, e in result.failed.items()}
            if not self.transactional:
                self.applied += len(batch) - len(new_errors)
                todo = sorted(new_errors)
                errors = new_errors
                if attempt >= cfg.max_retries:
                    dead.extend(self._record_letter(records[i], errors[i]) for i in todo)
                    break
            else:
                errors = new_errors if attempt < cfg.max_retries else {**errors, **new_errors}
            attempt += 1
            if attempt <= cfg.max_retries:
                log.info(
                    "route %s: %d record(s) failed (%s); retry %d/%d",
                    self.name,
                    len(new_errors),
                    next(iter(new_errors.values())),
                    attempt,
                    cfg.max_retries,
                )
                if self._stop.wait(backoff * (2 ** (attempt - 1))):
                    raise _Stopped()
        self._send_dead(dead)

    def _send_dead(self, dead: list[DeadLetter]) -> None:
        if dead:
            self._retrying(lambda: self.dlq.send(dead), "write dead letters")
            self.dead += len(dead)
            self._index_dead(dead)

    def _index_dead(self, dead: list[DeadLetter]) -> None:
        """Record dead letters in the state store's index (the topic stays the truth)."""
        add = getattr(self.state, "add_dead_letters", None)
        if add is None:
            return
        try:
            add(self.name, [(d.topic, d.partition, d.offset, d.key, d.error) for d in dead])
        except Exception as exc:
            log.warning(
                "route %s: cannot index dead letters in the state store: %s", self.name, exc
            )

    def _letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        ts: int,
        key: bytes | None,
        value: bytes | None,
        exc: RecordError,
    ) -> DeadLetter:
        return DeadLetter(
            topic,
            partition,
            offset,
            ts,
            key,
            value,
            str(exc),
            exc.code or "record_error",
            self.name,
        )

    def _record_letter(self, rec: SinkRecord, exc: RecordError) -> DeadLetter:
        return self._letter(
            rec.topic, rec.partition, rec.offset, rec.timestamp, rec.raw_key, rec.raw_value, exc
        )

    def _commit(self, positions: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        if consumer is None or not positions:
            return
        offsets = [KafkaTopicPartition(t, p, o) for (t, p), o in positions.items()]
        if self.transactional:
            # The target holds the truth; Kafka's copy is for lag monitoring only.
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except Exception as exc:
                log.debug("route %s: informational commit failed: %s", self.name, exc)
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:
            # Typically a rebalance in progress: the records were applied, they will be
            # replayed to an idempotent sink by the partition's next owner.
            log.warning(
                "route %s: offset commit failed (%s); records may be replayed", self.name, exc
            )


def _mark_replayed(state: Any, route: str, replayed: list[tuple[str, int, int]]) -> None:
    """Mark replayed dead letters in the state store's index, when there is one."""
    lookup = getattr(state, "dead_letters", None)
    mark = getattr(state, "mark_replayed", None)
    if lookup is None or mark is None or not replayed:
        return
    done = set(replayed)
    try:
        ids = [
            d.id for d in lookup(route, limit=1_000_000) if (d.topic, d.partition, d.offset) in done
        ]
        mark(ids)
    except Exception as exc:
        log.warning(
            "route %s: cannot mark replayed dead letters in the state store: %s", route, exc
        )


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def _bind_kw(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: fn(*args, **kwargs)


def _fmt(partitions: Iterable[KafkaTopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"


# -- building from a config --------------------------------------------------------------


def make_sink(config: Any, route: RouteConfigBase, state: Any = None) -> tuple[CompiledRoute, Sink]:
    """The compiled route and a fresh sink instance for one ``[[routes]]`` entry."""
    from cdc_bridge.registry import SINK_KINDS

    bridge = config.bridge.name
    compiled = compile_route(route, bridge)
    sinks = {s.name: s for s in config.sinks}
    sink_config = sinks.get(route.to)
    if sink_config is None:
        raise ConfigError(
            f"route {compiled.name!r}: `to = {route.to!r}` names no [[sinks]] entry "
            f"(known: {', '.join(sorted(sinks)) or 'none'})"
        )
    kind = SINK_KINDS[sink_config.kind]
    cls = kind.implementation()
    context = SinkContext(
        bridge=bridge, route=compiled.name, group_id=compiled.group_id, state=state
    )
    return compiled, cls(sink_config, route, context)


def build_workers(config: Any, state: Any = None) -> list[RouteWorker]:
    """One worker per ``[[routes]]`` entry; the runtime runs each ``run(stop)`` in a thread."""
    workers = []
    for route in config.routes:
        compiled, sink = make_sink(config, route, state)
        workers.append(
            RouteWorker(
                compiled,
                sink,
                bridge=config.bridge.name,
                bootstrap_servers=config.kafka.bootstrap_servers,
                consumer_config=dict(config.kafka.consumer),
                producer_config=dict(config.kafka.producer),
                state=state,
            )
        )
    return workers


def replay_dead_letters(config: Any, route_name_: str, state: Any = None) -> tuple[int, int]:
    """Re-apply the dead letters of one route; returns (applied, failed again).

    Replay progress is kept as the offsets of consumer group ``<group>.dlq-replay`` on the
    dead-letter topic (in the target for transactional sinks), so each dead letter is replayed
    once; records that fail again are appended to the dead-letter topic with the new reason.
    """
    route_cfg = None
    for r in config.routes:
        if route_name(r) == route_name_:
            route_cfg = r
    if route_cfg is None:
        known = ", ".join(route_name(r) for r in config.routes) or "none"
        raise ConfigError(f"no route named {route_name_!r} (routes: {known})")
    compiled, sink = make_sink(config, route_cfg, state)
    compiled.group_id = f"{compiled.group_id}.dlq-replay"
    sink.context.group_id = compiled.group_id
    bootstrap = config.kafka.bootstrap_servers
    worker = RouteWorker(
        compiled,
        sink,
        bridge=config.bridge.name,
        bootstrap_servers=bootstrap,
        consumer_config=dict(config.kafka.consumer),
        producer_config=dict(config.kafka.producer),
        state=state,
    )
    topic = dlq_topic(config.bridge.name, compiled.name)
    sink.open()
    worker._opened = True
    consumer = make_consumer(bootstrap, compiled.group_id, dict(config.kafka.consumer))
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions) if topic in md.topics else []
        if sink.transactional_offsets:
            stored = sink.committed_offsets(compiled.group_id, [(topic, p) for p in parts])
            start = {p: o for (_t, p), o in stored.items()}
            worker._expected = {(topic, p): stored.get((topic, p)) for p in parts}
        else:
            committed = consumer.committed(
                [KafkaTopicPartition(topic, p) for p in parts], timeout=10
            )
            start = {c.partition: c.offset for c in committed if c.offset >= 0}
        letters = list(
            read_dead_letters(
                bootstrap, topic, consumer_config=dict(config.kafka.consumer), start=start
            )
        )
        before_dead = worker.dead
        replayed: list[tuple[str, int, int]] = []
        for letter in letters:
            positions = {(topic, letter.dlq_partition): letter.dlq_offset + 1}
            try:
                rec = worker.decoder.decode(
                    letter.topic,
                    letter.partition,
                    letter.offset,
                    letter.timestamp,
                    letter.key,
                    letter.value,
                )
                prepared = compiled.prepare(rec)
                records = [prepared] if prepared is not None else []
                dead_before = worker.dead
                worker.apply(records, positions)
                if worker.dead == dead_before:
                    replayed.append((letter.topic, letter.partition, letter.offset))
            except SupersededChange:  # nothing left to apply: superseded by a later change
                replayed.append((letter.topic, letter.partition, letter.offset))
            except RecordError as exc:
                worker._send_dead(
                    [
                        worker._letter(
                            letter.topic,
                            letter.partition,
                            letter.offset,
                            letter.timestamp,
                            letter.key,
                            letter.value,
                            exc,
                        )
                    ]
                )
            if not sink.transactional_offsets:
                consumer.commit(
                    offsets=[
                        KafkaTopicPartition(topic, letter.dlq_partition, letter.dlq_offset + 1)
                    ],
                    asynchronous=False,
                )
        failed = worker.dead - before_dead
        applied = len(letters) - failed
        _mark_replayed(state, compiled.name, replayed)
        return applied, failed
    finally:
        consumer.close()
        worker.dlq.close()
        sink.close()
