"""`cdc-bridge status` on the command line: tables and --json, exit codes, state store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from cdc_bridge.testing.services import KafkaService

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``cdc-bridge ARGS`` in its own process, as an operator runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cdc_bridge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_reports_an_unreachable_source_and_the_state_store(
    kafka: KafkaService, tmp_path: Path
) -> None:
    config = tmp_path / "routes.toml"
    config.write_text(
        f"""
[bridge]
name = "st"
state = "sqlite:///{tmp_path}/state.db"

[kafka]
bootstrap_servers = "{kafka.bootstrap}"

[[sources]]
name = "catalog"
kind = "mongodb"
uri = "mongodb://cdc:s3cret@127.0.0.1:{closed_port()}/?replicaSet=rs0"
server_selection_timeout_ms = 300
"""
    )
    assert cli("migrate", "--config", str(config)).returncode == 0

    out = cli("status", "--config", str(config), "--json")
    assert out.returncode == 1, out.stderr  # a source is unreachable
    doc = json.loads(out.stdout)
    assert doc["bridge"] == "st" and doc["healthy"] is False
    (src,) = doc["sources"]
    assert src["name"] == "catalog" and src["kind"] == "mongodb"
    assert src["state"] == "unreachable" and "s3cret" not in out.stdout
    assert doc["routes"] == []
    state = doc["state"]
    assert state["error"] is None and state["revision"] == state["head_revision"]
    assert state["offsets"] == {} and state["dead_letters"] == 0

    text = cli("status", "--config", str(config))
    assert text.returncode == 1
    for expected in ("sources of bridge st", "catalog", "mongodb", "unreachable", "routes"):
        assert expected in text.stdout, text.stdout
    assert f"state store sqlite:///{tmp_path}/state.db: revision" in text.stdout.replace("\n", "")


def test_status_with_a_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "routes.toml"
    config.write_text('[bridge]\nmetrics = "nowhere"\n[kafka]\nbootstrap_servers = "x:1"\n')
    out = cli("status", "--config", str(config))
    assert out.returncode == 2
    assert "bridge.metrics" in out.stderr and "host:port" in out.stderr
    assert "Traceback" not in out.stderr
