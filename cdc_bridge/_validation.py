"""Pydantic validation errors -> plain-English config problems with TOML key paths.

Union member tags are dropped from locations, type errors of union members are merged
("expected a string or an array"), unknown keys get a "did you mean", and the input of a
secret field is never echoed (URLs have their password masked).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ValidationError

from cdc_bridge._tomlpos import Path
from cdc_bridge.config import is_secret_field, mask_url

__all__ = [
    "ProblemSink",
    "closest",
    "did_you_mean",
    "field_keys",
    "public_keys",
    "report_validation",
    "toml_type",
]


class ProblemSink(Protocol):
    def error(self, path: Path, message: str) -> None: ...


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like ``word`` (ties: the one closest in length), or None."""
    scored = []
    for choice in choices:
        ratio = difflib.SequenceMatcher(None, word, choice).ratio()
        if ratio >= cutoff:
            scored.append((-ratio, abs(len(choice) - len(word)), choice))
    return min(scored)[2] if scored else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


def field_keys(model: type[BaseModel]) -> dict[str, str]:
    """Accepted key (alias or name) -> field name."""
    keys: dict[str, str] = {}
    for name, field in model.model_fields.items():
        keys[name] = name
        if field.alias:
            keys[field.alias] = name
    return keys


def public_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "tuple_type": "an array",
    "set_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "datetime_type": "a date-time",
    "is_instance_of": "a value of another type",
}


def toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _show(value: Any, secret: bool) -> str:
    if secret:
        return "***"
    if isinstance(value, str):
        return repr(mask_url(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return ""


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is types.UnionType


def _resolve_loc(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Path, bool, Path | None]:
    """Pydantic ``loc`` -> (key path without union tags, is it a secret, path of the union)."""
    out: list[str | int] = []
    ann: Any = model
    secret = False
    union_at: Path | None = None
    for part in loc:
        ann = _unwrap(ann)
        if _is_union(ann) and isinstance(part, str):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            union_at = tuple(out)
            ann = next(
                (m for m in members if part.startswith(getattr(m, "__name__", str(m)).lower())),
                Any,
            )
            if len(members) > 1 or part in ("str", "int", "float", "bool"):
                continue
        if _is_union(ann):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = members[0] if len(members) == 1 else Any
            ann = _unwrap(ann)
        out.append(part)
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
            field_name = field_keys(ann).get(part)
            if field_name is None:
                ann = Any
                continue
            field = ann.model_fields[field_name]
            secret = secret or is_secret_field(field)
            ann = field.annotation
        else:
            args = typing.get_args(ann)
            origin = typing.get_origin(ann)
            if origin in (list, tuple, set) and args:
                ann = args[0]
            elif origin is dict and len(args) == 2:
                ann = args[1]
            else:
                ann = Any
    return tuple(out), secret, union_at


def _translate(error: Any, secret: bool, keys: list[str]) -> tuple[str, str | None, str | None]:
    """-> (message, expected, got); ``expected`` set for type errors (merged across unions)."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    shown = _show(value, secret)
    got = f"{toml_type(value)}{' ' + shown if shown else ''}"
    if kind == "missing":
        return "required key is missing", None, None
    if kind in _TYPE_NAMES:
        expected = _TYPE_NAMES[kind]
        return f"expected {expected}, got {got}", expected, got
    if kind in ("literal_error", "enum"):
        options = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        opts = [a or b for a, b in options]
        hint = did_you_mean(str(value), opts) if isinstance(value, str) else ""
        return f"must be one of {ctx.get('expected')}; got {shown or got}{hint}", None, None
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}; got {shown or got}", None, None
    if kind == "string_pattern_mismatch":
        return (
            f"{shown or 'value'} has characters that are not allowed (must match "
            f"{ctx.get('pattern')})",
            None,
            None,
        )
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return "must not be empty", None, None
    if kind in ("value_error", "assertion_error"):
        msg = str(error.get("msg", ""))
        msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
        return mask_url(msg), None, None
    return mask_url(str(error.get("msg", kind))).rstrip(".").lower(), None, None


def report_validation(
    exc: ValidationError, model: type[BaseModel], base: Path, out: ProblemSink
) -> None:
    """Turn ``exc`` (from validating ``model`` at key path ``base``) into ``out.error`` calls."""
    grouped: dict[Path, list[tuple[str, str | None, str | None]]] = {}
    union_paths: dict[Path, Path] = {}
    errors = exc.errors(include_url=False)
    suggested: set[Path] = set()  # missing keys that an unknown key's hint already names
    for error in errors:
        if error["type"] == "extra_forbidden":
            rel, _, _ = _resolve_loc(model, tuple(error["loc"]))
            parent_model = _model_at(model, rel[:-1])
            if parent_model is not None and rel:
                close = closest(str(rel[-1]), public_keys(parent_model))
                if close:
                    suggested.add((*base, *rel[:-1], close))
    for error in errors:
        rel, secret, union_at = _resolve_loc(model, tuple(error["loc"]))
        path = (*base, *rel)
        if error["type"] == "extra_forbidden":
            parent_model = _model_at(model, rel[:-1])
            key = str(rel[-1]) if rel else "?"
            keys = public_keys(parent_model) if parent_model else []
            hint = did_you_mean(key, keys)
            if not hint and keys:
                hint = f" (known keys: {', '.join(keys)})"
            out.error(path, f"unknown key '{key}'{hint}")
            continue
        if error["type"] == "missing" and path in suggested:
            continue
        grouped.setdefault(path, []).append(_translate(error, secret, public_keys(model)))
        if union_at is not None:
            union_paths[path] = (*base, *union_at)
    # When a union member went deeper (the input had that member's shape), drop the shallow
    # "expected a string, got an array" complaints of the other members.
    deep_unions = {u for p, u in union_paths.items() if len(p) > len(u)}
    for path, items in grouped.items():
        if path in deep_unions and any(
            len(p) > len(path) and p[: len(path)] == path for p in grouped
        ):
            continue
        typed = [i for i in items if i[1] is not None]
        if len(typed) > 1 and len(typed) == len(items):
            expected = " or ".join(dict.fromkeys(i[1] for i in typed if i[1]))
            out.error(path, f"expected {expected}, got {typed[0][2]}")
        else:
            for message, _, _ in items:
                out.error(path, message)


def _model_at(model: type[BaseModel], rel: Path) -> type[BaseModel] | None:
    ann: Any = model
    for part in rel:
        ann = _unwrap(ann)
        if _is_union(ann):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = members[0] if members else Any
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
            name = field_keys(ann).get(part)
            if name is None:
                return None
            ann = ann.model_fields[name].annotation
        elif isinstance(part, int):
            args = typing.get_args(_unwrap(ann))
            ann = args[0] if args else Any
    ann = _unwrap(ann)
    if _is_union(ann):
        members = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = members[0] if members else Any
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
