"""Configs that can do nothing: a bridge with neither sources nor routes, and routes that read
topics no configured source writes and that do not exist on Kafka. Not errors (another
producer, e.g. Debezium, may create the topics later) -- but ``check`` warns and ``/readyz``
says so in its ``notes``, so a bridge that idles by mistake does not look busy."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

__all__ = ["nothing_configured", "unfed_routes"]


def nothing_configured(config: Any) -> str | None:
    """The warning for a config without ``[[sources]]`` and ``[[routes]]``, else None."""
    if config.sources or config.routes:
        return None
    where = f"{config.source_file}: " if getattr(config, "source_file", None) else ""
    return (
        f"{where}no [[sources]] and no [[routes]]: this bridge captures and delivers nothing; "
        "add a source (a database to capture) or a route (topics to a sink)"
    )


def _source_globs(config: Any) -> list[str]:
    from cdc_bridge._loader import _source_topic_globs

    return [g for s in config.sources for g in _source_topic_globs(s)]


def unfed_routes(config: Any, topics: Iterable[str]) -> dict[str, str]:
    """Route name -> warning, for routes none of whose ``from`` patterns matches a topic on
    Kafka (``topics``) or one a configured source may write."""
    from cdc_bridge._loader import _could_match
    from cdc_bridge.status import route_group

    existing = list(topics)
    globs = _source_globs(config)
    out: dict[str, str] = {}
    for route in config.routes:
        patterns = route.patterns
        if any(fnmatch.filter(existing, p) for p in patterns):
            continue
        if any(_could_match(p, g) for p in patterns for g in globs):
            continue
        name, _group = route_group(route, config.bridge.name)
        shown = ", ".join(repr(p) for p in patterns)
        out[name] = (
            f"route {name}: no topic on Kafka matches {shown} and no configured source writes "
            "one, so it has nothing to deliver; check `from` (and the source names), or start "
            "the producer of those topics"
        )
    return out
