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
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from cdc_bridge.config import BridgeConfig, SourceConfigBase
from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.errors import BridgeError, ConfigError, FatalError, RetriableError, RouteHalted
from cdc_bridge.idle import nothing_configured
from cdc_bridge.kafka import EventProducer, LibrdkafkaLog, TopicSettings, probe_cluster
from cdc_bridge.logs import component
from cdc_bridge.metrics import Health, MetricsServer
from cdc_bridge.monitor import Monitor
from cdc_bridge.registry import SOURCE_KINDS
from cdc_bridge.sources.base import Source, SourceContext
from cdc_bridge.state import StateStore

__all__ = ["EXIT_FAILED", "EXIT_OK", "Bridge", "HealthSink", "Worker", "bridge_identity"]

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

    Source states used here: ``starting``, ``failed``, ``stopped``, ``stalled`` (Kafka
    confirms nothing), ``ended`` (run returned unexpectedly), ``finished`` (initial_only
    done); the monitor reports ``streaming``; route states: ``starting``, ``failed``,
    ``halted`` (that route stopped, the bridge runs on), ``stopped``.
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
    halted: bool = False  # a route stopped on its own (RouteHalted); the bridge runs on


@dataclass
class _Stall:
    """A source whose records Kafka stopped confirming (see ``Bridge._watch_stalls``)."""

    previous: str | None  # the health state to restore when confirmations resume
    since: float = field(default_factory=time.monotonic)
    checked: float = 0.0
    detail: str = ""


def bridge_identity(config: BridgeConfig) -> dict[str, str]:
    """What /readyz says about which bridge answers: its name and state store (password
    masked), so `cdc-bridge status` does not mistake another bridge on the address for it."""
    from cdc_bridge.config import mask_url

    return {"bridge": config.bridge.name, "state": mask_url(config.bridge.state)}


def _resnapshot_hint(config: BridgeConfig, source: str) -> str:
    """How to take a new snapshot of ``source`` (to restore events Kafka lost)."""
    conf = f" --config {config.source_file}" if config.source_file else ""
    return (
        "to restore them, stop the bridge, run `cdc-bridge resnapshot --source "
        f"{source}{conf}` and start it again"
    )


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
            self.health.identity = bridge_identity(config)
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
        self._ended: list[str] = []  # sources whose run() returned unexpectedly
        self._stalls: dict[str, _Stall] = {}  # source name -> since when Kafka confirms nothing
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
        if self._ended:
            log.error("bridge stopped; %s had ended unexpectedly", ", ".join(self._ended))
            return EXIT_FAILED
        if any(r.halted for r in self._components()):
            return EXIT_FAILED
        log.info("bridge stopped cleanly")
        return EXIT_OK

    def _wait_for_kafka(self) -> None:
        """Kafka must answer before anything touches a source database (a replication slot
        created for a bridge that cannot deliver would only hold WAL). An ERROR names the
        address within seconds; after ``[kafka] connect_timeout_s`` the start fails."""
        cfg = self.config.kafka
        if not self.config.sources and not self.config.routes:
            return
        client = {k: v for k, v in cfg.producer.items() if k.startswith(_SECURITY_PREFIXES)}
        deadline = time.monotonic() + cfg.connect_timeout_s
        attempt = 0
        while True:
            attempt += 1
            left = deadline - time.monotonic()
            try:
                wait = 2.0 if attempt == 1 else 5.0
                probe_cluster(cfg.bootstrap_servers, client, timeout=max(1.0, min(wait, left)))
            except RetriableError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FatalError(
                        f"{exc} (gave up after [kafka] connect_timeout_s = "
                        f"{cfg.connect_timeout_s:g}s; nothing was created on the sources)"
                    ) from None
                if attempt == 1:
                    log.error("%s; retrying for %.0fs more", exc, left)
                if self.stop_event.wait(min(1.0, left)):
                    return  # stopped while waiting: a clean stop
                continue
            if attempt > 1:
                log.info("Kafka at %s answers", cfg.bootstrap_servers)
            return

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
        # Producers are built (their config checked); no source database was contacted yet.
        self._wait_for_kafka()
        if self.stop_event.is_set():
            return
        idle = nothing_configured(cfg)
        if idle is not None:
            log.warning("%s", idle)
            if isinstance(self.health, Health):
                self.health.note("bridge", idle)
        if self.monitor is not None:
            self.monitor.watch_config(cfg)
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
                    self._source_returned(running, source)
            except BaseException as exc:
                self._record_failure(running, exc)
            finally:
                running.finished = True
                try:
                    source.close()
                except Exception:
                    log.exception("closing source %s failed", source.name)

    def _source_returned(self, running: _Running, source: Source) -> None:
        """``run`` returned without being told to stop: done (``snapshot = "initial_only"``)
        or -- for every other mode, whose stream never ends by itself -- a source that quit
        capturing. The latter degrades the bridge loudly instead of idling as "ready"."""
        if getattr(source.config, "snapshot", None) == "initial_only":
            log.info("source %s finished (snapshot = initial_only)", source.name)
            self._report(running, "finished")
            return
        message = (
            f"source {source.name} ended unexpectedly: it stopped capturing changes without "
            "an error. Restart the bridge (stop it, then `cdc-bridge start`): the source resumes "
            "from its last saved position, nothing confirmed is lost"
        )
        log.error("%s", message)
        self._ended.append(running.label)
        self._report(running, "ended", message)

    def _run_worker(self, running: _Running, worker: Worker) -> None:
        with component(running.label):
            try:
                worker.run(self.stop_event)
            except RouteHalted as exc:
                self._halt(running, worker, exc)
            except BaseException as exc:
                self._record_failure(running, exc)
            finally:
                running.finished = True

    def _halt(self, running: _Running, worker: Worker, exc: RouteHalted) -> None:
        """Only this route stops (it cannot go on safely); the rest of the bridge runs on,
        and /readyz reports the route ``halted`` with the reason and the recovery command."""
        running.error = exc
        running.halted = True
        log.error("%s", exc)
        self._report(running, "halted", str(exc))
        try:
            worker.close()  # leave the consumer group: the recovery command needs it empty
        except Exception:
            log.exception("closing %s failed", running.label)

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
            self._watch_stalls()
            if components and all(r.finished for r in components):
                if any(r.halted for r in components):
                    continue  # stay up, so /readyz and the log say what stopped and why
                log.info("every source and route worker finished")
                break
        self.stop()

    def _watch_stalls(self) -> None:
        """Report a source whose records Kafka has confirmed none of for
        ``[kafka] stall_timeout_s`` (ERROR, state ``stalled``: /readyz 503), and clear it when
        confirmations come back. A producer waits for a missing topic forever, so topics it
        wrote that the cluster no longer has (deleted, or Kafka came back empty) are
        re-created, and the message says what was lost with them and how to restore it."""
        limit = self.config.kafka.stall_timeout_s
        now = time.monotonic()
        for running, _source, ctx, producer in self._sources:
            if running.finished or running.error is not None:
                continue
            stalled = ctx.stalled_for()
            stall = self._stalls.get(running.name)
            if stall is None:
                if stalled >= limit:
                    state_of = getattr(self.health, "source_state", None)
                    stall = self._stalls[running.name] = _Stall(
                        state_of(running.name) if state_of is not None else None,
                        since=now - stalled,
                    )
                    self._stalled(running, producer, stalled, stall)
            elif stalled == 0.0:
                del self._stalls[running.name]
                with component(running.label):
                    log.info(
                        "Kafka confirms the records of source %s again (stalled %.0fs)",
                        running.name,
                        now - stall.since,
                    )
                self._report(running, stall.previous or "streaming")
            elif now - stall.checked >= 10.0:
                self._stalled(running, producer, stalled, stall)

    def _stalled(
        self,
        running: _Running,
        producer: EventProducer,
        stalled: float,
        stall: _Stall,
    ) -> None:
        """Name the stall's cause (ERROR, /readyz detail) and re-create lost topics; again
        every 10 s while it lasts."""
        stall.checked = time.monotonic()
        waiting = producer.in_flight()
        bootstrap = self.config.kafka.bootstrap_servers
        try:
            lost = producer.admin.lost(timeout=3.0)
        except BridgeError:
            reason = f"Kafka at {bootstrap} does not answer"
            lost = []
        else:
            reason = "Kafka answers but does not confirm them"
        if lost:
            reason = (
                f"topic(s) {', '.join(lost)} no longer exist on Kafka (deleted, or the cluster "
                "lost its data); re-creating them. If the stall does not clear, restart the "
                "bridge: the source re-sends everything after its last confirmed position. "
                "Events Kafka had confirmed on those topics are gone with them: "
                f"{_resnapshot_hint(self.config, running.name)}"
            )
        detail = (
            f"source stalled: {waiting} record(s) sent to Kafka, none confirmed for "
            f"{stalled:.0f}s ([kafka] stall_timeout_s = {self.config.kafka.stall_timeout_s:g}); "
            f"{reason}. The source's position does not move meanwhile (nothing unconfirmed is "
            "acknowledged)"
        )
        with component(running.label):
            if detail != stall.detail or lost:
                log.error("%s", detail)
            if lost:
                try:
                    producer.admin.recreate(lost)
                except BridgeError as exc:
                    log.error("cannot re-create topic(s) %s: %s", ", ".join(lost), exc)
        stall.detail = detail
        self._report(running, "stalled", detail)

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
                # A stalled source's records will not be confirmed now: do not wait long.
                wait = 2.0 if running.name in self._stalls else deadline - time.monotonic()
                if not producer.flush(max(1.0, wait)):
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
        halted = [r.label for r in self._components() if r.halted]
        if halted:
            log.error("stopped with halted route(s) %s: see above for the recovery", halted)
        if self.store is not None:
            self.store.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
