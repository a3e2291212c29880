"""``cdc-bridge status``: sources, routes and the state store, read from the databases, Kafka
and the state store (not from a running bridge, so it works wherever the config does).

Per source kind, one probe (registered with the kind in ``cdc_bridge.registry``, living next
to the connector: ``sources/<kind>/status.py``) reads what the database keeps for the bridge:
the Postgres slot, the MySQL binlogs against the saved position, the MongoDB oplog window. Routes: consumer lag per partition (high watermark - committed offset of the
route's group) and the dead-letter topic's size. The runtime's monitor calls the same probes
to keep the lag gauges of ``cdc_bridge.metrics`` current.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cdc_bridge.config import mask_url
from cdc_bridge.kafka import with_logger
from cdc_bridge.registry import SOURCE_KINDS

__all__ = [
    "AT_RISK",
    "DEFAULT_RETAINED_WARN_BYTES",
    "INACTIVE",
    "LAGGING",
    "LOST",
    "OK",
    "UNREACHABLE",
    "BridgeStatus",
    "PartitionLag",
    "RouteStatus",
    "SourceStatus",
    "StateStatus",
    "collect",
    "human_bytes",
    "mask",
    "probe_source",
    "route_group",
    "route_lag",
]

log = logging.getLogger(__name__)

GiB = 1024**3
DEFAULT_RETAINED_WARN_BYTES = 10 * GiB

# Source states, worst last: what `status` prints and `--json` carries.
OK, LAGGING, INACTIVE, AT_RISK, LOST, UNREACHABLE = (
    "ok",
    "lagging",
    "inactive",
    "at_risk",
    "lost",
    "unreachable",
)


@dataclass
class SourceStatus:
    """What the database keeps for one source and how far behind the bridge is."""

    name: str
    kind: str
    state: str = OK
    position: str | None = None  # the database's view (slot confirmed LSN, saved binlog pos)
    saved_position: str | None = None  # the state store's view
    head: str | None = None  # the database's current end (WAL LSN, binlog file:pos)
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    retained_bytes: int | None = None
    snapshot: str = "unknown"  # done, running, not started
    risk: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # next offset the group will read; None: nothing committed
    high: int
    low: int

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None else self.low
        return max(0, self.high - start)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lag"] = self.lag
        return d


@dataclass
class RouteStatus:
    name: str
    group_id: str
    sink: str
    partitions: list[PartitionLag] = field(default_factory=list)
    dlq_topic: str = ""
    dlq_records: int | None = None  # records on the dead-letter topic
    dlq_pending: int | None = None  # dead letters in the state store index not yet replayed
    error: str | None = None

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group_id": self.group_id,
            "sink": self.sink,
            "lag": self.lag,
            "partitions": [p.to_dict() for p in self.partitions],
            "dlq_topic": self.dlq_topic,
            "dlq_records": self.dlq_records,
            "dlq_pending": self.dlq_pending,
            "error": self.error,
        }


@dataclass
class StateStatus:
    url: str
    revision: str | None = None
    head_revision: str | None = None
    offsets: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # source -> {offset, updated_at}
    dead_letters: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BridgeStatus:
    bridge: str
    sources: list[SourceStatus]
    routes: list[RouteStatus]
    state: StateStatus
    taken_at: float = field(default_factory=time.time)

    @property
    def healthy(self) -> bool:
        """False when a source is at risk, lost or unreachable, or something could not be read."""
        bad = {AT_RISK, LOST, UNREACHABLE}
        return (
            not any(s.state in bad for s in self.sources)
            and not any(r.error for r in self.routes)
            and self.state.error is None
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "taken_at": self.taken_at,
            "healthy": self.healthy,
            "sources": [s.to_dict() for s in self.sources],
            "routes": [r.to_dict() for r in self.routes],
            "state": self.state.to_dict(),
        }


def mask(text: str) -> str:
    """Hide passwords in URLs and libpq strings (error messages may quote the DSN)."""
    return str(mask_url(text))


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def probe_source(
    cfg: Any,
    offset: Mapping[str, Any] | None,
    *,
    warn_bytes: int = DEFAULT_RETAINED_WARN_BYTES,
) -> SourceStatus:
    """Status of one ``[[sources]]`` entry; ``offset``: its saved position (state store)."""
    kind = SOURCE_KINDS.get(cfg.kind)
    probe = kind.status_probe() if kind is not None else None
    if probe is None:
        return SourceStatus(cfg.name, cfg.kind, state=OK, detail="no status probe for this kind")
    try:
        return probe(cfg, offset, warn_bytes)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return SourceStatus(
            cfg.name,
            cfg.kind,
            state=UNREACHABLE,
            detail=mask(f"{exc.__class__.__name__}: {first}"),
        )


# -- routes ----------------------------------------------------------------------------------


def route_group(route: Any, bridge: str) -> tuple[str, str]:
    """(route name, consumer group) as the route engine derives them."""
    try:
        from cdc_bridge.routes import route_name

        name = route_name(route)
    except ImportError:
        name = route.name or f"{route.from_}-to-{route.to}"
    return name, route.group_id or f"{bridge}.{name}"


def _patterns(route: Any) -> list[str]:
    return [route.from_] if isinstance(route.from_, str) else list(route.from_)


def matching_topics(topics: Iterable[str], patterns: Iterable[str]) -> list[str]:
    pats = list(patterns)
    return sorted(t for t in topics if any(fnmatch.fnmatchcase(t, p) for p in pats))


def route_lag(
    consumer: Any,
    group_topics: list[str],
    *,
    partitions: Iterable[tuple[str, int]] | None = None,
    timeout: float = 10.0,
) -> list[PartitionLag]:
    """Lag of ``consumer``'s group over ``group_topics`` (or just ``partitions``).

    ``consumer``: a confluent-kafka Consumer created with the route's ``group.id`` that never
    subscribes (so it does not join the group); it reads committed offsets and watermarks.
    """
    from confluent_kafka import TopicPartition

    if partitions is None:
        md = consumer.list_topics(timeout=timeout)
        tps = [
            TopicPartition(t, p)
            for t in group_topics
            if t in md.topics and md.topics[t].error is None
            for p in sorted(md.topics[t].partitions)
        ]
    else:
        tps = [TopicPartition(t, p) for t, p in partitions]
    if not tps:
        return []
    committed = consumer.committed(tps, timeout=timeout)
    out = []
    for tp in committed:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(tp.topic, tp.partition), timeout=timeout, cached=False
        )
        out.append(
            PartitionLag(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else None, high, low)
        )
    return out


def _topic_size(consumer: Any, topic: str, timeout: float) -> int | None:
    from confluent_kafka import TopicPartition

    md = consumer.list_topics(topic, timeout=timeout)
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    total = 0
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        total += max(0, high - low)
    return total


def _routes(cfg: Any, store: Any, timeout: float) -> list[RouteStatus]:
    from confluent_kafka import Consumer

    out = []
    base = dict(cfg.kafka.consumer)
    topics: list[str] | None = None
    for route in cfg.routes:
        name, group = route_group(route, cfg.bridge.name)
        rs = RouteStatus(name, group, route.to, dlq_topic=f"{cfg.bridge.name}.dlq.{name}")
        conf = {
            **base,
            "bootstrap.servers": cfg.kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
        }
        try:
            consumer = Consumer(with_logger(conf, "cdc_bridge.kafka.status"))
        except Exception as exc:
            rs.error = f"Kafka consumer: {exc}"
            out.append(rs)
            continue
        try:
            if topics is None:
                topics = list(consumer.list_topics(timeout=timeout).topics)
            rs.partitions = route_lag(
                consumer, matching_topics(topics, _patterns(route)), timeout=timeout
            )
            rs.dlq_records = _topic_size(consumer, rs.dlq_topic, timeout)
        except Exception as exc:
            rs.error = f"cannot read the consumer group from Kafka: {exc}"
        finally:
            consumer.close()
        if store is not None:
            try:
                rs.dlq_pending = store.count_dead_letters(name)
            except Exception as exc:
                log.debug("dead letters of %s: %s", name, exc)
        out.append(rs)
    return out


# -- state store -------------------------------------------------------------------------------


def _open_state(url: str) -> tuple[Any, StateStatus]:
    st = StateStatus(mask(url))
    try:
        from cdc_bridge.state import StateStore

        store = StateStore(url)
        st.revision = store.current_revision()
        st.head_revision = store.head_revision()
        if st.revision is None:
            st.error = "the state store has no tables yet (run `cdc-bridge migrate` or start)"
            return store, st
        st.offsets = {
            name: {"offset": off, "updated_at": ts.isoformat()}
            for name, (off, ts) in store.offsets().items()
        }
        st.dead_letters = store.count_dead_letters()
        return store, st
    except Exception as exc:
        st.error = mask(f"cannot read the state store: {exc}".splitlines()[0])
        return None, st


def collect(
    cfg: Any, *, timeout: float = 10.0, warn_bytes: int = DEFAULT_RETAINED_WARN_BYTES
) -> BridgeStatus:
    """Everything ``cdc-bridge status`` shows, for the loaded config ``cfg``."""
    store, state = _open_state(cfg.bridge.state)
    try:
        sources = []
        for src in cfg.sources:
            saved = (state.offsets.get(src.name) or {}).get("offset")
            sources.append(probe_source(src, saved, warn_bytes=warn_bytes))
        routes = _routes(cfg, store if state.error is None else None, timeout)
    finally:
        if store is not None:
            store.close()
    return BridgeStatus(cfg.bridge.name, sources, routes, state)


# -- rendering -------------------------------------------------------------------------------

_STYLE = {
    OK: "green",
    LAGGING: "yellow",
    INACTIVE: "yellow",
    AT_RISK: "bold red",
    LOST: "bold red",
    UNREACHABLE: "bold red",
}


def render(status: BridgeStatus, console: Any) -> None:
    """One screen of rich tables: sources, routes, state store."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"sources of bridge {status.bridge}", title_justify="left")
    for col in ("source", "kind", "state", "position", "lag", "retained", "snapshot", "notes"):
        t.add_column(col)
    for s in status.sources:
        lag = []
        if s.lag_bytes is not None:
            lag.append(human_bytes(s.lag_bytes))
        if s.lag_seconds is not None:
            lag.append(f"{s.lag_seconds:.0f} s")
        notes = s.risk or s.detail
        t.add_row(
            escape(s.name),
            s.kind,
            f"[{_STYLE.get(s.state, 'white')}]{s.state}[/]",
            escape(s.position or s.saved_position or "-"),
            " / ".join(lag) or "-",
            human_bytes(s.retained_bytes),
            s.snapshot,
            escape(notes),
        )
    if not status.sources:
        t.add_row("(none)", "", "", "", "", "", "", "")
    console.print(t)

    r = Table(title="routes", title_justify="left")
    for col in ("route", "sink", "group", "partitions", "lag", "dead letters", "notes"):
        r.add_column(col)
    for rs in status.routes:
        dead = "-" if rs.dlq_records is None else str(rs.dlq_records)
        if rs.dlq_pending:
            dead += f" ({rs.dlq_pending} not replayed)"
        lag_style = "green" if rs.lag == 0 else "yellow"
        r.add_row(
            escape(rs.name),
            escape(rs.sink),
            escape(rs.group_id),
            str(len(rs.partitions)),
            f"[{lag_style}]{rs.lag}[/]",
            dead,
            escape(rs.error or ""),
        )
    if not status.routes:
        r.add_row("(none)", "", "", "", "", "", "")
    console.print(r)

    st = status.state
    line = f"state store {escape(st.url)}: "
    if st.error:
        line += f"[bold red]{escape(st.error)}[/]"
    else:
        rev = st.revision or "-"
        if st.head_revision and st.revision != st.head_revision:
            rev += f" (upgrade to {st.head_revision} with `cdc-bridge migrate`)"
        line += (
            f"revision {rev}, {len(st.offsets)} saved position(s), "
            f"{st.dead_letters} dead letter(s) indexed"
        )
    console.print(line)
