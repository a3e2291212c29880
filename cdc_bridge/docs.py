"""The configuration reference, generated from the config models and the kind registry.

``cdc-bridge docs config`` prints it; ``cdc-bridge docs config --write
docs/reference/configuration.md`` (part of ``just docs``) refreshes the block between the
``config-reference`` markers of the docs site's reference page, and a test fails when that block
is stale.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from cdc_bridge._tomlout import toml_value
from cdc_bridge.config import (
    BridgeSection,
    Dsn,
    KafkaSection,
    RouteConfigBase,
    SinkConfigBase,
    SourceConfigBase,
    is_secret_field,
)
from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS, Kind

__all__ = ["END", "START", "config_reference", "update_file"]

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``list[str] | None`` -> ``array of strings``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is Literal:
        return "one of " + ", ".join(f"`{toml_value(a)}`" for a in args)
    if origin in (list, tuple, set):
        inner = type_name(args[0]) if args else "values"
        if inner.startswith("one of "):
            return f"array of ({inner})"
        return f"array of {inner}s" if inner in _SCALARS.values() else f"array of {inner}"
    if origin is dict or annotation is dict:
        return "table"
    if isinstance(annotation, type):
        if issubclass(annotation, Dsn):
            return "string (URL)"
        if issubclass(annotation, SecretStr):
            return "string"
        if issubclass(annotation, bool):
            return "boolean"
        for t, name in _SCALARS.items():
            if issubclass(annotation, t):
                return name
        if issubclass(annotation, BaseModel):
            return "table"
    if annotation is Any:
        return "any"
    return str(annotation).replace("typing.", "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "—"
    return f"`{_cell(toml_value(value))}`"


def _example(field: Any) -> str:
    if not field.examples:
        return ""
    return f"`{_cell(toml_value(field.examples[0]))}`"


def fields_table(model: type[BaseModel], skip: set[str] | None = None) -> str:
    """A Markdown table of ``model``'s keys (minus ``skip``, e.g. keys shown elsewhere)."""
    rows = ["| key | type | default | description | example |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        if skip and key in skip:
            continue
        kind = type_name(field.annotation)
        if is_secret_field(field):
            kind += " (secret)"
        elif "Dsn" in kind or _is_dsn(field):
            kind += " (password masked)"
        rows.append(
            f"| `{key}` | {_cell(kind)} | {_default(field)} | "
            f"{_cell(field.description or '')} | {_example(field)} |"
        )
    return "\n".join(rows)


def _is_dsn(field: Any) -> bool:
    ann = field.annotation
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return isinstance(ann, type) and issubclass(ann, Dsn)


def _changed_keys(model: type[BaseModel], base: type[BaseModel]) -> set[str]:
    """Keys of ``base`` that ``model`` documents the same way (shown once, in the base table)."""
    same = set()
    for name, field in base.model_fields.items():
        mine = model.model_fields.get(name)
        if mine is not None and (
            mine.description == field.description and mine.annotation == field.annotation
        ):
            same.add(field.alias or name)
    return same


def _kind_section(kind: Kind, what: str, base: type[BaseModel]) -> list[str]:
    out = [f'#### `kind = "{kind.name}"`' + (f" — {kind.summary}" if kind.summary else ""), ""]
    try:
        model = kind.config_model()
    except ImportError:
        return [*out, "_Not available in this build._", ""]
    doc = (model.__doc__ or "").strip().splitlines()
    if doc and doc[0]:
        out += [doc[0], ""]
    skip = _changed_keys(model, base) | {"kind"}
    out += [f"Keys besides the common {what} keys:", "", fields_table(model, skip), ""]
    return out


def _route_section(kind: Kind) -> list[str]:
    out = [f"#### Routes to a `{kind.name}` sink", ""]
    try:
        model = kind.route_model()
    except ImportError:
        return [*out, "_Not available in this build._", ""]
    if model is None:
        return [*out, "Only the common route keys.", ""]
    skip = _changed_keys(model, RouteConfigBase)
    return [*out, fields_table(model, skip), ""]


def config_reference() -> str:
    """The whole reference, as Markdown."""
    out = [
        "Generated from the config models (`cdc-bridge docs config`); `(secret)` values are "
        "never printed (`check --show-config` shows `***`). Any string may use `${VAR}` / "
        '`${VAR:-default}`; any key `x` may be given as `x_file = "path"` to read it from a '
        "file.",
        "",
        "### `[bridge]`",
        "",
        fields_table(BridgeSection),
        "",
        "### `[kafka]`",
        "",
        fields_table(KafkaSection),
        "",
        "### `[[sources]]`",
        "",
        "Common keys of every source kind:",
        "",
        fields_table(SourceConfigBase),
        "",
    ]
    for name in sorted(SOURCE_KINDS):
        out += _kind_section(SOURCE_KINDS[name], "source", SourceConfigBase)
    out += [
        "### `[[sinks]]`",
        "",
        "Common keys of every sink kind:",
        "",
        fields_table(SinkConfigBase),
        "",
    ]
    for name in sorted(SINK_KINDS):
        out += _kind_section(SINK_KINDS[name], "sink", SinkConfigBase)
    out += [
        "### `[[routes]]`",
        "",
        "Common keys of every route (plus the keys of the sink kind it points to):",
        "",
        fields_table(RouteConfigBase),
        "",
    ]
    for name in sorted(SINK_KINDS):
        out += _route_section(SINK_KINDS[name])
    return "\n".join(out).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no {START} ... {END} markers")
    return pattern.sub(lambda _m: f"{START}\n{block}{END}", text, count=1)


def update_file(path: str | Path) -> bool:
    """Refresh the generated block in ``path``; True when it changed."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    new = replace_block(text, config_reference())
    if new != text:
        file.write_text(new, encoding="utf-8")
        return True
    return False
