"""The `cdc-bridge demo` command (registered in cdc_bridge/cli.py with one line)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo_command"]


def demo_command(
    duration: Annotated[
        float,
        typer.Option("--duration", min=1, help="Seconds of traffic before verifying."),
    ] = 60.0,
    follow: Annotated[
        bool,
        typer.Option("--follow", help="Run the traffic until Ctrl-C, then verify."),
    ] = False,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.5, help="Transactions per second over all four sources."),
    ] = 20.0,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave servers and bridge running after verifying (Ctrl-C)."),
    ] = False,
    drain_timeout: Annotated[
        float,
        typer.Option("--drain-timeout", min=1, help="Longest wait for the routes to catch up."),
    ] = 120.0,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Run directory (routes.toml, SQLite files, demo.log)."),
    ] = None,
) -> None:
    """Run the whole pipeline locally (4 sources, 6 targets) under traffic, then verify it.

    Starts an embedded Kafka broker, private Postgres and MariaDB servers and a Salesforce emulator (no external service is used). Exits 0 only if every target equals its source.
    """
    from rich.console import Console
    from rich.markup import escape

    from cdc_bridge.demo.broker import missing_demo_extra

    console = Console(highlight=False)
    problem = missing_demo_extra()
    if problem:
        console.print(f"[bold red]error:[/] {escape(problem)}")
        raise typer.Exit(1)

    from cdc_bridge.demo.run import DemoOptions, run_demo
    from cdc_bridge.errors import BridgeError
    from cdc_bridge.testing.services import ServiceError

    opts = DemoOptions(
        duration=None if follow else duration,
        rate=rate,
        keep=keep,
        drain_timeout=drain_timeout,
        workdir=workdir,
    )
    try:
        result = run_demo(opts, console)
    except ServiceError as exc:
        console.print(
            f"[bold red]error:[/] cannot start a local service for the demo: {escape(str(exc))}\n"
            "The demo needs the PostgreSQL and MariaDB server binaries (Debian/Ubuntu: "
            "`apt-get install postgresql mariadb-server`) and `pip install 'cdc-bridge[demo]'`; "
            "in a checkout of the repository `bash scripts/setup.sh` installs all of it."
        )
        raise typer.Exit(1) from None
    except BridgeError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    raise typer.Exit(result.exit_code)
