"""Postgres maintenance commands (typer sub-app, mounted as ``cdc-bridge postgres``): show slot
state and lag, drop the slot and publication on request; the ``cdc-bridge resnapshot`` hook
(drop both). Drivers are imported lazily."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdc_bridge.errors import BridgeError, ConfigError
from cdc_bridge.registry import ResnapshotHook

if TYPE_CHECKING:
    from cdc_bridge.sources.postgres.config import PostgresSourceConfig

__all__ = ["app", "drop_slot", "resnapshot", "slot_status"]

app = typer.Typer(
    help="PostgreSQL source maintenance: replication slot and publication.",
    no_args_is_help=True,
)

SourceOpt = Annotated[str, typer.Option("--source", "-s", help="Name of the postgres source.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="routes.toml holding the source.", envvar="CDC_BRIDGE_CONFIG"
    ),
]
DsnOpt = Annotated[
    str | None,
    typer.Option(help="Database DSN, instead of --config (or $CDC_PG_DSN).", envvar="CDC_PG_DSN"),
]
SlotOpt = Annotated[str | None, typer.Option(help="Slot name, if not the default.")]
PubOpt = Annotated[str | None, typer.Option(help="Publication name, if not the default.")]


def drop_slot(cfg: PostgresSourceConfig) -> str:
    """Drop the source's slot and publication; returns a one-line summary."""
    from cdc_bridge.sources.postgres.source import PostgresSource

    src = PostgresSource(cfg)
    try:
        slot, pub = src.drop_slot_and_publication()
    finally:
        src.close()
    return (
        f"slot {cfg.slot}: {'dropped' if slot else 'did not exist'}; "
        f"publication {cfg.publication}: {'dropped' if pub else 'did not exist'}"
    )


resnapshot = ResnapshotHook(confirm="drop its replication slot and publication", run=drop_slot)


def slot_status(cfg: PostgresSourceConfig) -> dict[str, Any]:
    """Slot state and lag (bytes of WAL the slot holds back)."""
    from cdc_bridge.sources.postgres.source import PostgresSource

    src = PostgresSource(cfg)
    try:
        return src.status()
    finally:
        src.close()


def _config(
    config: Path | None, dsn: str | None, source: str, slot: str | None, publication: str | None
) -> PostgresSourceConfig:
    from cdc_bridge.sources.postgres.config import PostgresSourceConfig

    if config is not None:
        from cdc_bridge.config import load_config

        bridge = load_config(config)
        found = [s for s in bridge.sources if s.name == source]
        if not found or not isinstance(found[0], PostgresSourceConfig):
            names = [s.name for s in bridge.sources if s.kind == "postgres"]
            raise ConfigError(
                f"{config}: no postgres source named {source!r} (postgres sources: {names})"
            )
        cfg = found[0]
        updates = {"slot_name": slot, "publication_name": publication}
        return cfg.model_copy(update={k: v for k, v in updates.items() if v is not None})
    if dsn is None:
        raise ConfigError("give --config routes.toml (or $CDC_BRIDGE_CONFIG), or --dsn")
    return PostgresSourceConfig.model_validate(
        {"name": source, "kind": "postgres", "dsn": dsn, "slot_name": slot,
         "publication_name": publication}
    )  # fmt: skip


def _fail(exc: BridgeError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.command("drop-slot")
def drop_slot_cmd(
    source: SourceOpt,
    config: ConfigOpt = None,
    dsn: DsnOpt = None,
    slot: SlotOpt = None,
    publication: PubOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop the replication slot and publication of a source (the bridge never does this itself).

    Stop the bridge first. The next start finds its stored position without its slot and
    reacts as its on_position_lost says; `cdc-bridge resnapshot` drops the slot and forgets
    the position, so the next start takes a new snapshot."""
    try:
        cfg = _config(config, dsn, source, slot, publication)
        if not yes:
            typer.confirm(f"Drop slot {cfg.slot} and publication {cfg.publication}?", abort=True)
        typer.echo(drop_slot(cfg))
    except BridgeError as exc:
        raise _fail(exc) from None


@app.command("status")
def status_cmd(
    source: SourceOpt,
    config: ConfigOpt = None,
    dsn: DsnOpt = None,
    slot: SlotOpt = None,
) -> None:
    """The slot's state, confirmed position and lag in bytes, as JSON."""
    try:
        typer.echo(json.dumps(slot_status(_config(config, dsn, source, slot, None))))
    except BridgeError as exc:
        raise _fail(exc) from None


if __name__ == "__main__":
    app()
