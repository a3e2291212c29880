"""The ``cdc-bridge`` command line (typer): thin -- it parses options and calls the library.

A source or sink kind gets a sub-command group (``cdc-bridge postgres drop-slot ...``) by
naming its ``typer.Typer`` app in its registry entry (``cli=`` in ``cdc_bridge.registry``);
the app lives next to the kind's code and imports heavy drivers lazily inside its commands. Wrap command bodies in
:func:`user_errors` so a ConfigError prints one message and exits 2 (other BridgeErrors: 1).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdc_bridge import __version__
from cdc_bridge.errors import BridgeError, ConfigError

__all__ = ["app", "main", "user_errors"]

app = typer.Typer(
    name="cdc-bridge",
    help="Change-data-capture bridge: database changes as Debezium events on Kafka, "
    "routed to Salesforce and SQL databases.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def _flags_without_type() -> None:
    """typer's rich help prints a type after every option, `--follow <bool>` too, which reads as
    if the flag wanted a value: flags (and --help) show none."""
    option = getattr(typer.core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if option is None or original is None:  # another typer: its own help layout
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return original(self, ctx)

    option.display_type_rich = display_type_rich


_flags_without_type()

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path of routes.toml.", envvar="CDC_BRIDGE_CONFIG"),
]


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """Errors the user caused end in one clear message (no traceback) and exit 2 / 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            _err_console().print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
            raise typer.Exit(EXIT_CONFIG) from None
        except BridgeError as exc:
            _err_console().print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _global(
    log_format: Annotated[
        str, typer.Option("--log-format", help="text (human) or json (one object per line).")
    ] = "text",
    log_level: Annotated[
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
) -> None:
    from cdc_bridge.logs import setup_logging

    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be 'text' or 'json'", param_hint="--log-format")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise typer.BadParameter("must be DEBUG, INFO, WARNING or ERROR", param_hint="--log-level")
    setup_logging(log_format, log_level)  # type: ignore[arg-type]


def _load(config: Path) -> Any:
    from cdc_bridge.config import load_config

    return load_config(config)


@app.command()
def version() -> None:
    """Print the cdc-bridge version."""
    typer.echo(f"cdc-bridge {__version__}")


@app.command()
@user_errors
def check(
    config: ConfigOption,
    connect: Annotated[
        bool,
        typer.Option("--connect", help="Also reach every source, sink and the Kafka cluster."),
    ] = False,
    show_config: Annotated[
        bool,
        typer.Option("--show-config", help="Print the resolved config (secrets masked)."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for Kafka with --connect.")
    ] = 10.0,
) -> None:
    """Validate the configuration (and with --connect, reach everything it names)."""
    cfg = _load(config)
    out = Console(highlight=False, soft_wrap=True)
    err = _err_console()
    from cdc_bridge.idle import nothing_configured

    warnings = [str(w) for w in cfg.warnings]
    if (idle := nothing_configured(cfg)) is not None:
        warnings.append(idle)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", markup=True)
    if show_config:
        from cdc_bridge._tomlout import dumps

        shown = {k: v for k, v in cfg.masked().items() if v != []}
        out.print(dumps(shown), markup=False, end="")
    summary = f"{len(cfg.sources)} source(s), {len(cfg.sinks)} sink(s), {len(cfg.routes)} route(s)"
    out.print(f"config OK: {config} ({summary})", markup=False)
    if connect:
        from cdc_bridge.checks import route_warnings, run_checks

        results = run_checks(cfg, kafka_timeout=timeout)
        for warning in route_warnings(cfg, timeout=timeout):
            err.print(f"[yellow]warning:[/] {escape(warning)}", markup=True)
        table = Table(title="connectivity")
        for col in ("component", "kind", "result", "message"):
            table.add_column(col, overflow="fold")
        for r in results:
            status = "[green]OK[/]" if r.ok else "[bold red]FAILED[/]"
            table.add_row(escape(r.component), escape(r.kind), status, escape(r.message))
        out.print(table)
        failed = [r for r in results if not r.ok]
        if failed:
            err.print(f"{len(failed)} of {len(results)} checks failed", markup=False)
            raise typer.Exit(EXIT_FAILURE)


@app.command()
@user_errors
def migrate(config: ConfigOption) -> None:
    """Create or upgrade the state store's tables (start does this too)."""
    from cdc_bridge.state import StateStore

    cfg = _load(config)
    store = StateStore(cfg.bridge.state)
    try:
        before, after = store.migrate()
    finally:
        store.close()
    if before == after:
        typer.echo(f"state store is up to date (revision {after})")
    else:
        typer.echo(f"state store migrated: {before or 'empty'} -> {after}")


@app.command()
@user_errors
def start(config: ConfigOption) -> None:
    """Run the bridge: every source, route and sink; SIGINT/SIGTERM stop it cleanly."""
    from cdc_bridge.runtime import Bridge

    cfg = _load(config)
    code = Bridge(cfg).run()
    if code:
        raise typer.Exit(code)


@app.command()
@user_errors
def status(
    config: ConfigOption,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document instead of tables (for scripts).")
    ] = False,
    max_retained_gb: Annotated[
        float,
        typer.Option("--max-retained-gb", help="Flag a Postgres slot holding more WAL than this."),
    ] = 10.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for Kafka and each database.")
    ] = 10.0,
) -> None:
    """Sources, routes and state store at a glance, read from the databases, Kafka and the
    state store (works while the bridge runs elsewhere). Exit 1 when something is at risk."""
    from cdc_bridge.status import collect, render

    cfg = _load(config)
    result = collect(cfg, timeout=timeout, warn_bytes=int(max_retained_gb * 1024**3))
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        render(result, Console(highlight=False))
    if not result.healthy:
        raise typer.Exit(EXIT_FAILURE)


@app.command()
@user_errors
def resnapshot(
    config: ConfigOption,
    source: Annotated[str, typer.Option("--source", "-s", help="Name of the source.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Make a source take a new snapshot at its next start (after Kafka lost its topics, or
    a lost position): forget its saved position; for Postgres also drop its replication slot
    and publication (checked first: both or neither). Stop the bridge first."""
    from cdc_bridge.registry import SOURCE_KINDS
    from cdc_bridge.state import StateStore

    cfg = _load(config)
    try:
        scfg = cfg.source(source)
    except KeyError:
        names = ", ".join(s.name for s in cfg.sources) or "none"
        raise ConfigError(f"{config}: no source named {source!r} (sources: {names})") from None
    hook = SOURCE_KINDS[scfg.kind].resnapshot_hook()
    if not yes:
        also = f" and {hook.confirm}" if hook is not None else ""
        typer.confirm(f"Forget the position of source {source!r}{also}?", abort=True)
    if hook is not None:
        typer.echo(hook.run(scfg))
    store = StateStore(cfg.bridge.state, migrate=True)
    try:
        forgot = store.delete_offset(source)
    finally:
        store.close()
    mode = getattr(scfg, "snapshot", "initial")
    then = (
        "the next `cdc-bridge start` takes a new snapshot"
        if mode != "never"
        else 'snapshot = "never": the next start streams from the current position without one'
    )
    typer.echo(
        f"source {source}: {'saved position forgotten' if forgot else 'no saved position'}; {then}"
    )


@app.command()
@user_errors
def snapshot(
    config: ConfigOption,
    source: Annotated[str, typer.Option("--source", "-s", help="Name of the source.")],
    table: Annotated[
        list[str],
        typer.Option(
            "--table", "-t", help="Table (collection) to snapshot, qualified; repeatable."
        ),
    ],
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help="Snapshot only the rows matching it: an SQL condition (MongoDB: a JSON "
            "query filter).",
        ),
    ] = None,
) -> None:
    """Take an incremental snapshot of tables while the source keeps streaming: writes
    Debezium's `execute-snapshot` signal into the source's signal table (`signal_table`);
    the running bridge reads the tables in chunks and publishes their rows as `op: r` events."""
    from cdc_bridge.registry import SOURCE_KINDS

    cfg = _load(config)
    try:
        scfg = cfg.source(source)
    except KeyError:
        names = ", ".join(s.name for s in cfg.sources) or "none"
        raise ConfigError(f"{config}: no source named {source!r} (sources: {names})") from None
    impl = SOURCE_KINDS[scfg.kind].implementation()(scfg)
    try:
        signal_id = impl.request_snapshot(list(table), where)
    finally:
        impl.close()
    typer.echo(
        f"source {source}: incremental snapshot of {', '.join(table)} requested "
        f"(signal {signal_id}); the running bridge logs its progress"
    )


docs_app = typer.Typer(help="Generate reference documentation.", no_args_is_help=True)


@docs_app.command("config")
def docs_config(
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            help="Refresh the generated block of this file (docs/reference/configuration.md).",
        ),
    ] = None,
) -> None:
    """Print the configuration reference (Markdown) for every section and kind."""
    from cdc_bridge.docs import config_reference, update_file

    if write is None:
        typer.echo(config_reference(), nl=False)
    elif update_file(write):
        typer.echo(f"updated the configuration reference in {write}")
    else:
        typer.echo(f"{write} is up to date")


app.add_typer(docs_app, name="docs")


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``cdc-bridge``)."""
    try:
        app(args=argv, prog_name="cdc-bridge")
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


# -- sub-command groups of sources and sinks (one line each, see the module docstring) ----
from cdc_bridge.dlq_cli import dlq_app  # noqa: E402  (cdc-bridge dlq list / replay)

app.add_typer(dlq_app, name="dlq")

from cdc_bridge.routes_cli import routes_app  # noqa: E402  (cdc-bridge routes reset)

app.add_typer(routes_app, name="routes")

from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS  # noqa: E402

for _kind in (*SOURCE_KINDS.values(), *SINK_KINDS.values()):
    if _kind.cli:  # registered next to the kind's code: cdc-bridge postgres drop-slot ...
        app.add_typer(_kind.cli_app(), name=_kind.name)

from cdc_bridge.demo.command import demo_command  # noqa: E402

app.command("demo")(demo_command)

from cdc_bridge.demo.broker import broker_command  # noqa: E402

app.command("broker")(broker_command)
