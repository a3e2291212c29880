"""The generated configuration reference: complete, secrets marked, and the README's copy
up to date (`just docs` regenerates it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdc_bridge.cli import app
from cdc_bridge.docs import END, START, config_reference, replace_block
from tests import fakekinds

README = Path(__file__).parent.parent / "README.md"


def test_readme_reference_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text
    assert replace_block(text, config_reference()) == text, (
        "the configuration reference in README.md is stale: run `just docs`"
    )


def test_reference_covers_sections_and_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    fakekinds.register(monkeypatch)
    ref = CliRunner().invoke(app, ["docs", "config"]).output
    for heading in ("### `[bridge]`", "### `[kafka]`", "### `[[sources]]`", "### `[[sinks]]`"):
        assert heading in ref
    assert '#### `kind = "fake"`' in ref
    assert "#### Routes to a `fakesink` sink" in ref
    assert '| `api_key` | string (secret) | **required** | An API key. | `"k-123"` |' in ref
    assert "| `dsn` | string (URL) (password masked) | **required** |" in ref
    assert "| `bootstrap_servers` | string | **required** |" in ref
    assert "| `target_table` | string | **required** |" in ref


def test_write_updates_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(f"# x\n\n{START}\nOLD-CONTENT\n{END}\ntail\n")
    result = CliRunner().invoke(app, ["docs", "config", "--write", str(doc)])
    assert result.exit_code == 0 and "updated" in result.output
    text = doc.read_text()
    assert "OLD-CONTENT" not in text and text.endswith(f"{END}\ntail\n")
    assert config_reference() in text
    result = CliRunner().invoke(app, ["docs", "config", "--write", str(doc)])
    assert "up to date" in result.output
