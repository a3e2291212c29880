"""Table shapes for the MySQL source: information_schema columns, TableMap merge, row builders.

A :class:`TableState` is one version of a captured table: its Connect ``TableSchema`` and a
fast ``row()`` that turns canonical values into a payload dict. The binlog path builds it from
the TableMap event (authoritative for the row layout, so an ALTER TABLE mid-stream can never
mislabel columns when ``binlog_row_metadata=FULL``) enriched with information_schema facts;
the snapshot path builds it from information_schema alone. Both give identical schemas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Context, Decimal
from typing import Any

from cdc_bridge.events import CONNECTOR_MYSQL, Column, TableSchema
from cdc_bridge.sources.mysql.rows import parse_datetime, parse_time
from cdc_bridge.types.mysql import TypeOptions, field_for
from cdc_bridge.types.mysql_columns import ColumnInfo, T

__all__ = ["TableState", "default_text", "load_columns", "merge_table_map", "parse_default"]

_TYPES = {
    "tinyint": T.TINY,
    "smallint": T.SHORT,
    "mediumint": T.INT24,
    "int": T.LONG,
    "integer": T.LONG,
    "bigint": T.LONGLONG,
    "float": T.FLOAT,
    "double": T.DOUBLE,
    "real": T.DOUBLE,
    "decimal": T.NEWDECIMAL,
    "numeric": T.NEWDECIMAL,
    "year": T.YEAR,
    "date": T.DATE,
    "time": T.TIME2,
    "datetime": T.DATETIME2,
    "timestamp": T.TIMESTAMP2,
    "char": T.STRING,
    "binary": T.STRING,
    "varchar": T.VARCHAR,
    "varbinary": T.VARCHAR,
    "tinytext": T.BLOB,
    "text": T.BLOB,
    "mediumtext": T.BLOB,
    "longtext": T.BLOB,
    "tinyblob": T.BLOB,
    "blob": T.BLOB,
    "mediumblob": T.BLOB,
    "longblob": T.BLOB,
    "json": T.JSON,
    "enum": T.ENUM,
    "set": T.SET,
    "bit": T.BIT,
    "geometry": T.GEOMETRY,
    "point": T.GEOMETRY,
    "linestring": T.GEOMETRY,
    "polygon": T.GEOMETRY,
    "multipoint": T.GEOMETRY,
    "multilinestring": T.GEOMETRY,
    "multipolygon": T.GEOMETRY,
    "geometrycollection": T.GEOMETRY,
}

_BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}) | {
    "geometry",
    "point",
    "linestring",
    "polygon",
}


def _quoted_values(column_type: str) -> tuple[str, ...]:
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", inner))


_WIDE = Context(prec=100)
NOW_DEFAULT = re.compile(r"^(current_timestamp|now|localtime|localtimestamp)(\(\d*\))?$", re.I)


def default_text(raw: Any) -> str | None:
    """information_schema COLUMN_DEFAULT -> the literal's text (None for no default / NULL).

    MariaDB quotes string literals ('x') and writes NULL; MySQL gives the bare text and SQL
    NULL. Expressions (current_timestamp(), ...) come back as they are.
    """
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'").replace("\\\\", "\\")
    if text.upper() == "NULL":
        return None
    return text


_CALL = re.compile(r"^[A-Za-z_][\w$]*\s*\(.*\)$", re.S)


def _is_expression(raw: Any, extra: Any) -> bool:
    """Whether a COLUMN_DEFAULT is an expression (uuid(), a + 1) rather than a literal: MySQL
    8 flags them DEFAULT_GENERATED; MariaDB quotes literal strings, so an unquoted function
    call is an expression."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    if "default_generated" in str(extra or "").lower():
        return not NOW_DEFAULT.match(text)
    return bool(_CALL.match(text)) and not NOW_DEFAULT.match(text)


def parse_default(c: ColumnInfo, text: str | None, expression: bool = False) -> Any:
    """A column default as the canonical value the row decoders produce (None if unknown, or
    an expression evaluated per row)."""
    if text is None or expression:
        return None
    t = c.type
    try:
        if t in (T.TINY, T.SHORT, T.INT24, T.LONG, T.LONGLONG, T.YEAR):
            return int(text)
        if t in (T.FLOAT, T.DOUBLE):
            return float(text)
        if t in (T.NEWDECIMAL, T.DECIMAL):
            return int(Decimal(text).scaleb(c.scale, _WIDE))
        if t == T.BIT:
            m = re.match(r"^b'([01]*)'$", text)
            return int(m.group(1) or "0", 2) if m else int(text)
        if t in (T.DATE, T.DATETIME2, T.TIMESTAMP2):
            if NOW_DEFAULT.match(text):
                return 0  # Debezium: CURRENT_TIMESTAMP defaults become the epoch
            is_zero, us = parse_datetime(text)
            if is_zero:
                return None
            return us // 86_400_000_000 if t == T.DATE else us
        if t == T.TIME2:
            return parse_time(text)
        if t == T.GEOMETRY or t == T.JSON or c.is_json:
            return None
        if c.binary:
            return text.encode("latin-1", "replace")
        return text
    except (ValueError, IndexError):
        return None


def load_columns(
    cur: Any, database: str, table: str
) -> tuple[list[ColumnInfo], tuple[str, ...]] | None:
    """Columns (in ordinal order) and primary key of ``database.table``; None if no such table."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, "
        "NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, COLUMN_KEY, "
        "CHARACTER_SET_NAME, COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    rows = cur.fetchall()
    if not rows:
        return None
    json_cols: set[str] = set()
    try:  # MariaDB: JSON is LONGTEXT with a json_valid() check constraint
        cur.execute(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        for (clause,) in cur.fetchall():
            m = re.match(r"\s*json_valid\(`?([^`)]+)`?\)\s*$", str(clause), re.I)
            if m:
                json_cols.add(m.group(1))
    except Exception:  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS
        pass
    cols: list[ColumnInfo] = []
    pk: list[str] = []
    for pos, row in enumerate(rows, 1):
        name, data_type, column_type, nullable, prec, scale, dtp, clen, key, cs = row[:10]
        default_raw, extra, comment = row[10:13]
        dt = str(data_type).lower()
        ctype = str(column_type).lower()
        t = _TYPES.get(dt)
        if t is None:
            raise ValueError(f"column {database}.{table}.{name}: type {ctype} is not supported")
        c = ColumnInfo(
            name=name,
            type=t,
            unsigned="unsigned" in ctype,
            binary=dt in _BINARY_TYPES,
            nullable=nullable == "YES",
            sql_type=ctype,
            encoding="cp1252" if str(cs).lower() == "latin1" else "utf-8",
        )
        if t == T.NEWDECIMAL:
            c.precision, c.scale = int(prec or 10), int(scale or 0)
        elif t in (T.TIME2, T.DATETIME2, T.TIMESTAMP2):
            c.fsp = int(dtp or 0)
        elif t == T.BIT:
            c.length = int(prec or 1)
        elif t == T.ENUM:
            c.enum_values = _quoted_values(str(column_type))
        elif t == T.SET:
            c.set_values = _quoted_values(str(column_type))
        elif clen is not None:
            c.length = int(clen)
        if name in json_cols:
            c.is_json = True
        default_text_ = default_text(default_raw)
        c.default = parse_default(c, default_text_, _is_expression(default_raw, extra))
        c.extra.update(
            position=pos,
            default_text=default_text_,
            auto_increment="auto_increment" in str(extra or "").lower(),
            comment=str(comment) if comment else None,
            charset=str(cs) if cs else None,
            numeric_precision=prec,
            datetime_precision=dtp,
            char_max_length=clen,
        )
        if key == "PRI":
            pk.append(name)
        cols.append(c)
    if pk:
        # Key order is the index order, not the column order.
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (database, table),
        )
        pk = [r[0] for r in cur.fetchall()] or pk
    return cols, tuple(pk)


def merge_table_map(
    tm_cols: Sequence[ColumnInfo],
    has_names: bool,
    tm_pk: tuple[int, ...] | None,
    info: tuple[list[ColumnInfo], tuple[str, ...]] | None,
) -> tuple[list[ColumnInfo], tuple[str, ...]] | None:
    """Columns for a TableMap: its own layout, with names/flags from information_schema as needed.

    Returns None when the layout cannot be labelled (no FULL metadata and information_schema
    disagrees on the column count), so the caller can report it instead of guessing.
    """
    info_cols, info_pk = info if info is not None else ([], ())
    by_name = {c.name: c for c in info_cols}
    out: list[ColumnInfo] = []
    if has_names:
        for c in tm_cols:
            ic = by_name.get(c.name)
            if ic is not None:
                c.is_json = c.is_json or ic.is_json
                c.sql_type = ic.sql_type
                c.default = ic.default
                c.extra.update(ic.extra)
                if c.enum_values is None:
                    c.enum_values = ic.enum_values
                if c.set_values is None:
                    c.set_values = ic.set_values
            out.append(c)
        if tm_pk is not None:
            pk = tuple(tm_cols[i].name for i in tm_pk)
        else:
            names = {c.name for c in tm_cols}
            pk = tuple(k for k in info_pk if k in names)
        return out, pk
    if len(info_cols) != len(tm_cols):
        return None
    for c, ic in zip(tm_cols, info_cols, strict=True):
        c.name = ic.name
        c.unsigned = c.unsigned or ic.unsigned
        c.binary = ic.binary
        c.encoding = ic.encoding
        c.is_json = ic.is_json
        c.enum_values = c.enum_values or ic.enum_values
        c.set_values = c.set_values or ic.set_values
        c.sql_type = ic.sql_type
        c.default = ic.default
        c.extra.update(ic.extra)
        out.append(c)
    return out, info_pk


class TableState:
    """One version of a captured table: Connect schema plus a fast payload builder."""

    __slots__ = ("columns", "convs", "defaults", "names", "schema")

    def __init__(
        self,
        source_name: str,
        database: str,
        table: str,
        columns: Sequence[ColumnInfo],
        key: tuple[str, ...],
        opts: TypeOptions,
        snapshot: bool = False,
    ) -> None:
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in columns)
        fields = []
        convs = []
        for i, c in enumerate(columns):
            schema, conv = field_for(c, opts, snapshot)
            if c.name in key:
                schema = {**schema, "optional": False}
            fields.append(Column(c.name, schema))
            if conv is not None:
                convs.append((i, conv))
        self.convs = tuple(convs)
        # replace_null_with_default: (index, payload default) of the columns that have one
        self.defaults: tuple[tuple[int, Any], ...] = ()
        if opts.replace_null_with_default:
            self.defaults = tuple(
                (i, f.schema["default"]) for i, f in enumerate(fields) if "default" in f.schema
            )
        self.schema = TableSchema(
            connector=CONNECTOR_MYSQL,
            source_name=source_name,
            database=database,
            namespace=database,
            table=table,
            columns=tuple(fields),
            key_columns=key,
        )

    def row(self, values: list[Any]) -> dict[str, Any]:
        """Payload dict from canonical values (``values`` is modified in place)."""
        for i, conv in self.convs:
            v = values[i]
            if v is not None:
                values[i] = conv(v)
        for i, default in self.defaults:
            if values[i] is None:
                values[i] = default
        return dict(zip(self.names, values, strict=False))
