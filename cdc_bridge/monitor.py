"""Background monitor of a running bridge: source lag and retention, route consumer lag, health.

Every ``interval`` seconds it probes each source's database with the same queries as
``cdc-bridge status`` (one short connection per probe, off the hot path) and reads each
route's committed offsets and high watermarks for the partitions this process owns; it puts
the results into the ``cdc_bridge.metrics`` gauges and tells :class:`~cdc_bridge.metrics.Health`
whether each database answers, so ``/readyz`` flips when a source loses its database even if
the source itself is quietly retrying, and marks a ``starting`` source ``streaming`` once the
database shows it at work. Every second it also refreshes route readiness (joined the
consumer group) from the workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from cdc_bridge import metrics, status
from cdc_bridge.metrics import Health

__all__ = ["Monitor"]

log = logging.getLogger(__name__)


class _RouteWatch:
    __slots__ = ("consumer", "labels", "worker")

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.consumer: Any = None
        self.labels: set[tuple[str, str]] = set()


class Monitor:
    """Probes sources and routes in a daemon thread; :meth:`probe_once` runs one round."""

    def __init__(
        self,
        health: Health,
        *,
        bootstrap_servers: str | None = None,
        consumer_config: dict[str, Any] | None = None,
        interval: float = 10.0,
        warn_bytes: int = status.DEFAULT_RETAINED_WARN_BYTES,
        timeout: float = 5.0,
    ) -> None:
        self.health = health
        self.bootstrap_servers = bootstrap_servers
        self.consumer_config = dict(consumer_config or {})
        self.interval = interval
        self.warn_bytes = warn_bytes
        self.timeout = timeout
        self._sources: list[tuple[Any, Any]] = []
        self._routes: list[_RouteWatch] = []
        self._config: Any = None
        self._admin: Any = None
        self._unfed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- registration ------------------------------------------------------------------------

    def watch_source(self, config: Any, ctx: Any) -> None:
        """A ``[[sources]]`` entry and the SourceContext it runs with."""
        self._sources.append((config, ctx))

    def watch_config(self, config: Any) -> None:
        """The bridge config: each round, routes with nothing to read (no matching topic on
        Kafka, no configured source writing one) become /readyz notes."""
        self._config = config

    def _probe_unfed(self) -> None:
        config = self._config
        if config is None or not config.routes or not self.bootstrap_servers:
            return
        from cdc_bridge.idle import unfed_routes
        from cdc_bridge.kafka import TopicAdmin

        if self._admin is None:
            security = {
                k: v
                for k, v in self.consumer_config.items()
                if k.startswith(("security.", "sasl.", "ssl."))
            }
            self._admin = TopicAdmin({**security, "bootstrap.servers": self.bootstrap_servers})
        topics = self._admin.list_topics(timeout=self.timeout)
        unfed = unfed_routes(config, topics)
        for route in config.routes:
            name, _group = status.route_group(route, config.bridge.name)
            message = unfed.get(name)
            if message is None:
                self._unfed.discard(name)
            elif name not in self._unfed:
                self._unfed.add(name)
                log.warning("%s", message, extra={"component": f"route={name}"})
            self.health.note(f"route={name}", message)

    def watch_route(self, worker: Any) -> None:
        """A route worker (``.name``, ``.route.group_id``, ``.route.config``; optionally
        ``.assignment``: the set of (topic, partition) it owns, and ``.joined``)."""
        self._routes.append(_RouteWatch(worker))
        self.health.route(worker.name, "starting")

    # -- loop ----------------------------------------------------------------------------------

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout * 2 + 5)
        for watch in self._routes:
            if watch.consumer is not None:
                try:
                    watch.consumer.close()
                except Exception:
                    pass
                watch.consumer = None

    def _loop(self) -> None:
        next_probe = 0.0
        while not self._stop.is_set():
            self.refresh_routes()
            if time.monotonic() >= next_probe:
                self.probe_once()
                # Sources still starting are probed every second, so /readyz turns soon.
                starting = any(
                    self.health.source_state(cfg.name) == "starting" for cfg, _ in self._sources
                )
                next_probe = time.monotonic() + (
                    min(1.0, self.interval) if starting else self.interval
                )
            self._stop.wait(1.0)

    def probe_once(self) -> None:
        """One round: every source's database, every route's lag."""
        for config, ctx in self._sources:
            if self._stop.is_set():
                return
            try:
                self._probe_source(config, ctx)
            except Exception:
                log.exception(
                    "monitor: probing source %s failed",
                    config.name,
                    extra={"component": f"source={config.name}"},
                )
        try:
            self._probe_unfed()
        except Exception as exc:
            log.debug("monitor: listing topics for idle routes: %s", exc)
        for watch in self._routes:
            if self._stop.is_set():
                return
            try:
                self._probe_route(watch)
            except Exception as exc:
                log.warning(
                    "monitor: consumer lag of route %s: %s",
                    watch.worker.name,
                    exc,
                    extra={"component": f"route={watch.worker.name}"},
                )

    # -- sources -----------------------------------------------------------------------------------

    @staticmethod
    def _offset(ctx: Any) -> dict[str, Any] | None:
        try:
            offset = ctx.safe_offset()
        except Exception:
            offset = None
        if offset is not None:
            return dict(offset.to_dict())
        saved = getattr(ctx, "_saved", None)
        return dict(saved) if saved else None

    def _probe_source(self, config: Any, ctx: Any) -> None:
        name = config.name
        st = status.probe_source(config, self._offset(ctx), warn_bytes=self.warn_bytes)
        if st.state == status.UNREACHABLE:
            log.warning(
                "monitor: source %s: database does not answer: %s",
                name,
                st.detail,
                extra={"component": f"source={name}"},
            )
            self.health.source_reachable(name, False, f"database unreachable: {st.detail}")
            return
        self.health.source_reachable(name, True)
        if self.health.source_state(name) == "starting" and (
            st.state not in (status.INACTIVE, status.LOST) or getattr(ctx, "events_emitted", 0) > 0
        ):
            # The database shows the source at work (Postgres: slot active; others: a saved
            # position), or it has captured events: it is streaming (or snapshotting). A lost
            # position (an invalidated slot, purged binlogs) shows nothing at work yet: the
            # source is about to fail or to take a new snapshot.
            self.health.source(name, "streaming")
        if st.lag_bytes is not None:
            metrics.source_lag_bytes.labels(source=name).set(st.lag_bytes)
            if st.lag_bytes == 0:
                metrics.source_lag_seconds.labels(source=name).set(0)
        if st.retained_bytes is not None:
            metrics.source_retained_bytes.labels(source=name).set(st.retained_bytes)
        if st.risk:
            log.warning(
                "monitor: source %s: %s", name, st.risk, extra={"component": f"source={name}"}
            )

    # -- routes ------------------------------------------------------------------------------------

    def refresh_routes(self) -> None:
        """Route readiness from the workers: joined their group (an assignment arrived)."""
        for watch in self._routes:
            worker = watch.worker
            if self.health.route_state(worker.name) in ("failed", "halted", "stopped"):
                continue
            problem = getattr(worker, "problem", None)
            if problem:
                # Retrying the sink (unreachable, or refusing the credentials): not ready.
                self.health.route(worker.name, "retrying", problem)
            else:
                joined = getattr(worker, "joined", None)
                if joined is None:  # a worker without the attribute: running counts as joined
                    joined = True
                self.health.route(worker.name, "assigned" if joined else "starting")
            owned = getattr(worker, "assignment", None)
            if owned is not None:
                metrics.route_assigned_partitions.labels(route=worker.name).set(len(owned))

    def _probe_route(self, watch: _RouteWatch) -> None:
        if not self.bootstrap_servers:
            return
        worker = watch.worker
        route = worker.route
        if watch.consumer is None:
            from confluent_kafka import Consumer

            from cdc_bridge.kafka import with_logger

            watch.consumer = Consumer(
                with_logger(
                    {
                        **self.consumer_config,
                        "bootstrap.servers": self.bootstrap_servers,
                        "group.id": route.group_id,
                        "enable.auto.commit": False,
                    },
                    "cdc_bridge.kafka.monitor",
                )
            )
        owned: Iterable[tuple[str, int]] | None = getattr(worker, "assignment", None)
        if owned is not None:
            owned = sorted(owned)
            lags = status.route_lag(watch.consumer, [], partitions=owned, timeout=self.timeout)
        else:
            md = watch.consumer.list_topics(timeout=self.timeout)
            from_ = route.config.from_
            patterns = [from_] if isinstance(from_, str) else list(from_)
            topics = status.matching_topics(md.topics, patterns)
            lags = status.route_lag(watch.consumer, topics, timeout=self.timeout)
        seen = set()
        for p in lags:
            key = (p.topic, str(p.partition))
            seen.add(key)
            metrics.route_consumer_lag.labels(
                route=worker.name, topic=p.topic, partition=key[1]
            ).set(p.lag)
        for topic, partition in watch.labels - seen:
            try:
                metrics.route_consumer_lag.remove(worker.name, topic, partition)
            except KeyError:
                pass
        watch.labels = seen
