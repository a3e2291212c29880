"""The `pg` maintenance commands: status with slot lag, explicit slot/publication drop; the
Postgres hook of `cdc-bridge resnapshot` (drops both)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from cdc_bridge import cli
from cdc_bridge.sources.postgres.cli import app
from cdc_bridge.sources.postgres.replication import ReplicationConnection


def slot_and_publication(dsn: str) -> None:
    """What a stopped bridge with source ``shop`` leaves: its slot and publication."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("CREATE PUBLICATION cdc_bridge_shop FOR TABLE t")
    with ReplicationConnection(dsn) as r:
        r.create_slot("cdc_bridge_shop")


def routes_toml(tmp_path: Path, dsn: str, *lines: str) -> Path:
    """A routes.toml with the postgres source ``shop`` (plus ``lines`` in its entry)."""
    conf = tmp_path / "routes.toml"
    source = "\n".join(['name = "shop"', 'kind = "postgres"', f'dsn = "{dsn}"', *lines])
    conf.write_text(
        f'[bridge]\nstate = "sqlite:///{tmp_path / "state.db"}"\n\n'
        f'[kafka]\nbootstrap_servers = "127.0.0.1:9"\n\n[[sources]]\n{source}\n'
    )
    return conf


def test_status_and_drop_slot(pg_database: str) -> None:
    slot_and_publication(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("INSERT INTO t SELECT generate_series(1, 1000)")
    runner = CliRunner()
    res = runner.invoke(app, ["status", "--dsn", pg_database, "--source", "shop"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.output)
    assert status["slot_exists"] is True and status["active"] is False
    assert status["lag_bytes"] > 0
    res = runner.invoke(app, ["drop-slot", "--dsn", pg_database, "--source", "shop", "--yes"])
    assert res.exit_code == 0, res.output
    assert "slot cdc_bridge_shop: dropped" in res.output
    assert "publication cdc_bridge_shop: dropped" in res.output
    with psycopg.connect(pg_database) as c:
        assert c.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
    res = runner.invoke(app, ["drop-slot", "--dsn", pg_database, "--source", "shop", "--yes"])
    assert "did not exist" in res.output


def test_status_from_routes_toml(pg_database: str, tmp_path: Path) -> None:
    conf = routes_toml(tmp_path, pg_database, 'slot_name = "my_slot"')
    runner = CliRunner()
    res = runner.invoke(app, ["status", "--config", str(conf), "--source", "shop"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.output)
    assert status["slot"] == "my_slot" and status["slot_exists"] is False
    res = runner.invoke(app, ["status", "--config", str(conf), "--source", "nope"])
    assert res.exit_code == 2 and "no postgres source named 'nope'" in res.output


def test_resnapshot_drops_the_slot_and_publication(pg_database: str, tmp_path: Path) -> None:
    from cdc_bridge.state import StateStore

    slot_and_publication(pg_database)
    conf = routes_toml(tmp_path, pg_database)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}", migrate=True)
    store.save_offset("shop", {"lsn": "0/16B3748"})
    runner = CliRunner()
    args = ["resnapshot", "--config", str(conf), "--source", "shop"]
    res = runner.invoke(cli.app, args, input="n\n")
    assert res.exit_code == 1, res.output
    assert (
        "Forget the position of source 'shop' and drop its replication slot and publication?"
        in res.output
    )
    with psycopg.connect(pg_database) as c:
        assert c.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (1,)
    res = runner.invoke(cli.app, [*args, "--yes"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        "slot cdc_bridge_shop: dropped; publication cdc_bridge_shop: dropped",
        "source shop: saved position forgotten; the next `cdc-bridge start` takes a new snapshot",
    ]
    assert store.load_offset("shop") is None
    with psycopg.connect(pg_database) as c:
        assert c.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)
    store.close()
