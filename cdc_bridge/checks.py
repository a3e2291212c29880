"""``cdc-bridge check --connect``: reach every source, sink and the Kafka cluster, and say
how each one went (one result per component, never stopping at the first failure)."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

from cdc_bridge.config import BridgeConfig, mask_url
from cdc_bridge.errors import BridgeError
from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS

__all__ = [
    "CheckResult",
    "check_kafka",
    "check_sink",
    "check_source",
    "check_state",
    "run_checks",
]

log = logging.getLogger(__name__)


class _DebugLog:
    """librdkafka's log callback target: its retry chatter, demoted to DEBUG."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def log(self, _level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.debug(msg, *args)


_KAFKA_LOG = _DebugLog("cdc_bridge.kafka.check")


@dataclass(frozen=True)
class CheckResult:
    component: str
    kind: str
    ok: bool
    message: str


def _failure(exc: BaseException) -> str:
    if isinstance(exc, BridgeError):
        return mask_url(str(exc))
    return mask_url(f"{type(exc).__name__}: {exc}")


def check_kafka(config: BridgeConfig, timeout: float = 10.0) -> CheckResult:
    """List the cluster's topics with the producer's connection settings."""
    from cdc_bridge.kafka import TopicAdmin

    conf: dict[str, Any] = {
        "bootstrap.servers": config.kafka.bootstrap_servers,
        # the result row carries the error; librdkafka's own retry chatter goes to DEBUG
        "logger": _KAFKA_LOG,
    }
    conf.update(
        {
            k: v
            for k, v in config.kafka.producer.items()
            if k.startswith(("security.", "sasl.", "ssl."))
        }
    )
    try:
        topics = TopicAdmin(conf).list_topics(timeout=timeout)
    except Exception as exc:
        return CheckResult("kafka", "kafka", False, _failure(exc))
    return CheckResult(
        "kafka",
        "kafka",
        True,
        f"reached {config.kafka.bootstrap_servers}: {len(topics)} topic(s)",
    )


def check_state(config: BridgeConfig) -> CheckResult:
    """Open the state store and read its schema revision (no migration)."""
    from cdc_bridge.state import StateStore

    try:
        store = StateStore(config.bridge.state)
        try:
            current, head = store.current_revision(), store.head_revision()
        finally:
            store.close()
    except Exception as exc:
        return CheckResult("state store", "state", False, _failure(exc))
    if current == head:
        note = f"schema at revision {current}"
    elif current is None:
        note = "empty; `cdc-bridge migrate` (or start) creates the tables"
    else:
        note = f"schema at {current}, {head} available; start migrates it"
    return CheckResult("state store", "state", True, f"{store!r}: {note}")


def _verdict(name: str, kind: str, outcome: Any) -> CheckResult:
    """``check()`` returns None (fine) or a list of problems (empty: fine)."""
    if isinstance(outcome, list | tuple) and outcome:
        return CheckResult(name, kind, False, mask_url("; ".join(str(p) for p in outcome)))
    return CheckResult(name, kind, True, "reachable, prerequisites met")


def _run_check(name: str, kind: str, build: Any, stored: Any = None) -> CheckResult:
    try:
        component = build()
    except Exception as exc:
        return CheckResult(name, kind, False, f"cannot build it: {_failure(exc)}")
    try:
        verdict = _verdict(name, kind, component.check())
        report = getattr(component, "position_report", None)
        if verdict.ok and report is not None:
            verdict = _position_verdict(verdict, component, report(stored))
        return verdict
    except Exception as exc:
        log.debug("%s check failed", name, exc_info=True)
        return CheckResult(name, kind, False, _failure(exc))
    finally:
        try:
            component.close()
        except Exception:
            log.debug("closing %s failed", name, exc_info=True)


def _takes_route(impl: Any) -> bool:
    """Sinks of the route engine are built per route: ``Sink(config, route, context)``."""
    try:
        params = list(inspect.signature(impl).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) >= 3


def _position_verdict(verdict: CheckResult, component: Any, report: Any) -> CheckResult:
    """Add a source's position report (``position_report(stored) -> (lines, lost)``, e.g. the
    salesforce source's replay ids) to its check; a lost position fails the check when the
    source's ``on_position_lost`` policy is ``fail``."""
    lines, lost = report
    cfg = getattr(component, "config", None)
    policy = getattr(cfg, "on_position_lost", None) or (
        "resnapshot" if getattr(cfg, "snapshot", None) == "when_needed" else "fail"
    )
    message = verdict.message + "; position: " + "; ".join(lines)
    if lost:
        message += f" -- the stored position is lost; on_position_lost = {policy}"
    return CheckResult(verdict.component, verdict.kind, not (lost and policy == "fail"), message)


def _stored_offsets(config: BridgeConfig) -> dict[str, Any]:
    """Every source's saved position in the state store ({} when it cannot be read)."""
    from cdc_bridge.state import StateStore

    try:
        store = StateStore(config.bridge.state)
        try:
            return {name: offset for name, (offset, _ts) in store.offsets().items()}
        finally:
            store.close()
    except Exception as exc:
        log.debug("no saved positions for check: %s", exc)
        return {}


def check_source(cfg: Any, stored: Any = None) -> CheckResult:
    """``stored``: the source's saved position, for sources that report on it."""
    name = f"source {cfg.name}"
    try:
        impl = SOURCE_KINDS[cfg.kind].implementation()
    except Exception as exc:
        return CheckResult(name, cfg.kind, False, f"cannot load it: {_failure(exc)}")
    return _run_check(name, cfg.kind, lambda: impl(cfg), stored)


def check_sink(config: BridgeConfig, cfg: Any) -> list[CheckResult]:
    """One result per route using the sink (the sink's check looks at the route's target)."""
    name = f"sink {cfg.name}"
    try:
        impl = SINK_KINDS[cfg.kind].implementation()
    except Exception as exc:
        return [CheckResult(name, cfg.kind, False, f"cannot load it: {_failure(exc)}")]
    if not _takes_route(impl):
        return [_run_check(name, cfg.kind, lambda: impl(cfg))]
    routes = [r for r in config.routes if r.to == cfg.name]
    if not routes:
        return [CheckResult(name, cfg.kind, True, "no route uses this sink; nothing to check")]
    from cdc_bridge.sinks.base import SinkContext

    results = []
    for route in routes:
        context = SinkContext(
            bridge=config.bridge.name,
            route=route.route_name,
            group_id=route.consumer_group(config.bridge.name),
        )
        results.append(
            _run_check(
                f"{name} (route {route.name})",
                cfg.kind,
                lambda route=route, context=context: impl(cfg, route, context),
            )
        )
    return results


def run_checks(config: BridgeConfig, kafka_timeout: float = 10.0) -> list[CheckResult]:
    """Kafka and the state store first, then every source and every sink."""
    results = [check_kafka(config, kafka_timeout), check_state(config)]
    stored = _stored_offsets(config)
    results += [check_source(s, stored.get(s.name)) for s in config.sources]
    for sink in config.sinks:
        results += check_sink(config, sink)
    return results


def route_warnings(config: BridgeConfig, timeout: float = 10.0) -> list[str]:
    """Routes that have nothing to read: no topic on Kafka matches them and no configured
    source writes one (``cdc_bridge.idle``). Empty when Kafka does not answer (its check
    row already says so)."""
    from cdc_bridge.idle import unfed_routes
    from cdc_bridge.kafka import TopicAdmin

    if not config.routes:
        return []
    conf: dict[str, Any] = {
        "bootstrap.servers": config.kafka.bootstrap_servers,
        "logger": _KAFKA_LOG,
        **{
            k: v
            for k, v in config.kafka.producer.items()
            if k.startswith(("security.", "sasl.", "ssl."))
        },
    }
    try:
        topics = TopicAdmin(conf).list_topics(timeout=timeout)
    except Exception:
        return []
    return list(unfed_routes(config, topics).values())
