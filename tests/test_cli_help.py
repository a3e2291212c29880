"""`--help` of every command reads right for a new user: flags show no `<bool>` placeholder."""

from __future__ import annotations

from typing import Any

import typer.main
from typer.testing import CliRunner

from cdc_bridge.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(group, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_no_bool_placeholder_on_flags() -> None:
    commands = _commands(typer.main.get_command(app))
    assert ("demo",) in commands and ("broker",) in commands and ("dlq", "list") in commands
    runner = CliRunner()
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    demo_help = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "120"}).output
    assert "--follow" in demo_help and "<float range>" in demo_help  # typed options keep types
