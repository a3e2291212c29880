"""The demo's live terminal view (rich): sources, routes, dead letters, Salesforce API calls.

:class:`Probe` samples a running demo -- the in-process bridge's counters, the traffic
generator's tallies, Kafka consumer-group positions and the Salesforce emulator's call count --
into a :class:`Snapshot`; :func:`render` turns one into a rich renderable.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["Probe", "RouteStats", "Snapshot", "SourceStats", "render"]

log = logging.getLogger(__name__)


@dataclass
class SourceStats:
    name: str
    where: str  # "Postgres orders"
    written: int = 0  # row changes the generator wrote
    captured: int = 0  # change events the source put on Kafka
    lag_s: float = 0.0  # how long the newest write has waited to be captured
    state: str = "starting"


@dataclass
class RouteStats:
    name: str
    target: str
    applied: int = 0
    skipped: int = 0
    dead: int = 0
    lag: int | None = None  # records on Kafka the route has not committed
    state: str = "starting"


@dataclass
class Snapshot:
    phase: str
    elapsed: float
    duration: float | None
    rate: float
    sources: list[SourceStats] = field(default_factory=list)
    routes: list[RouteStats] = field(default_factory=list)
    sf_calls: int = 0
    sf_limit: int = 0
    notes: list[str] = field(default_factory=list)
    config_path: str = ""
    fourth_source: str = ""
    metrics_url: str = ""

    @property
    def dead_letters(self) -> int:
        return sum(r.dead for r in self.routes)

    @property
    def route_lag(self) -> int:
        return sum(r.lag or 0 for r in self.routes)


class _KafkaLag:
    """Consumer-group lag per route: committed offsets against the true end of each partition.

    The end is learnt by tailing every topic (assigned partitions, no consumer group): offset
    + 1 of the last record read. Brokers' list-offsets answers are not used because the
    embedded broker reports the base offset of the last batch + 1 there.
    """

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Consumer

        self.bootstrap = bootstrap
        self._tail = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "demo-dashboard-" + uuid.uuid4().hex[:8],
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
            }
        )
        self._groups: dict[str, Any] = {}
        self.ends: dict[tuple[str, int], int] = {}
        self.assigned: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        refreshed = 0.0
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 1.0:
                refreshed = time.monotonic()
                try:
                    md = self._tail.list_topics(timeout=5)
                    new = [
                        (name, p)
                        for name, t in md.topics.items()
                        if not name.startswith("__") and t.error is None
                        for p in t.partitions
                        if (name, p) not in self.assigned
                    ]
                    if new:
                        self._tail.incremental_assign(
                            [TopicPartition(t, p, OFFSET_BEGINNING) for t, p in new]
                        )
                        with self._lock:
                            self.assigned.update(new)
                except Exception as exc:
                    log.debug("tail: %s", exc)
            for msg in self._tail.consume(num_messages=500, timeout=0.2):
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if msg.error() is None and topic and partition is not None and offset is not None:
                    with self._lock:
                        tp = (topic, partition)
                        self.ends[tp] = max(self.ends.get(tp, 0), offset + 1)

    def _group_consumer(self, group: str) -> Any:
        from confluent_kafka import Consumer

        c = self._groups.get(group)
        if c is None:
            c = self._groups[group] = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": group,
                    "enable.auto.commit": False,
                }
            )
        return c

    def lag(self, group: str, patterns: Sequence[str]) -> int:
        from confluent_kafka import TopicPartition

        with self._lock:
            tps = [
                (t, p)
                for t, p in self.assigned
                if any(fnmatch.fnmatchcase(t, pat) for pat in patterns)
            ]
            ends = {tp: self.ends.get(tp, 0) for tp in tps}
        if not tps:
            return 0
        committed = self._group_consumer(group).committed(
            [TopicPartition(t, p) for t, p in tps], timeout=5
        )
        total = 0
        for tp in committed:
            done = tp.offset if tp.offset >= 0 else 0
            total += max(0, ends[(tp.topic, tp.partition)] - done)
        return total

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self._groups.values():
            c.close()
        self._tail.close()


class Probe:
    """Samples the running demo (bridge, traffic, Kafka, Salesforce emulator)."""

    def __init__(
        self,
        *,
        bridge: Any,
        traffic: Any,
        emulator: Any,
        kafka_bootstrap: str,
        config: Any,
        where: dict[str, str],
        config_path: str = "",
        fourth_source: str = "",
    ) -> None:
        self.bridge = bridge
        self.traffic = traffic
        self.emulator = emulator
        self.config = config
        self.where = where
        self.config_path = config_path
        self.fourth_source = fourth_source
        self._kafka = _KafkaLag(kafka_bootstrap)
        self._lag_cache: dict[str, int] = {}
        self._lag_at = 0.0
        self.phase = "starting"

    def close(self) -> None:
        self._kafka.close()

    def _route_lags(self) -> dict[str, int]:
        if time.monotonic() - self._lag_at < 1.5:
            return self._lag_cache
        from cdc_bridge.routes import compile_route

        try:
            lags = {}
            for route in self.config.routes:
                compiled = compile_route(route, self.config.bridge.name)
                patterns = route.from_ if isinstance(route.from_, list) else [route.from_]
                lags[compiled.name] = self._kafka.lag(compiled.group_id, patterns)
            self._lag_cache = lags
        except Exception as exc:  # the dashboard must never stop the demo
            log.debug("lag probe failed: %s", exc)
        self._lag_at = time.monotonic()
        return self._lag_cache

    def sample(self) -> Snapshot:
        traffic = self.traffic
        snap = Snapshot(
            phase=self.phase,
            elapsed=traffic.elapsed if traffic is not None else 0.0,
            duration=traffic.duration if traffic is not None else None,
            rate=traffic.rate if traffic is not None else 0.0,
            config_path=self.config_path,
            fourth_source=self.fourth_source,
        )
        now = time.monotonic()
        contexts = {}
        for running, _source, ctx, _producer in getattr(self.bridge, "_sources", []):
            contexts[ctx.name] = (running, ctx)
        for scfg in self.config.sources:
            st = SourceStats(scfg.name, self.where.get(scfg.name, scfg.kind))
            if traffic is not None:
                tally = traffic.tallies.get(scfg.name)
                st.written = tally.changes if tally else 0
                last_write = traffic.last_write.get(scfg.name, 0.0)
            else:
                last_write = 0.0
            running_ctx = contexts.get(scfg.name)
            if running_ctx is not None:
                running, ctx = running_ctx
                st.captured = ctx.events_emitted
                if running.error is not None:
                    st.state = "failed"
                elif running.finished:
                    st.state = "stopped"
                else:
                    st.state = "streaming" if ctx.events_emitted else "starting"
                # Writes newer than the last capture are waiting: lag is how long since the
                # source last caught up (0 when everything written is on Kafka).
                pending = last_write > ctx.last_emit_monotonic
                st.lag_s = max(0.0, now - ctx.last_emit_monotonic) if pending else 0.0
            snap.sources.append(st)
        lags = self._route_lags()
        for running, worker in getattr(self.bridge, "_workers", []):
            name = getattr(worker, "name", "?")
            route_cfg = getattr(getattr(worker, "route", None), "config", None)
            rs = RouteStats(name, str(getattr(route_cfg, "to", "")))
            rs.applied = int(getattr(worker, "applied", 0))
            rs.skipped = int(getattr(worker, "skipped", 0))
            rs.dead = int(getattr(worker, "dead", 0))
            rs.lag = lags.get(name)
            if running.error is not None:
                rs.state = "failed"
            elif running.finished:
                rs.state = "stopped"
            else:
                rs.state = "running"
            snap.routes.append(rs)
        server = getattr(self.bridge, "metrics_server", None)
        url = getattr(server, "url", "") if server is not None else ""
        if isinstance(url, str) and url:
            snap.metrics_url = url + "/metrics"
        if self.emulator is not None:
            snap.sf_calls = int(self.emulator.api_usage)
            snap.sf_limit = int(self.emulator.daily_limit)
        if traffic is not None:
            snap.notes = list(traffic.notes[-6:])
        return snap


def _fmt_lag(seconds: float) -> str:
    if seconds < 0.05:
        return "0.0s"
    return f"{seconds:.1f}s"


def render(snap: Snapshot) -> RenderableType:
    """The dashboard for one snapshot."""
    if snap.duration is not None:
        clock = f"{snap.elapsed:5.1f}s / {snap.duration:.0f}s"
    else:
        clock = f"{snap.elapsed:5.1f}s (--follow: Ctrl-C to stop and verify)"
    head = Text.assemble(
        ("cdc-bridge demo", "bold"),
        f"   {snap.phase}   ",
        (clock, "cyan"),
        f"   traffic {snap.rate:g} transactions/s",
    )
    # Short headers and no edge padding: both tables fit an 80-column terminal uncut.
    sources = Table(
        title="sources -> Kafka (transactions written, events captured)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    sources.add_column("source", no_wrap=True)
    sources.add_column("database", no_wrap=True)
    sources.add_column("written", justify="right", no_wrap=True)
    sources.add_column("captured", justify="right", no_wrap=True)
    sources.add_column("lag", justify="right", no_wrap=True)
    sources.add_column("state", no_wrap=True)
    for s in snap.sources:
        sources.add_row(
            s.name,
            s.where,
            str(s.written),
            str(s.captured),
            _fmt_lag(s.lag_s),
            _state(s.state),
        )
    routes = Table(
        title="Kafka -> routes -> targets",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    routes.add_column("route", overflow="fold")
    routes.add_column("sink", no_wrap=True)
    routes.add_column("applied", justify="right", no_wrap=True)
    routes.add_column("filtered", justify="right", no_wrap=True)
    routes.add_column("DLQ", justify="right", no_wrap=True)
    routes.add_column("lag", justify="right", no_wrap=True)
    routes.add_column("state", no_wrap=True)
    for r in snap.routes:
        routes.add_row(
            r.name,
            r.target,
            str(r.applied),
            str(r.skipped),
            Text(str(r.dead), style="bold red" if r.dead else ""),
            "-" if r.lag is None else str(r.lag),
            _state(r.state),
        )
    footer = Text.assemble(
        "dead letters: ",
        (str(snap.dead_letters), "bold red" if snap.dead_letters else "green"),
        f"   route lag: {snap.route_lag} records",
        f"   Salesforce API calls: {snap.sf_calls}",
        (f" of {snap.sf_limit}/day" if snap.sf_limit else ""),
    )
    parts: list[RenderableType] = [head, sources, routes, footer]
    if snap.notes:
        parts.append(Text("\n".join(snap.notes), style="dim"))
    info = []
    if snap.fourth_source:
        info.append(snap.fourth_source)
    if snap.config_path:
        info.append(f"config: {snap.config_path}")
    if snap.metrics_url:
        info.append(f"metrics: {snap.metrics_url} (Prometheus; /healthz, /readyz)")
    if info:
        parts.append(Text("\n".join(info), style="dim"))
    return Panel(Group(*parts), border_style="blue", expand=False)


def _state(state: str) -> Text:
    style = {"failed": "bold red", "streaming": "green", "running": "green"}.get(state, "yellow")
    return Text(state, style=style)
