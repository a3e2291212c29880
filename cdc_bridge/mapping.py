"""A route's field mapping: include/exclude, rename, constants and computed values.

Applied by the route engine to every record before the sink sees it, in this order: computed
values are evaluated on the original record; ``include``/``exclude`` pick source fields;
``rename`` renames them; then constants and computed values are added. Key fields are renamed
like row fields but never dropped (sinks need them to upsert and delete by key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cdc_bridge.expressions import Expression, ExpressionError, compile_expression

__all__ = ["FieldMapping", "Mapper", "constant_schema"]

Scalar = str | int | float | bool | None


class FieldMapping(BaseModel):
    """``[routes.mapping]``: how a route reshapes rows."""

    model_config = ConfigDict(extra="forbid")

    include: list[str] | None = Field(
        None,
        description="Only these source fields are kept (all when omitted).",
        examples=[["id", "email", "country"]],
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Source fields dropped (e.g. secrets).",
        examples=[["password_hash"]],
    )
    rename: dict[str, str] = Field(
        default_factory=dict,
        description="Source field -> target field name.",
        examples=[{"email": "email_address"}],
    )
    constants: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Target field -> constant value added to every row.",
        examples=[{"origin": "shop"}],
    )
    computed: dict[str, str] = Field(
        default_factory=dict,
        description="Target field -> expression over before/after/op/source, added to every row.",
        examples=[{"full_name": 'concat(after.first_name, " ", after.last_name)'}],
    )

    @field_validator("computed")
    @classmethod
    def _parse_computed(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for name, text in value.items():
            try:
                compile_expression(text)
            except ExpressionError as exc:
                problems.append(f"computed.{name}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def is_identity(self) -> bool:
        return not (
            self.include is not None
            or self.exclude
            or self.rename
            or self.constants
            or self.computed
        )


def constant_schema(value: Scalar) -> dict[str, Any]:
    """The Connect schema a constant column gets."""
    if isinstance(value, bool):
        return {"type": "boolean", "optional": True}
    if isinstance(value, int):
        return {"type": "int64", "optional": True}
    if isinstance(value, float):
        return {"type": "double", "optional": True}  # JsonConverter's name
    return {"type": "string", "optional": True}


class Mapper:
    """A compiled :class:`FieldMapping`."""

    def __init__(self, mapping: FieldMapping) -> None:
        self.identity = mapping.is_identity
        self.include = frozenset(mapping.include) if mapping.include is not None else None
        self.exclude = frozenset(mapping.exclude)
        self.rename = dict(mapping.rename)
        self.constants = dict(mapping.constants)
        self.computed: dict[str, Expression] = {
            k: compile_expression(v) for k, v in mapping.computed.items()
        }
        self._fields_cache: dict[int, tuple[Any, dict[str, Any]]] = {}

    def _keep(self, name: str) -> bool:
        if self.include is not None and name not in self.include:
            return False
        return name not in self.exclude

    def map_row(
        self, row: dict[str, Any] | None, env: Mapping[str, Any], *, add: bool = True
    ) -> dict[str, Any] | None:
        """Map one row; ``add``: add constants and computed values (for ``after`` rows)."""
        if row is None or self.identity:
            return row
        rename = self.rename
        out = {rename.get(k, k): v for k, v in row.items() if self._keep(k)}
        if add:
            out.update(self.constants)
            for name, expr in self.computed.items():
                out[name] = expr.evaluate(env)
        return out

    def map_key(self, key: dict[str, Any] | None) -> dict[str, Any] | None:
        if key is None or not self.rename:
            return key
        rename = self.rename
        return {rename.get(k, k): v for k, v in key.items()}

    def map_key_fields(self, names: tuple[str, ...]) -> tuple[str, ...]:
        rename = self.rename
        return tuple(rename.get(k, k) for k in names) if rename else names

    def map_fields(self, fields: dict[str, Any] | None) -> dict[str, Any] | None:
        """Connect field schemas of the mapped row (cached per input schema object)."""
        if fields is None or self.identity:
            return fields
        cached = self._fields_cache.get(id(fields))
        if cached is not None and cached[0] is fields:
            return cached[1]
        rename = self.rename
        out: dict[str, Any] = {}
        for k, schema in fields.items():
            if self._keep(k):
                target = rename.get(k, k)
                out[target] = {**schema, "field": target}
        for name, value in self.constants.items():
            out[name] = {**constant_schema(value), "field": name}
        for name, expr in self.computed.items():
            out[name] = {**expr.result_schema(fields), "field": name}
        if len(self._fields_cache) > 256:
            self._fields_cache.clear()
        self._fields_cache[id(fields)] = (fields, out)
        return out
