"""The supervisor behind ``cdc-bridge start``: runs every source (and route worker) in its
own thread, checkpoints safe source positions every second, and shuts down cleanly.

Shutdown (SIGINT/SIGTERM, or a component failing): set the stop event, wait for sources to
return, flush each producer, write the final checkpoints (only positions Kafka confirmed),
stop route workers, close the state store. A source or worker raising ``FatalError`` (or
anything unexpected) stops the whole bridge with exit code 1.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from cdc_bridge.config import BridgeConfig, SourceConfigBase
from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.errors import BridgeError, ConfigError, FatalError
from cdc_bridge.kafka import EventProducer, LibrdkafkaLog, TopicSettings
from cdc_bridge.logs import component
from cdc_bridge.metrics import Health, MetricsServer
from cdc_bridge.monitor import Monitor
from cdc_bridge.registry import SOURCE_KINDS
from cdc_bridge.sources.base import Source, SourceContext
from cdc_bridge.state import StateStore

__all__ = ["EXIT_FAILED", "EXIT_OK", "Bridge", "HealthSink", "Worker"]

log = logging.getLogger("cdc_bridge.runtime")

EXIT_OK = 0
EXIT_FAILED = 1
_SECURITY_PREFIXES = ("security.", "sasl.", "ssl.")


@runtime_checkable
class Worker(Protocol):
    """A long-running route worker (``cdc_bridge.routes.build_workers`` returns them).

    ``run`` loops until ``stop`` is set and returns promptly after; ``close`` releases
    connections. ``name`` tags its log lines (``route=<name>``).
    """

    name: str

    def run(self, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


class HealthSink(Protocol):
    """Where the runtime reports component states (``cdc_bridge.metrics.Health`` fits).

    Source states used here: ``starting``, ``failed``, ``stopped`` (sources report
    ``snapshot`` / ``streaming`` themselves); route states: ``starting``, ``failed``,
    ``stopped``.
    """

    def source(self, name: str, state: str, detail: str = "") -> None: ...

    def route(self, name: str, state: str, detail: str = "") -> None: ...

    def fatal(self, message: str) -> None: ...


@dataclass
class _Running:
    """One component under supervision."""

    label: str  # "source=orders" / "route=to-crm"
    kind: str  # "source" / "route"
    name: str
    thread: threading.Thread | None = None
    error: BaseException | None = None
    finished: bool = False


def producer_for(config: BridgeConfig, source: SourceConfigBase) -> EventProducer:
    """The producer of one source: ``[kafka]`` topic settings + ``[kafka.producer]``."""
    kafka = config.kafka
    return EventProducer(
        kafka.bootstrap_servers,
        {"logger": LibrdkafkaLog(f"cdc_bridge.kafka.{source.name}"), **kafka.producer},
        client_id=f"{config.bridge.name}.{source.name}",
        topics=TopicSettings(
            kafka.topic_partitions, kafka.topic_replication_factor, kafka.topic_config
        ),
        admin_config={k: v for k, v in kafka.producer.items() if k.startswith(_SECURITY_PREFIXES)},
    )


def build_route_workers(config: BridgeConfig, store: StateStore) -> list[Worker]:
    """Route workers from ``cdc_bridge.routes.build_workers`` when that module is present."""
    if not config.routes or importlib.util.find_spec("cdc_bridge.routes") is None:
        if config.routes:
            log.warning("routes are configured but this build has no route engine; ignoring them")
        return []
    routes = importlib.import_module("cdc_bridge.routes")
    return list(routes.build_workers(config, store))


class Bridge:
    """Runs a configured bridge until stopped; :meth:`run` returns the exit code."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        checkpoint_interval: float = 1.0,
        shutdown_timeout: float = 30.0,
        health: HealthSink | None = None,
        monitor_interval: float = 10.0,
    ) -> None:
        self.config = config
        # Operations surface (cdc_bridge.metrics / monitor): unless the caller brings its own
        # health sink, /metrics, /healthz and /readyz are served on [bridge] metrics, and a
        # monitor probes source lag, route lag and database reachability.
        self.health = health if health is not None else Health()
        self.monitor: Monitor | None = None
        if isinstance(self.health, Health):
            self.monitor = Monitor(
                self.health,
                bootstrap_servers=config.kafka.bootstrap_servers,
                consumer_config=dict(config.kafka.consumer),
                interval=monitor_interval,
            )
        self.metrics_server: MetricsServer | None = None
        self.checkpoint_interval = checkpoint_interval
        self.shutdown_timeout = shutdown_timeout
        self.stop_event = threading.Event()
        self.store: StateStore | None = None
        self._sources: list[tuple[_Running, Source, SourceContext, EventProducer]] = []
        self._workers: list[tuple[_Running, Worker]] = []
        self._failed: list[str] = []
        self._signals = 0

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every component to stop (thread- and signal-safe)."""
        self.stop_event.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info("%s received: stopping (flushing and saving positions)", name)
        else:
            log.warning("%s received again: still stopping, waiting for components", name)
        self.stop()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until stopped or failed, shut down; the exit code."""
        previous = self._install_signals()
        try:
            try:
                self._start()
            except BaseException:
                self.stop()
                self._shutdown()
                raise
            self._supervise()
            self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._failed:
            log.error("bridge stopped after a failure of %s", ", ".join(self._failed))
            return EXIT_FAILED
        log.info("bridge stopped cleanly")
        return EXIT_OK

    def _start(self) -> None:
        cfg = self.config
        self.store = StateStore(cfg.bridge.state, migrate=True)
        for scfg in cfg.sources:
            label = f"source={scfg.name}"
            impl = SOURCE_KINDS[scfg.kind].implementation()
            source: Source = impl(scfg)
            producer = producer_for(cfg, scfg)
            ctx = SourceContext(
                scfg.name,
                producer,
                EnvelopeEncoder(schemas=scfg.schemas, tombstones=scfg.tombstones),
                store=self.store,
                stop=self.stop_event,
                logger=logging.getLogger(f"cdc_bridge.source.{scfg.name}"),
            )
            running = _Running(label, "source", scfg.name)
            running.thread = threading.Thread(
                target=self._run_source, args=(running, source, ctx), name=label, daemon=True
            )
            self._sources.append((running, source, ctx, producer))
            if self.monitor is not None:
                self.monitor.watch_source(scfg, ctx)
        for worker in build_route_workers(cfg, self.store):
            name = str(getattr(worker, "name", type(worker).__name__))
            label = f"route={name}"
            running = _Running(label, "route", name)
            running.thread = threading.Thread(
                target=self._run_worker, args=(running, worker), name=label, daemon=True
            )
            self._workers.append((running, worker))
            if self.monitor is not None and hasattr(worker, "route"):
                self.monitor.watch_route(worker)
        self._start_metrics()
        for running in self._components():
            self._report(running, "starting")
            assert running.thread is not None
            running.thread.start()
        if self.monitor is not None:
            self.monitor.start()
        if not self._failed:  # a component that failed at once has said so: no "started" after
            log.info(
                "bridge %s started: %d source(s), %d route worker(s)",
                cfg.bridge.name,
                len(self._sources),
                len(self._workers),
            )

    def _start_metrics(self) -> None:
        """Serve /metrics, /healthz, /readyz once every component is registered."""
        address = self.config.bridge.metrics
        if not address or not isinstance(self.health, Health):
            return
        try:
            self.metrics_server = MetricsServer(address, self.health).start()
        except ConfigError as exc:
            if "metrics" in self.config.bridge.model_fields_set:
                raise
            # The default address is taken (another bridge on this host): run without.
            log.warning("%s; running without the metrics endpoint", exc)

    def _components(self) -> list[_Running]:
        return [r for r, *_ in self._sources] + [r for r, _ in self._workers]

    def _report(self, running: _Running, state: str, detail: str = "") -> None:
        if self.health is None:
            return
        try:
            if running.kind == "source":
                self.health.source(running.name, state, detail)
            else:
                self.health.route(running.name, state, detail)
        except Exception:
            log.debug("health report failed", exc_info=True)

    def _run_source(self, running: _Running, source: Source, ctx: SourceContext) -> None:
        with component(running.label):
            try:
                source.run(ctx)
                if not self.stop_event.is_set():
                    log.info("source %s finished", source.name)
            except BaseException as exc:
                self._record_failure(running, exc)
            finally:
                running.finished = True
                try:
                    source.close()
                except Exception:
                    log.exception("closing source %s failed", source.name)

    def _run_worker(self, running: _Running, worker: Worker) -> None:
        with component(running.label):
            try:
                worker.run(self.stop_event)
            except BaseException as exc:
                self._record_failure(running, exc)
            finally:
                running.finished = True

    def _record_failure(self, running: _Running, exc: BaseException) -> None:
        running.error = exc
        self._failed.append(running.label)
        self._report(running, "failed", str(exc))
        if self.health is not None:
            try:
                self.health.fatal(f"{running.label}: {exc}")
            except Exception:
                log.debug("health report failed", exc_info=True)
        if isinstance(exc, BridgeError):
            log.error("%s failed: %s; stopping the bridge", running.label, exc)
        else:
            log.error("%s crashed (a bug); stopping the bridge", running.label, exc_info=exc)
        self.stop()

    def _supervise(self) -> None:
        components = self._components()
        while not self.stop_event.wait(self.checkpoint_interval):
            self._checkpoint_all()
            if components and all(r.finished for r in components):
                log.info("every source and route worker finished")
                break
        self.stop()

    def _checkpoint_all(self) -> None:
        for running, _source, ctx, _producer in self._sources:
            try:
                ctx.checkpoint()
            except FatalError as exc:
                if running.error is None:
                    self._record_failure(running, exc)
            except BridgeError as exc:
                log.warning("%s: cannot save position yet: %s", running.label, exc)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.shutdown_timeout
        if self.monitor is not None:
            self.monitor.stop()
        for running, source, _ctx, _producer in self._sources:
            if running.thread is not None and running.thread.is_alive():
                running.thread.join(max(0.1, deadline - time.monotonic()))
                if running.thread.is_alive():
                    log.error(
                        "source %s did not stop within %.0fs; its last position is kept",
                        source.name,
                        self.shutdown_timeout,
                    )
        for running, _source, ctx, producer in self._sources:
            with component(running.label):
                if not producer.flush(max(1.0, deadline - time.monotonic())):
                    log.warning("%d record(s) not confirmed by Kafka at shutdown", len(producer))
                try:
                    offset = ctx.checkpoint()
                    if offset is not None:
                        log.info("final position saved: %s", offset.to_dict())
                except BridgeError as exc:
                    log.error("cannot save the final position: %s", exc)
                producer.close(timeout=1.0)
        for running, worker in self._workers:
            if running.thread is not None and running.thread.is_alive():
                running.thread.join(max(0.1, deadline - time.monotonic()))
            with component(running.label):
                try:
                    worker.close()
                except Exception:
                    log.exception("closing %s failed", running.label)
        for running in self._components():
            if running.error is None:
                self._report(running, "stopped")
        if self.store is not None:
            self.store.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
