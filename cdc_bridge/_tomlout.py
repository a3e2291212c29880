"""A small TOML writer for showing a resolved config (``check --show-config``, docs).

Handles what configs hold: tables, arrays of tables, arrays and scalars; ``None`` is left
out (TOML has no null).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["dumps", "toml_value"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else orjson.dumps(k).decode()


def toml_value(v: Any) -> str:
    """One TOML value (inline form)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if isinstance(v, Mapping):
        inner = ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
    return orjson.dumps(str(v)).decode()


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _emit(data: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    tables = []
    for k, v in data.items():
        if v is None:
            continue
        if (isinstance(v, Mapping) and v) or _is_table_array(v):
            tables.append((k, v))
        else:
            out.append(f"{_key(k)} = {toml_value(v)}")
    for k, v in tables:
        name = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if isinstance(v, Mapping):
            out.append("")
            out.append(f"[{name}]")
            _emit(v, name, out)
        else:
            for item in v:
                out.append("")
                out.append(f"[[{name}]]")
                _emit(item, name, out)


def dumps(data: Mapping[str, Any]) -> str:
    out: list[str] = []
    _emit(data, "", out)
    return "\n".join(out).strip() + "\n"
