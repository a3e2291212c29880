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
    from cdc_bridge import config as config_module

    loader = getattr(config_module, "load_config", None)
    if loader is None:  # pragma: no cover - until the config loader is on main
        raise ConfigError("this build has no configuration loader")
    return loader(path)


def _state(cfg: Any) -> Any:
    try:
        from cdc_bridge.state import StateStore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover
        return None
    return StateStore(cfg.bridge.state)


def _fail(exc: BridgeError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@dlq_app.command("list")
def list_(
    config: ConfigOpt = Path("routes.toml"),
    route: Annotated[str | None, typer.Option("--route", "-r", help="Only this route.")] = None,
) -> None:
    """Show the dead letters of every route (or of one): origin, time, error."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from cdc_bridge.dlq import dlq_topic, read_dead_letters
    from cdc_bridge.routes import route_name

    try:
        cfg = _load(config)
        names = [route_name(r) for r in cfg.routes]
        if route is not None and route not in names:
            raise ConfigError(f"no route named {route!r} (routes: {', '.join(names) or 'none'})")
        table = Table(title="dead letters")
        for col in ("route", "from", "at", "code", "error"):
            table.add_column(col)
        total = 0
        for name in names:
            if route is not None and name != route:
                continue
            for d in read_dead_letters(
                cfg.kafka.bootstrap_servers,
                dlq_topic(cfg.bridge.name, name),
                consumer_config=dict(cfg.kafka.consumer),
            ):
                total += 1
                when = (
                    dt.datetime.fromtimestamp(d.timestamp / 1000, dt.UTC) if d.timestamp else None
                )
                table.add_row(
                    escape(name),
                    escape(f"{d.topic}[{d.partition}]@{d.offset}"),
                    when.isoformat(timespec="seconds") if when else "",
                    escape(d.code),
                    escape(d.error),
                )
    except BridgeError as exc:
        _fail(exc)
        return
    Console().print(table)
    typer.echo(f"{total} dead letter(s)")


@dlq_app.command("replay")
def replay(
    route: Annotated[str, typer.Option("--route", "-r", help="The route whose letters to replay.")],
    config: ConfigOpt = Path("routes.toml"),
) -> None:
    """Re-apply a route's dead letters (e.g. after fixing the target); failures stay dead."""
    from cdc_bridge.routes import replay_dead_letters

    try:
        cfg = _load(config)
        state = _state(cfg)
        try:
            applied, failed = replay_dead_letters(cfg, route, state)
        finally:
            if state is not None and hasattr(state, "close"):
                state.close()
    except BridgeError as exc:
        _fail(exc)
        return
    typer.echo(f"route {route}: {applied} dead letter(s) applied, {failed} failed again")
