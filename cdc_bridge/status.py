"""``cdc-bridge status``: sources, routes and the state store, read from the databases, Kafka
and the state store (not from a running bridge, so it works wherever the config does).

Per source kind, one probe reads what the database keeps for the bridge: the Postgres slot
(confirmed and restart LSNs against the current WAL, ``wal_status``), the MySQL binlogs
against the saved position, the MongoDB oplog window and cluster time against the saved
resume point. Routes: consumer lag per partition (high watermark - committed offset of the
route's group) and the dead-letter topic's size. The runtime's monitor calls the same probes
to keep the lag gauges of ``cdc_bridge.metrics`` current.

What only the running bridge knows (a source stalled on Kafka, a source that ended, a route
that stopped) comes from its ``/readyz`` at ``[bridge] metrics`` when a bridge answers there:
each source and route then carries the bridge's state and detail, and a bridge that is not
ready makes the status unhealthy.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from cdc_bridge.kafka import with_logger

__all__ = [
    "DEFAULT_RETAINED_WARN_BYTES",
    "BridgeStatus",
    "LiveStatus",
    "PartitionLag",
    "RouteStatus",
    "SourceStatus",
    "StateStatus",
    "collect",
    "probe_bridge",
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
    bridge_state: str | None = None  # the running bridge's view (/readyz), if one answers
    bridge_detail: str = ""

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
    bridge_state: str | None = None  # the running bridge's view (/readyz), if one answers
    bridge_detail: str = ""

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
            "bridge_state": self.bridge_state,
            "bridge_detail": self.bridge_detail,
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
class LiveStatus:
    """The running bridge's own view, read from its ``/readyz`` (``[bridge] metrics``)."""

    url: str
    answered: bool = False
    ready: bool | None = None
    fatal: str | None = None
    problems: list[str] = field(default_factory=list)  # "source x: stalled: ..." lines
    error: str | None = None  # why nothing answered
    document: dict[str, Any] = field(default_factory=dict, repr=False)  # /readyz as read

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["document"]
        return out


@dataclass
class BridgeStatus:
    bridge: str
    sources: list[SourceStatus]
    routes: list[RouteStatus]
    state: StateStatus
    taken_at: float = field(default_factory=time.time)
    live: LiveStatus | None = None

    @property
    def healthy(self) -> bool:
        """False when a source is at risk, lost or unreachable, something could not be read,
        or the running bridge (when one answers) is not ready."""
        bad = {AT_RISK, LOST, UNREACHABLE}
        return (
            not any(s.state in bad for s in self.sources)
            and not any(r.error for r in self.routes)
            and self.state.error is None
            and not (self.live is not None and self.live.answered and not self.live.ready)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "taken_at": self.taken_at,
            "healthy": self.healthy,
            "sources": [s.to_dict() for s in self.sources],
            "routes": [r.to_dict() for r in self.routes],
            "state": self.state.to_dict(),
            "running": self.live.to_dict() if self.live is not None else None,
        }


def _mask(text: str) -> str:
    """Hide passwords in URLs and libpq strings (error messages may quote the DSN)."""
    import cdc_bridge.config as config

    mask_url = getattr(config, "mask_url", None)
    if mask_url is not None:
        return str(mask_url(text))
    import re

    return re.sub(r"(://[^/@:\s]*:)[^@\s]*@", r"\1***@", text)


def _secret(value: Any) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


# -- Postgres ------------------------------------------------------------------------------


def _postgres(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    import psycopg

    st = SourceStatus(cfg.name, "postgres")
    slot = getattr(cfg, "slot", None) or getattr(cfg, "slot_name", None) or f"cdc_bridge_{cfg.name}"
    with psycopg.connect(_secret(cfg.dsn), autocommit=True, connect_timeout=5) as conn:
        head = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        st.head = head[0] if head else None
        row = conn.execute(
            "SELECT active, confirmed_flush_lsn::text,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
            " wal_status, safe_wal_size"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
    if row is None:
        st.state = INACTIVE
        st.detail = f"no replication slot {slot!r} (created when the source first starts)"
        return st
    active, confirmed, lag, retained, wal_status, safe_size = row
    st.position = confirmed
    st.lag_bytes = None if lag is None else int(lag)
    st.retained_bytes = None if retained is None else int(retained)
    st.state = OK if active else INACTIVE
    st.detail = f"slot {slot} {'active' if active else 'inactive (no bridge streaming)'}"
    if wal_status == "lost":
        st.state = LOST
        st.risk = (
            f"slot {slot}: the WAL it needs was removed (max_slot_wal_keep_size); "
            'the source must take a new snapshot: with snapshot = "when_needed" it does so '
            "at its next start, otherwise stop the bridge and run `cdc-bridge postgres "
            f"drop-slot --source {cfg.name} --config <routes.toml>` before starting it"
        )
    elif wal_status == "unreserved":
        st.state = AT_RISK
        st.risk = f"slot {slot}: WAL beyond max_slot_wal_keep_size, removed at the next checkpoint"
    elif st.retained_bytes is not None and st.retained_bytes > warn_bytes:
        st.state = AT_RISK
        st.risk = (
            f"slot {slot} holds {_human(st.retained_bytes)} of WAL (> {_human(warn_bytes)}): "
            "the disk fills while the bridge is behind or stopped"
        )
        if safe_size is not None:
            st.risk += f"; {_human(int(safe_size))} left before max_slot_wal_keep_size"
    if offset:
        st.saved_position = str(offset.get("lsn"))
        st.snapshot = "done" if offset.get("snapshot_done", True) else "running"
    else:
        st.snapshot = "not started"
    return st


# -- MySQL / MariaDB -----------------------------------------------------------------------


def _mysql_connect_args(cfg: Any) -> dict[str, Any]:
    if hasattr(cfg, "connect_args"):
        return dict(cfg.connect_args())
    parts = urlsplit(_secret(cfg.dsn))
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
    }


def binlog_lag(
    logs: list[tuple[str, int]], file: str, pos: int, head: tuple[str, int]
) -> int | None:
    """Bytes from ``file:pos`` to ``head`` over the server's binlogs; None if ``file`` is gone."""
    names = [name for name, _ in logs]
    if file not in names:
        return None
    if file == head[0]:
        return max(0, head[1] - pos)
    total = 0
    started = False
    for name, size in logs:
        if name == file:
            started = True
            total += max(0, size - pos)
        elif name == head[0]:
            total += head[1]
            break
        elif started:
            total += size
    return total


def _mysql(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    import pymysql

    st = SourceStatus(cfg.name, "mysql")
    args = _mysql_connect_args(cfg)
    args.pop("database", None)
    conn = pymysql.connect(**args, connect_timeout=5, autocommit=True)
    try:
        cur = conn.cursor()
        mariadb = "mariadb" in conn.get_server_info().lower()
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4+
            cur.execute("SHOW BINARY LOG STATUS")
        master = cur.fetchone()
        if master is None:
            st.state = UNREACHABLE
            st.detail = "binary logging is off (log_bin); the source cannot stream"
            return st
        head = (str(master[0]), int(master[1]))
        cur.execute("SHOW BINARY LOGS")
        logs = [(str(r[0]), int(r[1])) for r in cur.fetchall()]
        cur.execute("SELECT @@gtid_binlog_pos" if mariadb else "SELECT @@global.gtid_executed")
        gtid_row = cur.fetchone()
    finally:
        conn.close()
    gtids = (gtid_row[0] or "").replace("\n", "") if gtid_row else ""
    st.head = f"{head[0]}:{head[1]}" + (f" gtids {gtids}" if gtids else "")
    if not offset:
        st.snapshot = "not started"
        st.state = INACTIVE
        st.detail = "no saved position (the source has not run yet)"
        return st
    file, pos = str(offset.get("file")), int(offset.get("pos", 0))
    st.saved_position = f"{file}:{pos}" + (
        f" gtids {offset['gtids']}" if offset.get("gtids") else ""
    )
    st.position = st.saved_position
    st.snapshot = "running" if offset.get("snapshot") else "done"
    st.lag_bytes = binlog_lag(logs, file, pos, head)
    names = [n for n, _ in logs]
    if st.lag_bytes is None:
        st.state = LOST
        st.risk = (
            f"binlog {file} of the saved position was purged: the source needs a new snapshot "
            '(snapshot = "when_needed")'
        )
        return st
    st.retained_bytes = sum(size for name, size in logs[names.index(file) :])
    st.state = LAGGING if st.lag_bytes > 0 else OK
    if names and names[0] == file and len(names) > 1:
        st.state = AT_RISK
        st.risk = f"the saved position is in the oldest binlog ({file}): the next purge removes it"
    elif st.retained_bytes > warn_bytes:
        st.risk = f"{_human(st.retained_bytes)} of binlog from the saved position on"
    return st


# -- MongoDB -------------------------------------------------------------------------------


def _mongodb(cfg: Any, offset: Mapping[str, Any] | None, warn_bytes: int) -> SourceStatus:
    from pymongo import MongoClient

    st = SourceStatus(cfg.name, "mongodb")
    wait_ms = min(5000, int(getattr(cfg, "server_selection_timeout_ms", 5000) or 5000))
    client: Any = MongoClient(_secret(cfg.uri), serverSelectionTimeoutMS=wait_ms, connect=True)
    try:
        hello = client.admin.command("hello")
        cluster = (hello.get("$clusterTime") or {}).get("clusterTime") or hello.get("operationTime")
        first = last = None
        try:
            oplog = client["local"]["oplog.rs"]
            first_doc = oplog.find({}, {"ts": 1}).sort("$natural", 1).limit(1).next()
            last_doc = oplog.find({}, {"ts": 1}).sort("$natural", -1).limit(1).next()
            first, last = first_doc["ts"], last_doc["ts"]
        except Exception as exc:  # no privilege on local, or not a replica set member
            st.detail = f"oplog not readable ({exc.__class__.__name__}); retention unknown"
    finally:
        client.close()
    if cluster is not None:
        st.head = f"cluster time {cluster.time}.{cluster.inc}"
    saved = (offset or {}).get("cluster_time")
    if not offset:
        st.snapshot = "not started"
        st.state = INACTIVE
        st.detail = st.detail or "no saved position (the source has not run yet)"
        return st
    st.snapshot = "running" if offset.get("snapshot") else "done"
    if saved:
        st.saved_position = st.position = f"cluster time {saved['t']}.{saved['i']}"
        if cluster is not None:
            st.lag_seconds = float(max(0, cluster.time - int(saved["t"])))
            st.state = LAGGING if st.lag_seconds > 0 else OK
        if first is not None and last is not None:
            window = max(1, last.time - first.time)
            if int(saved["t"]) < first.time:
                st.state = LOST
                st.risk = "the saved resume point is older than the oplog: a new snapshot is needed"
            elif int(saved["t"]) - first.time < window * 0.1:
                st.state = AT_RISK
                st.risk = (
                    f"the saved resume point is in the oldest 10% of the oplog window "
                    f"({window} s): grow the oplog or catch up"
                )
    return st


_PROBES: dict[str, Callable[[Any, Mapping[str, Any] | None, int], SourceStatus]] = {
    "postgres": _postgres,
    "mysql": _mysql,
    "mongodb": _mongodb,
}


def probe_source(
    cfg: Any,
    offset: Mapping[str, Any] | None,
    *,
    warn_bytes: int = DEFAULT_RETAINED_WARN_BYTES,
) -> SourceStatus:
    """Status of one ``[[sources]]`` entry; ``offset``: its saved position (state store)."""
    probe = _PROBES.get(cfg.kind)
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
            detail=_mask(f"{exc.__class__.__name__}: {first}"),
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
            matched = matching_topics(topics, _patterns(route))
            rs.partitions = route_lag(consumer, matched, timeout=timeout)
            rs.dlq_records = _topic_size(consumer, rs.dlq_topic, timeout)
            rs.error = _topic_identity(cfg, route, name, group, consumer, matched, timeout)
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


def _topic_identity(
    cfg: Any, route: Any, name: str, group: str, consumer: Any, topics: list[str], timeout: float
) -> str | None:
    """For routes whose sink stores offsets in the target: the same check the route makes
    when it starts (were its topics re-created or truncated below those offsets?), so
    ``status`` reports a halted route whether or not the bridge runs."""
    if not topics:
        return None
    try:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import AdminClient

        from cdc_bridge.kafka import topic_ids
        from cdc_bridge.routes import halt_message, identity_problems, make_sink

        _compiled, sink = make_sink(cfg, route)
    except Exception as exc:
        log.debug("route %s: cannot build its sink: %s", name, exc)
        return None
    try:
        if not sink.transactional_offsets:
            return None
        md = consumer.list_topics(timeout=timeout)
        tps = [(t, p) for t in topics if t in md.topics for p in md.topics[t].partitions]
        stored = sink.committed_offsets(group, tps)
        if not stored:
            return None
        security = {
            k: v
            for k, v in cfg.kafka.consumer.items()
            if k.startswith(("security.", "sasl.", "ssl."))
        }
        admin = AdminClient(
            with_logger(
                {**security, "bootstrap.servers": cfg.kafka.bootstrap_servers},
                "cdc_bridge.kafka.status",
            )
        )
        ids = topic_ids(admin, {t for t, _ in stored}, timeout=timeout)
        stored_ids = sink.stored_topic_ids(group, list(stored))

        def high(topic: str, partition: int) -> int | None:
            _low, hi = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            return int(hi)

        problems = identity_problems(stored, stored_ids, ids, high)
        return halt_message(name, problems) if problems else None
    except Exception as exc:  # the target may be away: status reports what it can
        log.debug("route %s: cannot check its stored offsets: %s", name, exc)
        return None
    finally:
        sink.close()


# -- state store -------------------------------------------------------------------------------


def _open_state(url: str) -> tuple[Any, StateStatus]:
    st = StateStatus(_mask(url))
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
        st.error = _mask(f"cannot read the state store: {exc}".splitlines()[0])
        return None, st


def readyz_url(metrics: str) -> str | None:
    """The /readyz URL of a bridge serving ``[bridge] metrics`` (wildcards -> loopback)."""
    if not metrics:
        return None
    from cdc_bridge.metrics import parse_address

    host, port = parse_address(metrics)
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/readyz"


def probe_bridge(
    metrics: str, timeout: float = 3.0, identity: Mapping[str, str] | None = None
) -> LiveStatus | None:
    """Read the running bridge's ``/readyz``; None when metrics are switched off. With
    ``identity`` (``cdc_bridge.runtime.bridge_identity``), a bridge answering with another
    name or state store is not taken for this one."""
    import json
    import urllib.error
    import urllib.request

    url = readyz_url(metrics)
    if url is None:
        return None
    live = LiveStatus(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:  # 503: not ready, same JSON body
        body = exc.read()
    except (OSError, ValueError) as exc:
        live.error = f"no bridge answers at {url} ({getattr(exc, 'reason', exc)})"
        return live
    try:
        doc = json.loads(body)
    except ValueError:
        live.error = f"{url} did not answer with a cdc-bridge /readyz document"
        return live
    if not isinstance(doc, dict) or "ready" not in doc:
        live.error = f"{url} did not answer with a cdc-bridge /readyz document"
        return live
    if identity and any(doc.get(k) != v for k, v in identity.items()):
        live.error = (
            f"the bridge answering at {url} is another one ({doc.get('bridge')!r}, state "
            f"{doc.get('state')!r}), not this config's"
        )
        return live
    live.answered = True
    live.ready = bool(doc.get("ready"))
    live.fatal = doc.get("fatal")
    for kind in ("sources", "routes"):
        for name, comp in (doc.get(kind) or {}).items():
            if not comp.get("ready", True):
                detail = comp.get("detail") or ""
                live.problems.append(
                    f"{kind[:-1]} {name}: {comp.get('state')}" + (f": {detail}" if detail else "")
                )
    live.document = doc
    return live


def _merge_live(
    live: LiveStatus | None, sources: list[SourceStatus], routes: list[RouteStatus]
) -> None:
    doc = live.document if live is not None else None
    if not doc:
        return
    for s in sources:
        comp = (doc.get("sources") or {}).get(s.name)
        if comp:
            s.bridge_state, s.bridge_detail = comp.get("state"), comp.get("detail") or ""
    for r in routes:
        comp = (doc.get("routes") or {}).get(r.name)
        if comp:
            r.bridge_state, r.bridge_detail = comp.get("state"), comp.get("detail") or ""


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
    identity = None
    if hasattr(cfg.bridge, "state") and hasattr(cfg.bridge, "name"):
        from cdc_bridge.runtime import bridge_identity

        identity = bridge_identity(cfg)
    live = probe_bridge(
        getattr(cfg.bridge, "metrics", ""), timeout=min(timeout, 3.0), identity=identity
    )
    _merge_live(live, sources, routes)
    return BridgeStatus(cfg.bridge.name, sources, routes, state, live=live)


# -- rendering -------------------------------------------------------------------------------

_STYLE = {
    OK: "green",
    LAGGING: "yellow",
    INACTIVE: "yellow",
    AT_RISK: "bold red",
    LOST: "bold red",
    UNREACHABLE: "bold red",
}


#: Component states of a running bridge worth a note in the tables.
_LIVE_BAD = frozenset({"stalled", "ended", "failed", "retrying", "stopped"})


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
            lag.append(_human(s.lag_bytes))
        if s.lag_seconds is not None:
            lag.append(f"{s.lag_seconds:.0f} s")
        notes = s.risk or s.detail
        if s.bridge_state in _LIVE_BAD:
            notes = f"bridge: {s.bridge_state}: {s.bridge_detail}" + (f"; {notes}" if notes else "")
        t.add_row(
            escape(s.name),
            s.kind,
            f"[{_STYLE.get(s.state, 'white')}]{s.state}[/]",
            escape(s.position or s.saved_position or "-"),
            " / ".join(lag) or "-",
            _human(s.retained_bytes),
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
            escape(
                rs.error
                or (
                    f"bridge: {rs.bridge_state}: {rs.bridge_detail}"
                    if rs.bridge_state in _LIVE_BAD
                    else ""
                )
            ),
        )
    if not status.routes:
        r.add_row("(none)", "", "", "", "", "", "")
    console.print(r)

    live = status.live
    if live is not None:
        if not live.answered:
            console.print(f"running bridge: {escape(live.error or '-')}")
        elif live.ready:
            console.print(f"running bridge at {escape(live.url)}: [green]ready[/]")
        else:
            console.print(f"running bridge at {escape(live.url)}: [bold red]NOT READY[/]")
            if live.fatal:
                console.print(f"  [bold red]fatal:[/] {escape(live.fatal)}")
            for problem in live.problems:
                console.print(f"  [bold red]-[/] {escape(problem)}")

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
