"""The generated configuration reference (complete, secrets marked, the docs site's copy up to
date: `just docs` regenerates it) and the docs site itself (builds with `mkdocs build --strict`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdc_bridge.cli import app
from cdc_bridge.docs import END, START, config_reference, replace_block
from tests import fakekinds

ROOT = Path(__file__).parent.parent
REFERENCE = ROOT / "docs" / "reference" / "configuration.md"
README = ROOT / "README.md"


def test_docs_reference_is_up_to_date() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert START in text and END in text
    assert replace_block(text, config_reference()) == text, (
        "the configuration reference in docs/reference/configuration.md is stale: run `just docs`"
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


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """Every page in the nav exists, every link and anchor resolves (strict mode fails on any
    warning), and the key pages are rendered."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "--site-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "getting-started.html", "reference/configuration.html"):
        assert (tmp_path / page).is_file(), page
    reference = (tmp_path / "reference" / "configuration.html").read_text(encoding="utf-8")
    assert "bootstrap_servers" in reference and "<table>" in reference


def test_readme_is_short_and_its_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "just test" in text  # the command CI runs, quoted for new contributors
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets, "the README links into the docs"
    for target in targets:
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.exists(), f"README links to {target}, which does not exist"


def test_walkthrough_config_is_the_one_in_the_docs() -> None:
    """The five-minute walkthrough's routes.toml is examples/postgres-to-sqlite.toml (which CI
    checks with `cdc-bridge check` from the installed wheel), word for word, and it parses."""
    example = (ROOT / "examples" / "postgres-to-sqlite.toml").read_text(encoding="utf-8")
    body = "".join(line for line in example.splitlines(True) if not line.startswith("# "))
    for page in (README, ROOT / "docs" / "getting-started.md"):
        assert f"```toml\n{body}```" in page.read_text(encoding="utf-8"), page
    from cdc_bridge.config import parse_config

    cfg = parse_config(body.replace("${PG_PASSWORD}", "secret"))
    assert [s.kind for s in cfg.sources] == ["postgres"]
    assert [s.kind for s in cfg.sinks] == ["database"]
