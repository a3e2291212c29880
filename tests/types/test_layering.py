"""The types layer imports no source, and the MySQL binlog wire layer neither the config models
nor Kafka: checked in a fresh interpreter, by the modules each import loads."""

from __future__ import annotations

import subprocess
import sys

LOADED = """
import sys
import {module}
print(" ".join(sorted(m for m in sys.modules if m.startswith(("cdc_bridge", "confluent_kafka", "pydantic")))))
"""


def loaded_by(module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", LOADED.format(module=module)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_types_import_no_source() -> None:
    loaded = loaded_by("cdc_bridge.types.mysql, cdc_bridge.types.postgres")
    assert "cdc_bridge.types.mysql_columns" in loaded
    assert not {m for m in loaded if m.startswith("cdc_bridge.sources")}, loaded


def test_binlog_wire_layer_imports_neither_config_nor_kafka() -> None:
    loaded = loaded_by("cdc_bridge.sources.mysql.binlog")
    assert "cdc_bridge.sources.mysql.rows" in loaded
    assert not {m for m in loaded if m.startswith(("confluent_kafka", "pydantic"))}, loaded
    assert not {m for m in loaded if m.endswith((".config", "._loader", ".kafka"))}, loaded
