"""Records of the schema-change topic (``<source name>``), in Debezium's MySQL format.

Each DDL becomes one record whose ``tableChanges`` is Debezium's array of
``io.debezium.connector.schema.Change`` structs: ``CREATE``/``ALTER`` carry the full table
definition (read from information_schema when the record is built), ``DROP`` a null table.
The snapshot emits the same preamble Debezium does (character set, DROP/CREATE DATABASE, USE,
``SHOW CREATE TABLE`` per table) so a consumer can rebuild the schema from the topic alone.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from cdc_bridge.envelope import CONNECTOR_VERSION, Record, source_schema
from cdc_bridge.events import CONNECTOR_MYSQL
from cdc_bridge.sources.mysql.schema import NOW_DEFAULT as _NOW
from cdc_bridge.sources.mysql.schema import default_text

__all__ = [
    "ddl_events",
    "ddl_tables",
    "schema_change_record",
    "snapshot_preamble",
    "source_block",
    "table_definition",
]


def _f(name: str, type_: str, optional: bool, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "optional": optional, **extra, "field": name}


_STR_ARRAY = {"type": "array", "items": {"type": "string", "optional": False}}

_COLUMN_SCHEMA = {
    "type": "struct",
    "fields": [
        _f("name", "string", False),
        _f("jdbcType", "int32", False),
        _f("nativeType", "int32", True),
        _f("typeName", "string", False),
        _f("typeExpression", "string", True),
        _f("charsetName", "string", True),
        _f("length", "int32", True),
        _f("scale", "int32", True),
        _f("position", "int32", False),
        _f("optional", "boolean", True),
        _f("autoIncremented", "boolean", True),
        _f("generated", "boolean", True),
        _f("comment", "string", True),
        _f("defaultValueExpression", "string", True),
        {**_STR_ARRAY, "optional": True, "field": "enumValues"},
    ],
    "optional": False,
    "name": "io.debezium.connector.schema.Column",
    "version": 1,
}

_CHANGE_SCHEMA = {
    "type": "struct",
    "fields": [
        _f("type", "string", False),
        _f("id", "string", False),
        {
            "type": "struct",
            "fields": [
                _f("defaultCharsetName", "string", True),
                {**_STR_ARRAY, "optional": True, "field": "primaryKeyColumnNames"},
                {"type": "array", "items": _COLUMN_SCHEMA, "optional": False, "field": "columns"},
                _f("comment", "string", True),
            ],
            "optional": True,
            "name": "io.debezium.connector.schema.Table",
            "version": 1,
            "field": "table",
        },
    ],
    "optional": False,
    "name": "io.debezium.connector.schema.Change",
    "version": 1,
}

KEY_SCHEMA = {
    "type": "struct",
    "fields": [_f("databaseName", "string", False)],
    "optional": False,
    "name": "io.debezium.connector.mysql.SchemaChangeKey",
    "version": 1,
}


def _value_schema() -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [
            source_schema(CONNECTOR_MYSQL),
            _f("ts_ms", "int64", False),
            _f("databaseName", "string", True),
            _f("schemaName", "string", True),
            _f("ddl", "string", True),
            {"type": "array", "items": _CHANGE_SCHEMA, "optional": False, "field": "tableChanges"},
        ],
        "optional": False,
        "name": "io.debezium.connector.mysql.SchemaChangeValue",
        "version": 1,
    }


_KEY_PREFIX = b'{"schema":' + orjson.dumps(KEY_SCHEMA) + b',"payload":'
_VALUE_PREFIX = b'{"schema":' + orjson.dumps(_value_schema()) + b',"payload":'


def schema_change_record(
    topic: str,
    source: dict[str, Any],
    database: str,
    ddl: str,
    changes: list[dict[str, Any]],
    schemas: bool,
) -> Record:
    """One schema-change record; ``source`` is the full MySQL ``source`` block."""
    key = {"databaseName": database}
    value = {
        "source": source,
        "ts_ms": int(time.time() * 1000),
        "databaseName": database,
        "schemaName": None,
        "ddl": ddl,
        "tableChanges": changes,
    }
    if schemas:
        return (
            topic,
            _KEY_PREFIX + orjson.dumps(key) + b"}",
            _VALUE_PREFIX + orjson.dumps(value) + b"}",
        )
    return (topic, orjson.dumps(key), orjson.dumps(value))


def source_block(
    name: str,
    *,
    ts_ms: int,
    snapshot: str,
    db: str,
    table: str | None,
    server_id: int,
    gtid: str | None,
    file: str,
    pos: int,
    thread: int | None = None,
) -> dict[str, Any]:
    """The ``source`` struct of a schema-change record."""
    return {
        "version": CONNECTOR_VERSION,
        "connector": CONNECTOR_MYSQL,
        "name": name,
        "ts_ms": ts_ms,
        "snapshot": snapshot,
        "db": db,
        "sequence": None,
        "ts_us": ts_ms * 1000,
        "ts_ns": ts_ms * 1_000_000,
        "table": table,
        "server_id": server_id,
        "gtid": gtid,
        "file": file,
        "pos": pos,
        "row": 0,
        "thread": thread,
        "query": None,
    }


# -- which tables a DDL statement touches ------------------------------------------------------

_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_QNAME = rf"({_NAME})(?:\s*\.\s*({_NAME}))?"
_COMMENTS = re.compile(r"/\*(?!!).*?\*/|--[^\n]*|#[^\n]*", re.S)
_CREATE = re.compile(
    rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_QNAME}",
    re.I,
)
_ALTER = re.compile(
    rf"^\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?{_QNAME}", re.I
)
_INDEX = re.compile(
    rf"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX|DROP\s+INDEX)"
    rf"\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?{_NAME}\s+ON\s+{_QNAME}",
    re.I,
)
_DROP = re.compile(r"^\s*DROP\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(.*)$", re.I | re.S)
_RENAME = re.compile(r"^\s*RENAME\s+TABLE\s+(.*)$", re.I | re.S)
_TRUNCATE = re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?{_QNAME}", re.I)


def _unquote(n: str) -> str:
    return n[1:-1].replace("``", "`") if n.startswith("`") else n


def _qualify(a: str, b: str | None, default_db: str) -> tuple[str, str]:
    return (_unquote(a), _unquote(b)) if b else (default_db, _unquote(a))


def _name_list(text: str, default_db: str) -> list[tuple[str, str]]:
    out = []
    for m in re.finditer(_QNAME, text.split(";")[0]):
        if m.group(1).upper() in ("RESTRICT", "CASCADE", "WAIT", "NOWAIT", "TO"):
            continue
        out.append(_qualify(m.group(1), m.group(2), default_db))
    return out


def ddl_tables(ddl: str, default_db: str) -> list[tuple[str, str, str]]:
    """``(change type, database, table)`` for each table a DDL statement creates, alters or
    drops; empty for statements about databases, users, views and the like."""
    sql = _COMMENTS.sub(" ", ddl).strip()
    for rx, kind in ((_CREATE, "CREATE"), (_ALTER, "ALTER"), (_INDEX, "ALTER")):
        m = rx.match(sql)
        if m:
            db, tb = _qualify(m.group(1), m.group(2), default_db)
            return [(kind, db, tb)]
    m = _DROP.match(sql)
    if m:
        return [("DROP", db, tb) for db, tb in _name_list(m.group(1), default_db)]
    m = _RENAME.match(sql)
    if m:
        names = _name_list(m.group(1), default_db)
        out = []
        for i in range(0, len(names) - 1, 2):
            out.append(("DROP", *names[i]))
            out.append(("CREATE", *names[i + 1]))
        return out
    m = _TRUNCATE.match(sql)
    if m:
        return []
    return []


# -- the Table struct -----------------------------------------------------------------------

# information_schema DATA_TYPE -> java.sql.Types code, as Debezium's MySQL DDL parser assigns
_JDBC = {
    "bit": -7,
    "tinyint": 5,
    "smallint": 5,
    "mediumint": 4,
    "int": 4,
    "integer": 4,
    "bigint": -5,
    "float": 6,
    "double": 8,
    "real": 8,
    "decimal": 3,
    "numeric": 2,
    "date": 91,
    "time": 92,
    "datetime": 93,
    "timestamp": 2014,
    "year": 4,
    "char": 1,
    "varchar": 12,
    "binary": -2,
    "varbinary": -3,
    "tinytext": 12,
    "text": 12,
    "mediumtext": 12,
    "longtext": 12,
    "tinyblob": -3,
    "blob": 2004,
    "mediumblob": 2004,
    "longblob": 2004,
    "enum": 1,
    "set": 1,
    "json": 1111,
}
_CHARACTER = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
)
_TYPE_ARGS = re.compile(r"^\w+\s*\(([^)]*)\)")


def _length_scale(data_type: str, column_type: str) -> tuple[int | None, int | None]:
    if data_type == "enum":
        return 1, None
    if data_type == "set":  # the longest value: all members, comma-separated
        members = [v[1:-1].replace("''", "'") for v in _enum_values(column_type)]
        return len(",".join(members)), None
    m = _TYPE_ARGS.match(column_type)
    if not m:
        return None, None
    args = [a.strip() for a in m.group(1).split(",")]
    try:
        length = int(args[0])
        scale = int(args[1]) if len(args) > 1 else None
    except ValueError:
        return None, None
    if data_type == "decimal" and scale is None:
        scale = 0
    return length, scale


def _enum_values(column_type: str) -> list[str]:
    """The ENUM/SET values as Debezium lists them: the quoted SQL literals."""
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return re.findall(r"'(?:[^']|'')*'", inner)


def table_definition(cur: Any, database: str, table: str) -> dict[str, Any] | None:
    """Debezium's ``io.debezium.connector.schema.Table`` struct of ``database.table`` as the
    server describes it now; None when the table does not exist."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, "
        "COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT, COLUMN_KEY "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    rows = cur.fetchall()
    if not rows:
        return None
    cur.execute(
        "SELECT c.CHARACTER_SET_NAME, t.TABLE_COMMENT FROM information_schema.TABLES t "
        "LEFT JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY c "
        "ON c.COLLATION_NAME = t.TABLE_COLLATION "
        "WHERE t.TABLE_SCHEMA = %s AND t.TABLE_NAME = %s",
        (database, table),
    )
    trow = cur.fetchone()
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        (database, table),
    )
    pk = [_s(r[0]) for r in cur.fetchall()]
    columns = []
    for pos, (name, dt, ctype, nullable, cs, default, extra, _comment, _key) in enumerate(rows, 1):
        data_type = _s(dt).lower()
        column_type = _s(ctype).lower()
        unsigned = " unsigned" in column_type
        type_name = data_type.upper() + (" UNSIGNED" if unsigned else "")
        length, scale = _length_scale(data_type, column_type)
        default_expr = default_text(default)
        if default_expr is not None and _NOW.match(default_expr):
            default_expr = "1970-01-01 00:00:00"  # Debezium: CURRENT_TIMESTAMP -> the epoch
        auto = "auto_increment" in _s(extra or "").lower()
        columns.append(
            {
                "name": _s(name),
                "jdbcType": _JDBC.get(data_type, 1111),
                "nativeType": None,
                "typeName": type_name,
                "typeExpression": type_name,
                "charsetName": _s(cs) if cs and data_type in _CHARACTER else None,
                "length": length,
                "scale": scale,
                "position": pos,
                "optional": _s(nullable) == "YES",
                "autoIncremented": auto,
                "generated": auto,  # Debezium's "generated" means a server-made value
                "comment": None,  # Debezium's MySQL parser does not keep column comments
                "defaultValueExpression": default_expr,
                "enumValues": _enum_values(column_type) if data_type in ("enum", "set") else None,
            }
        )
    return {
        "defaultCharsetName": _s(trow[0]) if trow and trow[0] else None,
        "primaryKeyColumnNames": pk,
        "columns": columns,
        "comment": (_s(trow[1]) or None) if trow else None,
    }


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes | bytearray) else str(v)


def table_id(database: str, table: str) -> str:
    return f'"{database}"."{table}"'


def ddl_events(
    cur: Any, ddl: str, default_db: str
) -> list[tuple[str, str | None, str, list[dict[str, Any]]]]:
    """``(database, table, ddl, tableChanges)`` for each schema-change record of one DDL
    statement. A DROP TABLE of several tables becomes one record per table with the statement
    rewritten to name it (``DROP TABLE `db`.`t```), as Debezium does."""
    touched = ddl_tables(ddl, default_db)
    if (
        touched
        and all(kind == "DROP" for kind, _, _ in touched)
        and _DROP.match(_COMMENTS.sub(" ", ddl).strip())
    ):
        if_exists = re.search(r"^\s*DROP\s+(?:TEMPORARY\s+)?TABLE\s+IF\s+EXISTS\b", ddl, re.I)
        head = "DROP TABLE IF EXISTS" if if_exists else "DROP TABLE"
        return [
            (
                db,
                tb,
                f"{head} `{db}`.`{tb}`",
                [{"type": "DROP", "id": table_id(db, tb), "table": None}],
            )
            for _, db, tb in touched
        ]
    changes = []
    for kind, db, tb in touched:
        definition = None if kind == "DROP" else table_definition(cur, db, tb)
        if kind != "DROP" and definition is None:
            continue  # gone again since (a later DDL dropped it): nothing to describe
        changes.append({"type": kind, "id": table_id(db, tb), "table": definition})
    # The statement's own database (ALTER TABLE shop.orders ...) wins over the session's.
    db = touched[0][1] if touched else default_db
    return [(db, touched[0][2] if touched else None, ddl, changes)]


def snapshot_preamble(
    cur: Any,
    name: str,
    tables: list[tuple[str, str]],
    file: str,
    pos: int,
    schemas: bool,
) -> list[Record]:
    """The schema-change records Debezium's snapshot writes before the rows: the server's
    character set, ``DROP TABLE IF EXISTS`` per table, then per database ``DROP DATABASE``,
    ``CREATE DATABASE``, ``USE`` and ``SHOW CREATE TABLE`` of each table."""
    out: list[Record] = []

    def add(db: str, table: str | None, ddl: str, changes: list[dict[str, Any]]) -> None:
        src = source_block(
            name,
            ts_ms=int(time.time() * 1000),
            snapshot="true",
            db=db,
            table=table,
            server_id=0,
            gtid=None,
            file=file,
            pos=pos,
        )
        out.append(schema_change_record(name, src, db, ddl, changes, schemas))

    cur.execute("SELECT @@character_set_server, @@collation_server")
    cs, coll = (_s(v) for v in cur.fetchone())
    add("", None, f"SET character_set_server={cs}, collation_server={coll}", [])
    tables = sorted(tables)  # Debezium goes through the tables in name order
    for db, tb in tables:
        add(
            db,
            tb,
            f"DROP TABLE IF EXISTS `{db}`.`{tb}`",
            [{"type": "DROP", "id": table_id(db, tb), "table": None}],
        )
    for db in dict.fromkeys(d for d, _ in tables):
        cur.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (db,),
        )
        dcs, dcoll = (_s(v) for v in cur.fetchone())
        add(db, None, f"DROP DATABASE IF EXISTS `{db}`", [])
        add(db, None, f"CREATE DATABASE `{db}` CHARSET {dcs} COLLATE {dcoll}", [])
        add(db, None, f"USE `{db}`", [])
        for d, tb in tables:
            if d != db:
                continue
            cur.execute(f"SHOW CREATE TABLE `{db}`.`{tb}`")
            ddl = _s(cur.fetchone()[1])
            definition = table_definition(cur, db, tb)
            add(db, tb, ddl, [{"type": "CREATE", "id": table_id(db, tb), "table": definition}])
    return out
