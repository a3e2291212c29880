"""``cdc-bridge dlq list`` / ``cdc-bridge dlq replay --route R``: inspect and re-apply dead letters.

Registered in ``cli.py`` with ``app.add_typer(dlq_app, name="dlq")``. The dead-letter topics
are the truth; the state store's index (when there is one) is marked as replayed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from cdc_bridge.errors import BridgeError, ConfigError

__all__ = ["dlq_app"]

dlq_app = typer.Typer(help="Dead letters: records a route could not apply.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path of routes.toml.", envvar="CDC_BRIDGE_CONFIG"),
]


def _load(path: Path) -> Any:
    from cdc_bridge.config import load_config

    return load_config(path)


def _state(cfg: Any) -> Any:
    from cdc_bridge.state import StateStore

    return StateStore(cfg.bridge.state, migrate=True)


def _fail(exc: BridgeError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@dlq_app.command("list")
def list_(
    config: ConfigOpt = Path("routes.toml"),
    route: Annotated[str | None, typer.Option("--route", "-r", help="Only this route.")] = None,
) -> None:
    """Show the dead letters of every route (or of one), one per line: route, origin
    (topic[partition]@offset), time, what `dlq replay` did with it (pending, replayed,
    superseded, failed, skipped), code, error."""
    from cdc_bridge.dlq import dlq_topic, read_dead_letters
    from cdc_bridge.routes import route_name

    total = 0
    try:
        cfg = _load(config)
        names = [route_name(r) for r in cfg.routes]
        if route is not None and route not in names:
            raise ConfigError(f"no route named {route!r} (routes: {', '.join(names) or 'none'})")
        outcomes = _outcomes(cfg)
        for name in names:
            if route is not None and name != route:
                continue
            index = outcomes.get(name, {})
            for d in read_dead_letters(
                cfg.kafka.bootstrap_servers,
                dlq_topic(cfg.bridge.name, name),
                consumer_config=dict(cfg.kafka.consumer),
            ):
                total += 1
                when = (
                    dt.datetime.fromtimestamp(d.timestamp / 1000, dt.UTC).isoformat(
                        timespec="seconds"
                    )
                    if d.timestamp
                    else "-"
                )
                seen = index.get((d.topic, d.partition, d.offset))
                outcome = seen.pop(0) if seen else "pending"
                typer.echo(
                    f"{name}  {d.topic}[{d.partition}]@{d.offset}  {when}  {outcome}  "
                    f"{d.code}  {d.error}"
                )
    except BridgeError as exc:
        _fail(exc)
        return
    typer.echo(f"{total} dead letter(s)")


def _outcomes(cfg: Any) -> dict[str, dict[tuple[str, int, int], list[str]]]:
    """route -> origin -> outcomes of its indexed letters, oldest first (copies of a letter
    re-appended by a replay share an origin); {} without a readable state store."""
    from cdc_bridge.state import StateStore

    out: dict[str, dict[tuple[str, int, int], list[str]]] = {}
    try:
        store = StateStore(cfg.bridge.state)
    except BridgeError:
        return out
    try:
        for d in store.dead_letters(include_replayed=True, limit=1_000_000):
            out.setdefault(d.route, {}).setdefault((d.topic, d.partition, d.offset), []).append(
                d.outcome or ("replayed" if d.replayed_at else "pending")
            )
    except Exception:
        return {}
    finally:
        store.close()
    return out


@dlq_app.command("replay")
def replay(
    route: Annotated[str, typer.Option("--route", "-r", help="The route whose letters to replay.")],
    config: ConfigOpt = Path("routes.toml"),
) -> None:
    """Re-apply a route's dead letters (e.g. after fixing the target), each once. A letter
    is skipped as superseded when the route already applied a later change of its key;
    records the sink rejects again go back to the dead-letter topic with the new reason."""
    from cdc_bridge.routes import replay_dead_letters

    try:
        cfg = _load(config)
        state = _state(cfg)
        try:
            result = replay_dead_letters(cfg, route, state)
        finally:
            state.close()
    except BridgeError as exc:
        _fail(exc)
        return
    typer.echo(f"route {route}: {result}")
