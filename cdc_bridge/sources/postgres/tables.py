"""Per-table codecs: Postgres columns -> a TableSchema plus a generated row converter."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from cdc_bridge.events import CONNECTOR_POSTGRES, Column, TableSchema
from cdc_bridge.sources.postgres.pgoutput import UNCHANGED_TOAST
from cdc_bridge.types.postgres import (
    ColumnType,
    PgType,
    TypeOptions,
    builtin_array_element,
    column_default,
    column_type,
)

__all__ = ["ColumnDef", "TableCodec", "TypeCatalog", "catalog_columns"]

log = logging.getLogger(__name__)

_BUILTIN_MAX_OID = 16383  # FirstNormalObjectId - 1: OIDs above are user-defined types


@dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    type_oid: int
    typmod: int
    not_null: bool = False
    default: str | None = None  # the default expression (pg_get_expr), if any


class TypeCatalog:
    """Lazily loaded facts about user-defined types (enums, domains, their arrays)."""

    def __init__(self, conn: psycopg.Connection | None) -> None:
        self.conn = conn
        self.types: dict[int, PgType] = {}

    def invalidate(self, oid: int) -> None:
        self.types.pop(oid, None)

    def load(self, oids: Sequence[int]) -> None:
        want = {o for o in oids if o > _BUILTIN_MAX_OID and o not in self.types}
        want |= {o for o in oids if o <= _BUILTIN_MAX_OID and builtin_array_element(o) is None}
        want -= set(self.types)
        if not want or self.conn is None:
            return
        rows = self.conn.execute(
            "SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype,"
            " coalesce(array_agg(e.enumlabel::text ORDER BY e.enumsortorder)"
            "   FILTER (WHERE e.enumlabel IS NOT NULL), '{}')"
            " FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid"
            " WHERE t.oid = ANY(%s) GROUP BY t.oid",
            (list(want),),
        ).fetchall()
        more: list[int] = []
        for oid, name, typtype, elem, base, labels in rows:
            t = PgType(int(oid), name, typtype, int(elem or 0), int(base or 0), tuple(labels))
            self.types[t.oid] = t
            if t.element_oid and t.typtype == "b":
                # only true arrays have a typelem with typlen -1; name starting with _ is the rule
                if not name.startswith("_"):
                    self.types[t.oid] = PgType(t.oid, name, typtype, 0, t.base_oid, t.enum_labels)
                else:
                    more.append(t.element_oid)
            if t.base_oid:
                more.append(t.base_oid)
        for o in want:
            self.types.setdefault(o, PgType(o, str(o)))
        if more:
            self.load(more)


def catalog_columns(
    conn: psycopg.Connection, relid: int, *, generated: bool = False
) -> tuple[list[ColumnDef], tuple[str, ...], dict[str, str]]:
    """Columns (no dropped ones; generated ones only with ``generated``: pgoutput does not
    replicate them, Debezium's snapshot reads them), primary key, and SQL type names."""
    rows = conn.execute(
        "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull,"
        " format_type(a.atttypid, a.atttypmod),"
        " CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END"
        " FROM pg_attribute a"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " AND (%s OR a.attgenerated = '') ORDER BY a.attnum",
        (relid, generated),
    ).fetchall()
    pk = conn.execute(
        "SELECT coalesce(array_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)), '{}')"
        " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary",
        (relid,),
    ).fetchone()
    cols = [ColumnDef(r[0], int(r[1]), int(r[2]), bool(r[3]), r[5]) for r in rows]
    return cols, tuple(pk[0]) if pk else (), {r[0]: r[4] for r in rows}


_FALLBACKS: dict[str, Any] = {
    "int8": 0,
    "int16": 0,
    "int32": 0,
    "int64": 0,
    "float": 0.0,
    "double": 0.0,
    "boolean": False,
    "string": "",
    "bytes": "",
    "array": [],
}


def _fallback(schema: Mapping[str, Any]) -> Any:
    """Debezium's value for a required column whose value was not sent (JdbcValueConverters)."""
    if schema.get("name") == "org.apache.kafka.connect.data.Decimal":
        return "AA=="  # 0
    if schema.get("name") == "io.debezium.data.VariableScaleDecimal":
        return {"scale": 0, "value": "AA=="}
    return _FALLBACKS.get(str(schema.get("type")))


RowBuilder = Callable[[Sequence[Any]], dict[str, Any]]


def _special(x: Any, placeholder: Any, conv: Callable[[str], Any] | None) -> Any:
    if x is None:
        return None
    if x is UNCHANGED_TOAST:
        return placeholder
    if isinstance(x, bytes):  # binary-format value (never requested); decode as text
        s = x.decode("utf-8", "replace")
        return conv(s) if conv else s
    return conv(x) if conv else x


class TableCodec:
    """A table version: its TableSchema and a row builder generated for its column list.

    The builder is compiled once per table version (like ``namedtuple`` does), so converting a
    row is one dict display with a type check and one converter call per column.
    """

    def __init__(
        self,
        source_name: str,
        database: str,
        namespace: str,
        table: str,
        columns: Sequence[ColumnDef],
        key_columns: tuple[str, ...],
        options: TypeOptions,
        catalog: TypeCatalog,
    ) -> None:
        catalog.load([c.type_oid for c in columns])
        self.namespace = namespace
        self.table = table
        self.columns = list(columns)
        all_types = [
            column_type(
                c.type_oid,
                c.typmod,
                optional=not c.not_null,
                options=options,
                catalog=catalog.types,
            )
            for c in columns
        ]
        all_names = [c.name for c in columns]
        # Columns of types Debezium leaves out (box, circle, ...) are not in the events;
        # ``positions`` maps the kept columns to their place in a tuple of all values.
        self.positions = [i for i, t in enumerate(all_types) if not t.skip]
        kept = [columns[i] for i in self.positions]
        self.names = [all_names[i] for i in self.positions]
        self.types = [all_types[i] for i in self.positions]
        self.defaults: dict[str, Any] = {}
        schemas = []
        for c, t in zip(kept, self.types, strict=True):
            default = column_default(c.type_oid, c.default, t, catalog.types)
            if default is None:
                schemas.append(t.schema)
            else:
                self.defaults[c.name] = default
                schemas.append({**t.schema, "default": default})
        self.schema = TableSchema(
            connector=CONNECTOR_POSTGRES,
            source_name=source_name,
            database=database,
            namespace=namespace,
            table=table,
            columns=tuple(Column(c.name, sch) for c, sch in zip(kept, schemas, strict=True)),
            key_columns=tuple(k for k in key_columns if k in self.names),
        )
        self.key_index = [all_names.index(k) for k in self.schema.key_columns]
        # Set when a value does not fit the schema as built (an enum label added later).
        self.stale = False
        self.types = [self._watch_enum(t) for t in self.types]
        # Old tuples under REPLICA IDENTITY DEFAULT carry only the key: the other columns get
        # what Debezium's records show for them: the column default, else (NOT NULL) the
        # type's fallback value instead of a schema-breaking null, else null.
        self.fallbacks = {
            c.name: self.defaults[c.name] if c.name in self.defaults else _fallback(t.schema)
            for c, t in zip(kept, self.types, strict=True)
            if (c.not_null or c.name in self.defaults) and c.name not in self.schema.key_columns
        }
        self._fast = self._compile()
        self._warned: set[str] = set()
        if options.replace_null_with_default and self.defaults:
            fast, slow = self._fast, self._slow
            self._fast = lambda values: self._fill_defaults(fast(values))
            self._slow = lambda values: self._fill_defaults(slow(values))  # type: ignore[method-assign]

    def _watch_enum(self, t: ColumnType) -> ColumnType:
        if t.schema.get("name") != "io.debezium.data.Enum":
            return t
        labels = frozenset(t.schema.get("parameters", {}).get("allowed", "").split(","))

        def conv(s: str) -> str:
            if s not in labels:
                self.stale = True
            return s

        return ColumnType(t.schema, conv, t.toast_placeholder, t.type_name, t.fallback)

    def _compile(self) -> RowBuilder:
        env: dict[str, Any] = {"_sp": _special, "_U": UNCHANGED_TOAST.__class__, "str": str}
        parts = []
        for i, name, t in zip(self.positions, self.names, self.types, strict=True):
            env[f"_c{i}"] = t.convert
            env[f"_p{i}"] = t.toast_placeholder
            if t.convert is None:
                expr = f"(x if (x := v[{i}]).__class__ is str else _sp(x, _p{i}, None))"
            else:
                expr = f"(_c{i}(x) if (x := v[{i}]).__class__ is str else _sp(x, _p{i}, _c{i}))"
            parts.append(f"{name!r}: {expr}")
        src = "def build(v):\n    return {" + ", ".join(parts) + "}\n"
        exec(compile(src, f"<row builder {self.namespace}.{self.table}>", "exec"), env)
        builder: RowBuilder = env["build"]
        return builder

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        """Tuple values (str / None / UNCHANGED_TOAST) -> Connect payload row."""
        try:
            return self._fast(values)
        except Exception:
            return self._slow(values)

    def _fill_defaults(self, row: dict[str, Any]) -> dict[str, Any]:
        """NULLs of columns with a default become the default (replace_null_with_default)."""
        for name, default in self.defaults.items():
            if row[name] is None:
                row[name] = default
        return row

    def key_row(self, values: Sequence[Any]) -> dict[str, Any]:
        """An old-key tuple ('K'): key columns set, the rest null or their type's fallback."""
        row = self.row(values)
        if self.fallbacks:
            row.update(self.fallbacks)
        return row

    def _slow(self, values: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if len(values) != len(self.columns):
            raise ValueError(
                f"{self.namespace}.{self.table}: row has {len(values)} values, "
                f"schema has {len(self.columns)} columns"
            )
        for name, t, i in zip(self.names, self.types, self.positions, strict=True):
            v = values[i]
            try:
                out[name] = _special(v, t.toast_placeholder, t.convert)
            except Exception as exc:
                if name not in self._warned:
                    self._warned.add(name)
                    log.error(
                        "%s.%s.%s: cannot convert value %.80r (%s); writing null",
                        self.namespace,
                        self.table,
                        name,
                        v,
                        exc,
                    )
                out[name] = None
        return out

    def signature(self) -> tuple[Any, ...]:
        return (self.namespace, self.table, tuple(self.columns), self.schema.key_columns)
