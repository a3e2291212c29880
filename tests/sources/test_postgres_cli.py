"""The `pg` maintenance commands: status with slot lag, explicit slot/publication drop."""

from __future__ import annotations

import json

import psycopg
from typer.testing import CliRunner

from cdc_bridge.sources.postgres.cli import app
from cdc_bridge.sources.postgres.replication import ReplicationConnection


def test_status_and_drop_slot(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("CREATE PUBLICATION cdc_bridge_shop FOR TABLE t")
    with ReplicationConnection(pg_database) as r:
        r.create_slot("cdc_bridge_shop")
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


def test_status_from_routes_toml(pg_database: str, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    conf = tmp_path / "routes.toml"
    conf.write_text(
        f"""
[kafka]
bootstrap_servers = "127.0.0.1:9"

[[sources]]
name = "shop"
kind = "postgres"
dsn = "{pg_database}"
slot_name = "my_slot"
"""
    )
    runner = CliRunner()
    res = runner.invoke(app, ["status", "--config", str(conf), "--source", "shop"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.output)
    assert status["slot"] == "my_slot" and status["slot_exists"] is False
    res = runner.invoke(app, ["status", "--config", str(conf), "--source", "nope"])
    assert res.exit_code == 2 and "no postgres source named 'nope'" in res.output
