"""``cdc-bridge routes reset --route R``: the recovery of a route whose topic was re-created or
truncated (Kafka lost, topic deleted): forget its stored offsets so it reads from the start.

Registered in ``cli.py`` with ``app.add_typer(routes_app, name="routes")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdc_bridge.cli import ConfigOption, user_errors

__all__ = ["routes_app"]

routes_app = typer.Typer(help="Routes: recover a route that stopped.", no_args_is_help=True)


@routes_app.command("reset")
@user_errors
def reset(
    config: ConfigOption,
    route: Annotated[str, typer.Option("--route", "-r", help="The route to reset.")],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Only these topics (default: all the route's)."),
    ] = None,
) -> None:
    """Forget the route's stored offsets (in the target and in Kafka) so that, started again,
    it reads its topics from the beginning. Run it with the bridge stopped. Sinks upsert by
    key, so rows applied before are rewritten, not doubled."""
    from cdc_bridge.config import load_config
    from cdc_bridge.routes import reset_route

    cfg = load_config(Path(config))
    for line in reset_route(cfg, route, topic or None):
        typer.echo(f"route {route}: {line}")
    typer.echo(f"route {route} reset: it reads its topics from the start when the bridge starts")
