"""Prometheus metrics, health state and the HTTP endpoint serving /metrics, /healthz, /readyz.

Components record through the module-level metric objects, once per *batch*, never per
record::

    from cdc_bridge import metrics
    metrics.source_events.labels(source="orders", op="c").inc(n)
    metrics.route_apply_seconds.labels(route="to-crm").observe(elapsed)

Values that are cheap to read but costly to push (events in flight, producer queue depth,
position age) are sampled at scrape time with :func:`sample`, so the hot path pays nothing.
Metrics live in prometheus-client's default registry (which also carries ``process_*`` and
``python_*``); every name starts with ``cdc_bridge_`` and uses base units (seconds, bytes).

:class:`Health` is what the runtime tells about its sources and routes; :class:`MetricsServer`
serves it as ``/healthz`` (the process answers) and ``/readyz`` (every source is streaming
and reaches its database, every route has joined its consumer group, no fatal error).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "REGISTRY",
    "Health",
    "MetricsServer",
    "bridge_fatal",
    "bridge_ready",
    "forget",
    "generate_latest",
    "kafka_client_errors",
    "kafka_delivery_errors",
    "kafka_producer_queue",
    "parse_address",
    "route_apply_seconds",
    "route_assigned_partitions",
    "route_batch_records",
    "route_consumer_lag",
    "route_records_applied",
    "route_records_dead_lettered",
    "route_records_filtered",
    "salesforce_api_calls",
    "salesforce_api_limit",
    "salesforce_api_remaining",
    "salesforce_api_usage",
    "salesforce_bulk_mode",
    "salesforce_quota_paused",
    "salesforce_records",
    "sample",
    "source_ack_age_seconds",
    "source_events",
    "source_events_in_flight",
    "source_incremental_snapshot_remaining",
    "source_incremental_snapshot_rows",
    "source_lag_bytes",
    "source_lag_seconds",
    "source_last_event_timestamp",
    "source_positions_lost",
    "source_retained_bytes",
    "source_snapshot_running",
    "source_up",
]

log = logging.getLogger(__name__)

# -- sources ---------------------------------------------------------------------------------

source_events = Counter(
    "cdc_bridge_source_events_total",
    "Change events captured and handed to Kafka, by operation (c, u, d, r = snapshot read, t).",
    ["source", "op"],
)
source_snapshot_running = Gauge(
    "cdc_bridge_source_snapshot_running",
    "1 while the source is taking a snapshot (op=r events count its progress), else 0.",
    ["source"],
)
source_incremental_snapshot_rows = Counter(
    "cdc_bridge_source_incremental_snapshot_rows_total",
    "Rows emitted by incremental snapshots (op=r, source.snapshot=incremental).",
    ["source"],
)
source_incremental_snapshot_remaining = Gauge(
    "cdc_bridge_source_incremental_snapshot_remaining_rows",
    "Estimated rows an incremental snapshot still has to read in its current table (0: idle).",
    ["source"],
)
source_positions_lost = Counter(
    "cdc_bridge_source_positions_lost_total",
    "Stored source positions the database no longer had (dropped slot, purged binlog, resume "
    "token out of the oplog); see the source's on_position_lost.",
    ["source"],
)
source_lag_bytes = Gauge(
    "cdc_bridge_source_lag_bytes",
    "Bytes of change log the database wrote that the source has not acknowledged "
    "(Postgres: current WAL - slot confirmed_flush_lsn; MySQL: binlog end - saved position).",
    ["source"],
)
source_lag_seconds = Gauge(
    "cdc_bridge_source_lag_seconds",
    "How far behind the database the source is: age of the last captured commit while "
    "changes are pending (MongoDB: cluster time - position's cluster time); 0 when caught up.",
    ["source"],
)
source_retained_bytes = Gauge(
    "cdc_bridge_source_retained_bytes",
    "Change log the database keeps for this source (Postgres: WAL held by the slot's "
    "restart_lsn; MySQL: binlog bytes from the saved file on).",
    ["source"],
)
source_last_event_timestamp = Gauge(
    "cdc_bridge_source_last_event_timestamp_seconds",
    "Commit time (Unix seconds) of the last event the source captured.",
    ["source"],
)
source_events_in_flight = Gauge(
    "cdc_bridge_source_events_in_flight",
    "Records produced to Kafka and not yet confirmed by the broker.",
    ["source"],
)
source_ack_age_seconds = Gauge(
    "cdc_bridge_source_ack_age_seconds",
    "Seconds since the source's acknowledged position last moved while records were pending "
    "(0 while everything sent is acknowledged).",
    ["source"],
)
source_up = Gauge(
    "cdc_bridge_source_up",
    "1 while the source runs and its database answers the monitor, else 0.",
    ["source"],
)

# -- routes ----------------------------------------------------------------------------------

route_records_applied = Counter(
    "cdc_bridge_route_records_applied_total",
    "Records the sink applied (written to the target).",
    ["route"],
)
route_records_filtered = Counter(
    "cdc_bridge_route_records_filtered_total",
    "Records the route skipped (ops not selected or filter false).",
    ["route"],
)
route_records_dead_lettered = Counter(
    "cdc_bridge_route_records_dead_lettered_total",
    "Records written to the route's dead-letter topic.",
    ["route"],
)
route_batch_records = Histogram(
    "cdc_bridge_route_batch_records",
    "Kafka records per batch the route processed.",
    ["route"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
route_apply_seconds = Histogram(
    "cdc_bridge_route_apply_duration_seconds",
    "Time to apply one batch to the sink, retries included.",
    ["route"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
route_consumer_lag = Gauge(
    "cdc_bridge_route_consumer_lag_records",
    "Records on the partition not yet committed by the route (high watermark - committed "
    "offset), for the partitions this process owns.",
    ["route", "topic", "partition"],
)
route_assigned_partitions = Gauge(
    "cdc_bridge_route_assigned_partitions",
    "Partitions of the route's consumer group assigned to this process.",
    ["route"],
)

# -- Salesforce sink -----------------------------------------------------------------------------

salesforce_api_calls = Counter(
    "cdc_bridge_salesforce_api_calls_total",
    "Salesforce API calls made by the sink, by kind (collections, bulk, query, describe, ...).",
    ["sink", "kind"],
)
salesforce_api_usage = Gauge(
    "cdc_bridge_salesforce_api_usage",
    "Daily API requests used, as the org reports it (Sforce-Limit-Info).",
    ["sink"],
)
salesforce_api_limit = Gauge(
    "cdc_bridge_salesforce_api_limit", "Daily API request limit of the org.", ["sink"]
)
salesforce_api_remaining = Gauge(
    "cdc_bridge_salesforce_api_remaining",
    "Daily API requests left (limit - usage) as last reported.",
    ["sink"],
)
salesforce_quota_paused = Gauge(
    "cdc_bridge_salesforce_quota_paused",
    "1 while the sink pauses because the daily API quota is nearly used up.",
    ["sink"],
)

salesforce_bulk_mode = Gauge(
    "cdc_bridge_salesforce_bulk_mode",
    "1 while a route sends through Bulk API 2.0 jobs (backlog), 0 for sObject Collections.",
    ["sink", "sobject"],
)
salesforce_records = Counter(
    "cdc_bridge_salesforce_records_total",
    "Collapsed records sent by the Salesforce sink (outcome upsert, delete) and records it reported failed (outcome failed).",
    ["sink", "sobject", "outcome"],
)

# -- Kafka producer --------------------------------------------------------------------------

kafka_delivery_errors = Counter(
    "cdc_bridge_kafka_delivery_errors_total",
    "Records the broker refused (the source stops: nothing after them is acknowledged).",
    ["client"],
)
kafka_client_errors = Counter(
    "cdc_bridge_kafka_client_errors_total",
    "Errors reported by the Kafka client (broker down, transport, auth), fatal or not.",
    ["client", "fatal"],
)
kafka_producer_queue = Gauge(
    "cdc_bridge_kafka_producer_queue_messages",
    "Records waiting in the producer's queue (librdkafka) for delivery.",
    ["client"],
)

# -- the bridge --------------------------------------------------------------------------------

bridge_ready = Gauge("cdc_bridge_ready", "1 when /readyz answers 200, else 0.")
bridge_fatal = Gauge("cdc_bridge_fatal", "1 after a component failed for good (see the logs).")

_BY_LABEL: dict[str, list[Any]] = {
    "source": [
        source_events,
        source_snapshot_running,
        source_incremental_snapshot_rows,
        source_incremental_snapshot_remaining,
        source_lag_bytes,
        source_lag_seconds,
        source_retained_bytes,
        source_last_event_timestamp,
        source_events_in_flight,
        source_ack_age_seconds,
        source_up,
    ],
    "route": [
        route_records_applied,
        route_records_filtered,
        route_records_dead_lettered,
        route_batch_records,
        route_apply_seconds,
        route_consumer_lag,
        route_assigned_partitions,
    ],
    "sink": [
        salesforce_api_calls,
        salesforce_api_usage,
        salesforce_api_limit,
        salesforce_api_remaining,
        salesforce_quota_paused,
        salesforce_bulk_mode,
        salesforce_records,
    ],
    "client": [kafka_delivery_errors, kafka_client_errors, kafka_producer_queue],
}


def sample(gauge: Gauge, fn: Callable[[], float], **labels: str) -> None:
    """Read ``fn()`` at scrape time for ``gauge{labels}`` (errors read as NaN, never raise).

    A bound method is held weakly: the registry must not keep a producer or a source context
    (and their Kafka clients) alive after they are dropped; the series then reads NaN.
    """
    ref: Callable[[], Callable[[], float] | None] = (
        weakref.WeakMethod(fn) if inspect.ismethod(fn) else lambda: fn
    )

    def safe() -> float:
        target = ref()
        if target is None:
            return float("nan")
        try:
            return float(target())
        except Exception:
            return float("nan")

    gauge.labels(**labels).set_function(safe)


def forget(label: str, value: str) -> None:
    """Drop every series whose ``label`` is ``value`` (a source, route or client went away)."""
    for metric in _BY_LABEL.get(label, ()):
        names = metric._labelnames
        idx = names.index(label)
        with metric._lock:
            keys = [k for k in metric._metrics if k[idx] == value]
        for key in keys:
            try:
                metric.remove(*key)
            except KeyError:
                pass


# -- health ----------------------------------------------------------------------------------

#: Source states that count as ready.
SOURCE_READY = frozenset({"snapshot", "streaming", "finished"})


@dataclass
class _Component:
    state: str = "starting"
    detail: str = ""
    reachable: bool = True
    since: float = field(default_factory=time.time)


class Health:
    """Thread-safe view of what runs: sources, routes, fatal errors; the input of /readyz.

    Source states: ``starting``, ``snapshot``, ``streaming``, ``retrying``, ``failed``,
    ``stopped``, ``stalled`` (Kafka confirms none of its records), ``ended`` (it stopped
    capturing unexpectedly), ``finished`` (``snapshot = "initial_only"`` done). Route states:
    ``starting``, ``assigned`` (joined its group), ``retrying``, ``halted`` (stopped on its
    own, e.g. its topic was re-created), ``failed``, ``stopped``. The monitor reports
    separately whether each source's database
    answers (:meth:`source_reachable`), so a source that retries inside ``run`` still flips
    readiness when it loses its database.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, _Component] = {}
        self._routes: dict[str, _Component] = {}
        self._fatal: str | None = None
        self._notes: dict[str, str] = {}
        # Who this is (set by the runtime): `cdc-bridge status` checks that the bridge
        # answering on the metrics address is the one its config describes.
        self.identity: dict[str, str] = {}

    def note(self, key: str, message: str | None) -> None:
        """Set (or with None clear) a note shown in /readyz ``notes``: something worth
        knowing that does not make the bridge unready (e.g. a route with nothing to read)."""
        with self._lock:
            if message is None:
                self._notes.pop(key, None)
            else:
                self._notes[key] = message

    def source(self, name: str, state: str, detail: str = "") -> None:
        with self._lock:
            c = self._sources.setdefault(name, _Component())
            if c.state != state:
                c.since = time.time()
            c.state, c.detail = state, detail
            up = state in SOURCE_READY and c.reachable
        source_up.labels(source=name).set(1 if up else 0)

    def source_reachable(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            c = self._sources.setdefault(name, _Component())
            c.reachable = ok
            if not ok:
                c.detail = detail
            elif c.detail == detail or not detail:
                c.detail = "" if c.state in SOURCE_READY else c.detail
            up = c.state in SOURCE_READY and ok
        source_up.labels(source=name).set(1 if up else 0)

    def route(self, name: str, state: str, detail: str = "") -> None:
        with self._lock:
            c = self._routes.setdefault(name, _Component())
            if c.state != state:
                c.since = time.time()
            c.state, c.detail = state, detail

    def source_state(self, name: str) -> str | None:
        with self._lock:
            c = self._sources.get(name)
            return c.state if c else None

    def route_state(self, name: str) -> str | None:
        with self._lock:
            c = self._routes.get(name)
            return c.state if c else None

    def fatal(self, message: str) -> None:
        with self._lock:
            self._fatal = message
        bridge_fatal.set(1)

    def snapshot(self) -> dict[str, Any]:
        """``{"ready": bool, "fatal": str|None, "sources": {...}, "routes": {...},
        "notes": [str]}``."""
        with self._lock:
            sources = {
                n: {
                    "state": c.state,
                    "reachable": c.reachable,
                    "detail": c.detail,
                    "since": c.since,
                    "ready": c.state in SOURCE_READY and c.reachable,
                }
                for n, c in self._sources.items()
            }
            routes = {
                n: {
                    "state": c.state,
                    "detail": c.detail,
                    "since": c.since,
                    "ready": c.state == "assigned",
                }
                for n, c in self._routes.items()
            }
            fatal = self._fatal
            notes = [self._notes[k] for k in sorted(self._notes)]
        ready = (
            fatal is None
            and all(s["ready"] for s in sources.values())
            and all(r["ready"] for r in routes.values())
        )
        bridge_ready.set(1 if ready else 0)
        return {
            **self.identity,
            "ready": ready,
            "fatal": fatal,
            "sources": sources,
            "routes": routes,
            "notes": notes,
        }

    def ready(self) -> bool:
        return bool(self.snapshot()["ready"])


# -- HTTP endpoint -------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``":9464"`` (all interfaces), ``"[::1]:9464"`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:9464, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body = generate_latest(self.server.registry)
            self._reply(200, body, CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._reply(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            snap = self.server.health.snapshot()
            body = orjson.dumps(snap, option=orjson.OPT_INDENT_2) + b"\n"
            self._reply(200 if snap["ready"] else 503, body, "application/json")
        else:
            self._reply(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

    do_HEAD = do_GET

    def _reply(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics endpoint: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    registry: CollectorRegistry
    health: Health


class MetricsServer:
    """Serves /metrics, /healthz and /readyz on ``address`` in a daemon thread.

    ``MetricsServer("127.0.0.1:0", health).start()`` picks a free port (``.port``).
    """

    def __init__(
        self, address: str, health: Health | None = None, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.host, self._port = parse_address(address)
        self.health = health or Health()
        self.registry = registry
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MetricsServer:
        """Bind and serve; raises ConfigError when the address is taken or not local."""
        from cdc_bridge.errors import ConfigError

        try:
            server = _Server((self.host, self._port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"bridge.metrics: cannot listen on {self.host}:{self._port} ({exc.strerror or exc}); "
                'choose a free address, e.g. metrics = "127.0.0.1:9465", or "" to switch it off'
            ) from None
        server.registry = self.registry
        server.health = self.health
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics-http"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("metrics on %s/metrics (health: /healthz, /readyz)", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
