"""Target dialects as small classes with capability flags (no ``if dialect ==`` elsewhere).

Each dialect knows: the SQL column type for a Connect field, how to adapt Python values its
driver cannot bind, how to write an upsert, whether it has a bulk fast path (COPY on
Postgres), and which driver errors are passing (retry) versus caused by a record (DLQ).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql as sa_mysql
from sqlalchemy.dialects import postgresql as sa_pg
from sqlalchemy.dialects import sqlite as sa_sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import TableClause

from cdc_bridge.errors import RecordError, RetriableError, SetupError
from cdc_bridge.sinks.database.types import Converter, logical_kind

__all__ = ["MySqlDialect", "PostgresDialect", "SqlDialect", "SqliteDialect", "dialect_for"]


def _json_default(o: Any) -> Any:
    """JSON for what orjson cannot write itself: decimals as exact strings (a JSON number
    would go through a double), bytes as base64, MySQL TIME durations as text."""
    if isinstance(o, decimal.Decimal):
        return str(o)
    if isinstance(o, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(o)).decode()
    if isinstance(o, dt.timedelta):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _json_text(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    return orjson.dumps(v, default=_json_default).decode()


class SqlDialect:
    """Generic SQL: no upsert (delete + insert), no arrays, values bound as they are."""

    name: ClassVar[str] = "generic"
    supports_upsert: ClassVar[bool] = False
    transactional_ddl: ClassVar[bool] = False
    key_string_length: ClassVar[int | None] = None
    identifier_limit: ClassVar[int | None] = None  # bytes; None: no limit worth checking

    # -- column types -----------------------------------------------------------------------

    def column_type(self, schema: Mapping[str, Any], *, key: bool = False) -> Any:
        kind = logical_kind(schema)
        method = getattr(self, f"type_{kind}", None)
        if method is not None:
            return method(schema, key)
        return self.type_string(schema, key)

    def type_smallint(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.SmallInteger()

    def type_int(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Integer()

    def type_bigint(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.BigInteger()

    def type_real(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.REAL()

    def type_double(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Double()

    def type_boolean(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Boolean()

    def type_string(self, schema: Mapping[str, Any], key: bool) -> Any:
        if key and self.key_string_length:
            return sa.String(self.key_string_length)
        return sa.Text()

    def type_bytes(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.LargeBinary()

    type_bits = type_bytes

    def type_decimal(self, schema: Mapping[str, Any], key: bool) -> Any:
        params = schema.get("parameters") or {}
        scale = int(params.get("scale", 0))
        precision = params.get("connect.decimal.precision")
        if precision is None:
            return sa.Numeric()
        return sa.Numeric(int(precision), scale)

    def type_vdecimal(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Numeric()

    def type_date(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Date()

    def type_time_ms(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Time()

    type_time_us = type_time_ns = type_time_ms

    def type_ztime(self, schema: Mapping[str, Any], key: bool) -> Any:
        return self.type_string(schema, key)

    def type_ts_ms(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.DateTime()

    type_ts_us = type_ts_ns = type_ts_ms

    def type_zts(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.DateTime(timezone=True)

    def type_interval(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Interval()

    def type_json(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Text()

    type_json_object = type_json
    type_array = type_json

    def type_uuid(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.String(36)

    def table_options(self) -> dict[str, Any]:
        """Dialect keyword arguments for tables the sink creates."""
        return {}

    def can_upsert(self, columns: Sequence[str]) -> bool:
        """Whether :meth:`upsert` works for these columns (else: delete by key + insert)."""
        return self.supports_upsert

    def existing_columns(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[str] | None:
        """Column names of ``table``, or None when it does not exist."""
        insp = sa.inspect(conn)
        if not insp.has_table(table, schema=schema):
            return None
        return [c["name"] for c in insp.get_columns(table, schema=schema)]

    # -- values ---------------------------------------------------------------------------

    def adapter(self, schema: Mapping[str, Any]) -> Converter:
        """Post-conversion for values this driver cannot bind as they are."""
        kind = logical_kind(schema)
        if kind in ("array", "json_object"):
            return _json_text
        return None

    # -- statements -------------------------------------------------------------------------

    def upsert(self, table: TableClause, columns: Sequence[str], keys: Sequence[str]) -> Any:
        """An INSERT that updates on key conflict, with bind params p0..pN; None if unsupported."""
        return None

    def bulk_upsert(
        self,
        conn: Connection,
        table: TableClause,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool,
    ) -> bool:
        """Fast path for many rows; False when the dialect has none (the caller executemany)."""
        return False

    # -- errors ---------------------------------------------------------------------------

    retriable_sqlstate_classes: ClassVar[tuple[str, ...]] = ("08", "40", "53", "57", "58")
    retriable_errnos: ClassVar[frozenset[int]] = frozenset()

    #: SQLSTATE classes / codes and driver errnos that mean "fix the setup": wrong
    #: credentials (28), no such database (3D000), no privilege (42501); MySQL access
    #: denied (1044, 1045, 1698), unknown database (1049).
    setup_sqlstates: ClassVar[tuple[str, ...]] = ("28", "3D000", "42501")
    setup_errnos: ClassVar[frozenset[int]] = frozenset({1044, 1045, 1049, 1698})
    _setup_phrases: ClassVar[tuple[str, ...]] = (
        "password authentication failed",
        "authentication failed",
        "no pg_hba.conf entry",
        "does not exist",
        "access denied",
        "permission denied",
        "unable to open database file",
    )

    def setup_problem(self, exc: BaseException) -> str | None:
        """The reason when ``exc`` says the sink's setup is wrong (credentials, database,
        privileges, path) rather than that the target is away for a moment."""
        orig = getattr(exc, "orig", exc)
        state = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
        errno = _errno(orig)
        text = _first_line(orig)
        if state and any(state.startswith(s) for s in self.setup_sqlstates):
            return text
        if errno is not None and errno in self.setup_errnos:
            return text
        if (
            not state
            and errno is None
            and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            and any(p in text.lower() for p in self._setup_phrases)
        ):
            return text
        return None

    def classify(self, exc: BaseException) -> Exception:
        """A driver error -> RetriableError (passing; SetupError when a person must fix the
        setup) or RecordError (this data)."""
        problem = self.setup_problem(exc)
        if problem is not None:
            return SetupError(f"target database refused the sink: {problem}")
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return RetriableError(f"lost the connection to the target database: {exc.orig}")
        orig = getattr(exc, "orig", exc)
        state = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
        if state[:2] in self.retriable_sqlstate_classes:
            return RetriableError(f"target database: {orig}")
        errno = _errno(orig)
        if errno is not None and errno in self.retriable_errnos:
            return RetriableError(f"target database: {orig}")
        if isinstance(exc, sa_exc.OperationalError) and not state and errno is None:
            return RetriableError(f"target database: {orig}")
        code = type(orig).__name__
        message = f"target database rejected the record: {_first_line(orig)}"
        m = _TIME_TEXT.search(message) if state[:2] == "22" else None
        if m:
            message += (
                f" (MySQL TIME {m.group(1)} is outside 00:00:00..24:00:00, so no time-of-day "
                "column holds it; make the target column an interval (PostgreSQL) or TIME "
                "(MySQL) to keep it exactly)"
            )
        return RecordError(message, code=code)


# A duration as the sink writes an out-of-range MySQL TIME (see types.time_text)
_TIME_TEXT = re.compile(r'"(-?\d{2,}:\d{2}:\d{2}(?:\.\d+)?)"')


def _errno(orig: Any) -> int | None:
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresDialect(SqlDialect):
    name = "postgresql"
    identifier_limit = 63  # NAMEDATALEN - 1; longer names are silently truncated
    supports_upsert = True
    transactional_ddl = True
    copy_threshold: ClassVar[int] = 64

    def type_real(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.REAL()

    def type_bytes(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.BYTEA()

    type_bits = type_bytes

    def type_time_ms(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.TIME(precision=6)

    type_time_us = type_time_ns = type_time_ms

    def type_ztime(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.TIME(timezone=True)

    def type_ts_ms(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.TIMESTAMP(precision=6)

    type_ts_us = type_ts_ns = type_ts_ms

    def type_zts(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.TIMESTAMP(timezone=True, precision=6)

    def type_interval(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.INTERVAL()

    def type_json(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.JSONB()

    type_json_object = type_json

    def type_uuid(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_pg.UUID()

    def type_array(self, schema: Mapping[str, Any], key: bool) -> Any:
        items = schema.get("items")
        if isinstance(items, Mapping) and logical_kind(items) not in ("array", "json_object"):
            return sa_pg.ARRAY(self.column_type(items))
        return sa_pg.JSONB()

    def adapter(self, schema: Mapping[str, Any]) -> Converter:
        kind = logical_kind(schema)
        if kind == "json_object":
            return _json_text
        if kind == "array":
            items = schema.get("items")
            if isinstance(items, Mapping) and logical_kind(items) in ("array", "json_object"):
                return _json_text
        return None

    def upsert(self, table: TableClause, columns: Sequence[str], keys: Sequence[str]) -> Any:
        stmt = sa_pg.insert(table).values({c: sa.bindparam(f"p{i}") for i, c in enumerate(columns)})
        others = [c for c in columns if c not in keys]
        if not others:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in others}
        )

    def bulk_upsert(
        self,
        conn: Connection,
        table: TableClause,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool,
    ) -> bool:
        """COPY into a temporary staging table, then one INSERT ... SELECT ... ON CONFLICT.

        Statements go straight to psycopg, so identifiers are quoted by ``psycopg.sql``
        (SQLAlchemy's quoting doubles ``%`` for its own paramstyle).
        """
        if len(rows) < self.copy_threshold:
            return False
        import psycopg

        try:
            self._copy_upsert(conn, table, columns, keys, rows, upsert=upsert)
        except psycopg.Error as exc:
            # psycopg's own errors (a value COPY cannot take raises DataError) as SQLAlchemy's,
            # so the sink classifies them like every other statement's: record or passing.
            raise sa_exc.DBAPIError.instance(
                "COPY", None, exc, psycopg.Error, dialect=conn.dialect
            ) from exc
        return True

    def _copy_upsert(
        self,
        conn: Connection,
        table: TableClause,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool,
    ) -> None:
        from psycopg import sql

        ident = sql.Identifier
        schema = getattr(table, "schema", None)
        target = ident(schema, table.name) if schema else ident(table.name)
        stage = ident("cdc_bridge_stage")
        cols = sql.SQL(", ").join(ident(c) for c in columns)
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(stage))
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
                ).format(stage, cols, target)
            )
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
            query = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                target, cols, cols, stage
            )
            if upsert:
                key_list = sql.SQL(", ").join(ident(k) for k in keys)
                others = [c for c in columns if c not in keys]
                if others:
                    sets = sql.SQL(", ").join(
                        sql.SQL("{} = EXCLUDED.{}").format(ident(c), ident(c)) for c in others
                    )
                    query += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(key_list, sets)
                else:
                    query += sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(key_list)
            cur.execute(query)
            cur.execute(sql.SQL("DROP TABLE pg_temp.{}").format(stage))


class MySqlDialect(SqlDialect):
    name = "mysql"
    identifier_limit = 64
    supports_upsert = True
    key_string_length = 255
    # 1205 lock wait timeout, 1213 deadlock, 2006/2013 server gone / lost connection,
    # 1040 too many connections, 1053 shutdown in progress, 1305 savepoint gone (a deadlock
    # rolled the whole transaction back under it)
    retriable_errnos = frozenset({1205, 1213, 1305, 2006, 2013, 1040, 1053, 2003})

    def existing_columns(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[str] | None:
        # information_schema, not SQLAlchemy's SHOW CREATE TABLE parser (which misreads
        # names containing backticks)
        rows = conn.execute(
            sa.text(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t "
                "ORDER BY ORDINAL_POSITION"
            ),
            {"s": schema, "t": table},
        ).all()
        return [r[0] for r in rows] or None

    def can_upsert(self, columns: Sequence[str]) -> bool:
        # SQLAlchemy renders ``VALUES(col)`` of ON DUPLICATE KEY UPDATE with ``%`` escaped
        # twice; such names take the delete + insert path instead (same result, atomic).
        return not any("%" in c for c in columns)

    def table_options(self) -> dict[str, Any]:
        # Every Unicode character, and binary (case- and accent-sensitive) comparisons so
        # keys match like they do at the source, whatever the server's default charset is.
        return {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

    def type_string(self, schema: Mapping[str, Any], key: bool) -> Any:
        if key:
            return sa.String(255)
        return sa_mysql.LONGTEXT()

    def type_bytes(self, schema: Mapping[str, Any], key: bool) -> Any:
        if key:
            return sa.VARBINARY(255)
        return sa_mysql.LONGBLOB()

    type_bits = type_bytes

    def type_decimal(self, schema: Mapping[str, Any], key: bool) -> Any:
        params = schema.get("parameters") or {}
        scale = int(params.get("scale", 0))
        precision = int(params.get("connect.decimal.precision") or 65)
        return sa_mysql.DECIMAL(min(precision, 65), min(scale, 30))

    def type_vdecimal(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_mysql.DECIMAL(65, 30)

    def type_double(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_mysql.DOUBLE()

    def type_time_ms(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_mysql.TIME(fsp=6)

    type_time_us = type_time_ns = type_time_ms

    def type_ts_ms(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_mysql.DATETIME(fsp=6)

    type_ts_us = type_ts_ns = type_zts = type_ts_ms

    def type_interval(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.BigInteger()

    def type_json(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa_mysql.JSON()

    type_json_object = type_array = type_json

    def type_uuid(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.String(36)

    def adapter(self, schema: Mapping[str, Any]) -> Converter:
        kind = logical_kind(schema)
        if kind in ("array", "json_object"):
            return _json_text
        if kind == "zts":
            return _utc_naive
        if kind == "interval":
            return _interval_us
        return None

    bulk_chunk: ClassVar[int] = 1000

    def bulk_upsert(
        self,
        conn: Connection,
        table: TableClause,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool,
    ) -> bool:
        """Multi-row ``INSERT ... VALUES (...), (...) [ON DUPLICATE KEY UPDATE]`` per chunk.

        One statement per chunk instead of PyMySQL's executemany rewrite, which also
        mangles identifiers containing ``%``.
        """
        if len(rows) < 2:
            return False
        others = [c for c in columns if c not in keys] or list(keys[:1])
        for start in range(0, len(rows), self.bulk_chunk):
            chunk = rows[start : start + self.bulk_chunk]
            stmt = sa_mysql.insert(table).values(
                [dict(zip(columns, r, strict=True)) for r in chunk]
            )
            if upsert:
                stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in others})
            conn.execute(stmt)
        return True

    def upsert(self, table: TableClause, columns: Sequence[str], keys: Sequence[str]) -> Any:
        stmt = sa_mysql.insert(table).values(
            {c: sa.bindparam(f"p{i}") for i, c in enumerate(columns)}
        )
        others = [c for c in columns if c not in keys] or list(keys[:1])
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in others})


class SqliteDialect(SqlDialect):
    name = "sqlite"
    supports_upsert = True
    transactional_ddl = True

    def type_decimal(self, schema: Mapping[str, Any], key: bool) -> Any:
        return sa.Text()  # exact: SQLite NUMERIC would round through a double

    type_vdecimal = type_decimal

    def adapter(self, schema: Mapping[str, Any]) -> Converter:
        kind = logical_kind(schema)
        if kind in ("array", "json_object"):
            return _json_text
        if kind in ("decimal", "vdecimal", "uuid"):
            return _to_str
        if kind in ("date", "time_ms", "time_us", "time_ns", "ts_ms", "ts_us", "ts_ns", "zts"):
            return _iso
        if kind == "interval":
            return _interval_us
        return None

    def upsert(self, table: TableClause, columns: Sequence[str], keys: Sequence[str]) -> Any:
        stmt = sa_sqlite.insert(table).values(
            {c: sa.bindparam(f"p{i}") for i, c in enumerate(columns)}
        )
        others = [c for c in columns if c not in keys]
        if not others:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in others}
        )

    def classify(self, exc: BaseException) -> Exception:
        orig = getattr(exc, "orig", exc)
        if isinstance(exc, sa_exc.OperationalError) and "unable to open" in str(orig):
            return SetupError(f"target database: {orig}")
        # SQLITE_BUSY (5) / SQLITE_LOCKED (6): another writer holds the database.
        if getattr(orig, "sqlite_errorcode", None) in (5, 6) or "locked" in str(orig):
            return RetriableError(f"target database: {orig}")
        code = type(orig).__name__
        return RecordError(f"target database rejected the record: {_first_line(orig)}", code=code)


def _to_str(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, decimal.Decimal | uuid.UUID):
        return str(v)
    return str(v)


def _iso(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return v.isoformat()


def _utc_naive(v: Any) -> Any:
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.UTC).replace(tzinfo=None)
    return v


def _interval_us(v: Any) -> Any:
    if isinstance(v, dt.timedelta):
        return (v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds
    return v


_DIALECTS: dict[str, Callable[[], SqlDialect]] = {
    "postgresql": PostgresDialect,
    "mysql": MySqlDialect,
    "mariadb": MySqlDialect,
    "sqlite": SqliteDialect,
}


def dialect_for(engine: sa.Engine) -> SqlDialect:
    """The dialect class for an engine (generic SQL for others)."""
    return _DIALECTS.get(engine.dialect.name, SqlDialect)()
