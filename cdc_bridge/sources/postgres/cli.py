"""Postgres maintenance commands (typer sub-app, mounted as ``cdc-bridge pg``): drop the slot
and publication on request, show slot state and lag."""

from __future__ import annotations

import json

import typer

from cdc_bridge.errors import BridgeError
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.sources.postgres.source import PostgresSource

__all__ = ["app", "drop_slot", "slot_status"]

app = typer.Typer(help="PostgreSQL source maintenance: replication slot and publication.")


def drop_slot(cfg: PostgresSourceConfig) -> str:
    """Drop the source's slot and publication; returns a one-line summary."""
    src = PostgresSource(cfg)
    try:
        slot, pub = src.drop_slot_and_publication()
    finally:
        src.close()
    return (
        f"slot {cfg.slot}: {'dropped' if slot else 'did not exist'}; "
        f"publication {cfg.publication}: {'dropped' if pub else 'did not exist'}"
    )


def slot_status(cfg: PostgresSourceConfig) -> dict[str, object]:
    """Slot state and lag (bytes of WAL the slot holds back)."""
    src = PostgresSource(cfg)
    try:
        return src.status()
    finally:
        src.close()


def _config(
    dsn: str, source: str, slot: str | None, publication: str | None
) -> PostgresSourceConfig:
    return PostgresSourceConfig.model_validate(
        {"name": source, "kind": "postgres", "dsn": dsn, "slot_name": slot,
         "publication_name": publication}
    )  # fmt: skip


@app.command("drop-slot")
def drop_slot_cmd(
    dsn: str = typer.Option(..., envvar="CDC_PG_DSN", help="Database DSN (or $CDC_PG_DSN)."),
    source: str = typer.Option(..., help="Source name (default slot/publication names)."),
    slot: str | None = typer.Option(None, help="Slot name, if not the default."),
    publication: str | None = typer.Option(None, help="Publication name, if not the default."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Drop the replication slot and publication of a source (the bridge never does this itself).

    After this, the next start creates a new slot: changes made in between are not captured
    (use snapshot = "initial" or "when_needed" to re-read the tables)."""
    cfg = _config(dsn, source, slot, publication)
    if not yes:
        typer.confirm(f"Drop slot {cfg.slot} and publication {cfg.publication}?", abort=True)
    try:
        typer.echo(drop_slot(cfg))
    except BridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("status")
def status_cmd(
    dsn: str = typer.Option(..., envvar="CDC_PG_DSN", help="Database DSN (or $CDC_PG_DSN)."),
    source: str = typer.Option(..., help="Source name."),
    slot: str | None = typer.Option(None, help="Slot name, if not the default."),
) -> None:
    """Show the slot's state, confirmed position and lag in bytes, as JSON."""
    try:
        typer.echo(json.dumps(slot_status(_config(dsn, source, slot, None))))
    except BridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app()
