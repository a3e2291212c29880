"""The database sink: batches of change events -> upserts/deletes in one transaction per batch.

Per batch: records are grouped by target table and collapsed per key to the last state (a
delete in between still deletes before the row is written again); missing tables and
columns are created when ``schema_evolution = "basic"`` (never dropped or retyped); deletes,
then writes, run in one transaction together with the route's consumer offsets in
``cdc_bridge_offsets`` -- so a crash never applies a record twice and never skips one.

When the transaction fails because of data (a constraint, a value that does not fit -- on
any path, the bulk COPY included), the batch is rolled back and written again under
savepoints, halving failing groups down to single records -- and rolled back again -- only to
find which records fail; they are reported by index and the route engine dead-letters
them and applies the rest.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import operator
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url

from cdc_bridge.errors import ConfigError, RecordError, RetriableError, SetupError
from cdc_bridge.sinks.base import (
    BatchResult,
    FencedError,
    Sink,
    SinkContext,
    SinkRecord,
    TopicPartition,
)
from cdc_bridge.sinks.database.config import DatabaseRouteConfig, DatabaseSinkConfig
from cdc_bridge.sinks.database.dialects import SqlDialect, dialect_for
from cdc_bridge.sinks.database.types import Converter, value_converter

__all__ = ["DatabaseSink", "normalize_url"]

log = logging.getLogger(__name__)

UNAVAILABLE = "__debezium_unavailable_value"


_RAW = UNAVAILABLE.encode()
_B64 = base64.b64encode(_RAW).decode()
_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_VDECIMAL = "io.debezium.data.VariableScaleDecimal"
_UUID = "io.debezium.data.Uuid"
_NUMBERS = frozenset({"int8", "int16", "int32", "int64", "float", "double", "float32", "float64"})


def _name_uuid(raw: bytes) -> str:
    """Java's ``UUID.nameUUIDFromBytes``: an MD5 (version 3) UUID without a namespace."""
    digest = bytearray(hashlib.md5(raw, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def _typed_placeholder(schema: Any) -> Any:
    """The form Debezium gives its unchanged-TOAST placeholder in a column of this Connect
    schema when that is not the plain text: bytes (base64 in JSON), a UUID made from it,
    text/bytes arrays holding it once, number, boolean and decimal arrays with one element per
    placeholder byte, hstore as a map or as its JSON text. None: only the text."""
    if not isinstance(schema, Mapping):
        return None
    t, name = schema.get("type"), schema.get("name")
    if t == "bytes" and name != _DECIMAL:
        return _B64
    if t == "string" and name == _UUID:
        return _name_uuid(_RAW)
    if t == "string" and name == "io.debezium.data.Json":
        return orjson.dumps({UNAVAILABLE: UNAVAILABLE}).decode()
    if t == "map":
        return {UNAVAILABLE: UNAVAILABLE}
    if t != "array":
        return None
    items = schema.get("items") or {}
    it, iname = items.get("type"), items.get("name")
    if it == "string":
        return [_name_uuid(_RAW) if iname == _UUID else UNAVAILABLE]
    if it == "bytes":
        if iname == _DECIMAL:
            return [base64.b64encode(bytes([b])).decode() for b in _RAW]
        return [_B64]
    if it in _NUMBERS:
        return list(_RAW)  # [95, 95, 100, ...]; equal to the float arrays too
    if it == "boolean":
        return [b != 0 for b in _RAW]
    if it == "struct" and iname == _VDECIMAL:
        return [{"scale": 0, "value": base64.b64encode(bytes([b])).decode()} for b in _RAW]
    return None


_ALL_FORMS: list[Any] = [
    UNAVAILABLE,
    *(
        _typed_placeholder(s)
        for s in (
            {"type": "bytes"},
            {"type": "string", "name": _UUID},
            {"type": "string", "name": "io.debezium.data.Json"},
            {"type": "map"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "array", "items": {"type": "bytes"}},
            {"type": "array", "items": {"type": "bytes", "name": _DECIMAL}},
            {"type": "array", "items": {"type": "int32"}},
            {"type": "array", "items": {"type": "boolean"}},
            {"type": "array", "items": {"type": "struct", "name": _VDECIMAL}},
        )
    ),
]


def _is_unavailable(v: Any) -> bool:
    """Any placeholder form (rows without a schema: the column types are unknown)."""
    return any(v == f and type(v) is type(f) for f in _ALL_FORMS)


_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalize_url(url: str) -> sa.URL:
    """A SQLAlchemy URL, with the drivers cdc-bridge ships when none is named."""
    try:
        u = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(f"sink url is not a SQLAlchemy URL: {exc}") from None
    if u.drivername in _DEFAULT_DRIVERS:
        u = u.set(drivername=_DEFAULT_DRIVERS[u.drivername])
    return u


def _json_value(v: Any) -> Any:
    if isinstance(v, dict | list):
        return orjson.dumps(v).decode()
    return v


@dataclass(slots=True)
class _Unit:
    """The collapsed changes of one key in one batch."""

    index: int  # index in the batch of the last record of this key
    row: dict[str, Any] | None  # the final row to write; None: the key ends deleted
    fields: dict[str, Any] | None
    key: tuple[Any, ...] | None
    delete: bool = False  # delete the key before writing (or instead of writing)


@dataclass(slots=True)
class _TablePlan:
    name: str
    key_columns: tuple[str, ...]
    units: dict[Any, _Unit] = field(default_factory=dict)
    keyless: list[_Unit] = field(default_factory=list)
    truncate: bool = False
    count: int = 0
    skip: bool = False  # nothing to do: only deletes for a table that does not exist

    def all_units(self) -> list[_Unit]:
        return [*self.units.values(), *self.keyless]


class DatabaseSink(Sink):
    """Writes one route's records into a SQL database (see module docs)."""

    transactional_offsets = True
    mirrors_rows = True

    def __init__(
        self, config: DatabaseSinkConfig, route: DatabaseRouteConfig, context: SinkContext
    ) -> None:
        super().__init__(config, route, context)
        self.cfg = config
        self.rcfg = route
        self.engine: sa.Engine | None = None
        self.dialect: SqlDialect = SqlDialect()
        self._tables: dict[str, dict[str, Any]] = {}  # table -> column name -> type (known)
        self._clauses: dict[tuple[str, tuple[str, ...]], sa.TableClause] = {}
        self._converters: dict[tuple[int, tuple[str, ...]], list[Converter]] = {}
        self._topic_tables: dict[str, str] = {}
        self._names: dict[tuple[str, Any, Any], str] = {}
        self._key_converters: dict[str, dict[str, Converter]] = {}
        self._placeholder_cache: dict[int, tuple[Any, tuple[tuple[str, Any], ...]]] = {}
        self._ddl_lock = threading.Lock()
        self.offsets = sa.Table(
            config.offsets_table,
            sa.MetaData(),
            sa.Column("group_id", sa.String(255), primary_key=True),
            sa.Column("topic", sa.String(255), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
            sa.Column("applied", sa.BigInteger, nullable=False),
            # the topic's id when the offsets were stored: a re-created topic has a new one
            sa.Column("topic_id", sa.String(64), nullable=True),
        )

    # -- lifecycle --------------------------------------------------------------------------

    def _make_engine(self) -> sa.Engine:
        url = normalize_url(self.cfg.url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = self.cfg.pool_size
        try:
            engine = sa.create_engine(url, **kwargs)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise ConfigError(f"sink {self.cfg.name!r}: cannot use url: {exc}") from None
        if engine.dialect.name == "sqlite":
            # pysqlite's own transaction handling breaks SAVEPOINTs; let SQLAlchemy drive it.
            @event.listens_for(engine, "connect")
            def _no_pysqlite_tx(dbapi_conn: Any, _rec: Any) -> None:
                dbapi_conn.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        origin = self.cfg.replication_origin
        if origin:
            if engine.dialect.name != "postgresql":
                raise ConfigError(
                    f"sinks.{self.cfg.name}.replication_origin: replication origins exist only "
                    f"in PostgreSQL, not in {engine.dialect.name}"
                )

            @event.listens_for(engine, "connect")
            def _mark_origin(dbapi_conn: Any, _rec: Any) -> None:
                _setup_replication_origin(dbapi_conn, origin, self.cfg.name)

        domain = self.cfg.gtid_domain_id
        if domain is not None:
            if engine.dialect.name not in ("mysql", "mariadb"):
                raise ConfigError(
                    f"sinks.{self.cfg.name}.gtid_domain_id: GTID domains exist only in MariaDB, "
                    f"not in {engine.dialect.name}"
                )

            @event.listens_for(engine, "connect")
            def _gtid_domain(dbapi_conn: Any, _rec: Any) -> None:
                _set_gtid_domain(dbapi_conn, domain, self.cfg.name)

        return engine

    def _where(self) -> str:
        """The target as the user wrote it, password masked (for messages)."""
        url = normalize_url(self.cfg.url)
        if url.get_backend_name() == "sqlite":
            return f"SQLite file {url.database!r}"
        return url.render_as_string(hide_password=True)

    def open(self) -> None:
        """Connect and create the offsets table. Wrong credentials, a missing database or
        directory are a ConfigError at once (naming the sink and the target); an unreachable
        server is retried."""
        if self.engine is None:
            self.engine = self._make_engine()
            self.dialect = dialect_for(self.engine)
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            folder = Path(url.database).expanduser().absolute().parent
            if not url.database.startswith("file:") and not folder.is_dir():
                raise ConfigError(
                    f"sink {self.cfg.name!r}: cannot create the SQLite database "
                    f"{url.database!r}: the directory {str(folder)!r} does not exist; "
                    "create it or fix the sink's `url`"
                )
        try:
            _create_table(self.engine, self.offsets)
            self._add_topic_id_column()
        except sa_exc.OperationalError as exc:
            problem = self.dialect.setup_problem(exc)
            if problem is not None:
                raise ConfigError(
                    f"sink {self.cfg.name!r}: the target database {self._where()} refused the "
                    f"sink: {problem}; fix the user, password or database in the sink's `url`"
                ) from None
            raise RetriableError(
                f"sink {self.cfg.name!r}: cannot reach the target database "
                f"{self._where()}: {_first(exc)}"
            ) from None
        except sa_exc.DBAPIError as exc:
            if not _has_table(self.engine, self.offsets):
                raise ConfigError(
                    f"sink {self.cfg.name!r}: cannot create table {self.offsets.name!r} in the "
                    f"target ({_first(exc)}); grant CREATE or create it yourself"
                ) from None

    def _add_topic_id_column(self) -> None:
        """Offsets tables of earlier versions have no ``topic_id`` column: add it."""
        assert self.engine is not None
        t = self.offsets
        with self.engine.connect() as conn:
            known = self.dialect.existing_columns(conn, t.name, t.schema) or []
        if "topic_id" in known:
            return
        try:
            with self.engine.begin() as conn:
                prep = conn.dialect.identifier_preparer
                typ = sa.String(64).compile(dialect=conn.dialect)
                log.info("adding column topic_id to %s", t.name)
                conn.exec_driver_sql(
                    f"ALTER TABLE {prep.format_table(t)} ADD COLUMN {prep.quote('topic_id')} {typ}"
                )
        except sa_exc.OperationalError:
            raise
        except sa_exc.DBAPIError as exc:
            raise ConfigError(
                f"sink {self.cfg.name!r}: cannot add column topic_id to {t.name!r} in "
                f"{self._where()} ({_first(exc)}); grant ALTER on it or add the column "
                "(varchar(64), nullable) yourself"
            ) from None

    def check(self) -> list[str]:
        try:
            engine = self.engine or self._make_engine()
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except ConfigError as exc:
            return [str(exc)]
        except sa_exc.SQLAlchemyError as exc:
            return [f"sink {self.cfg.name!r}: cannot connect to the target database: {_first(exc)}"]
        return []

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    # -- offsets ----------------------------------------------------------------------------

    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {tp: int(v[0]) for tp, v in self._stored(group, partitions).items()}

    def stored_topic_ids(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, str]:
        return {tp: v[1] for tp, v in self._stored(group, partitions).items() if v[1]}

    def reset_offsets(self, group: str, topics: Iterable[str] | None = None) -> int:
        if self.engine is None:
            self.engine = self._make_engine()
            self.dialect = dialect_for(self.engine)
        t = self.offsets
        where = t.c.group_id == group
        if topics is not None:
            where = sa.and_(where, t.c.topic.in_(list(topics)))
        try:
            with self.engine.begin() as conn:
                return int(conn.execute(sa.delete(t).where(where)).rowcount)
        except sa_exc.SQLAlchemyError as exc:
            raise RetriableError(
                f"sink {self.cfg.name!r}: cannot reset offsets in {self._where()}: {_first(exc)}"
            ) from None

    def _stored(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str | None]]:
        """(next offset, topic id) stored for ``group``'s ``partitions``."""
        wanted = set(partitions)
        if self.engine is None:  # read-only use (cdc-bridge status) without open()
            self.engine = self._make_engine()
            self.dialect = dialect_for(self.engine)
        t = self.offsets
        try:
            with self.engine.connect() as conn:
                if not _has_table(self.engine, t):
                    return {}
                cols = [t.c.topic, t.c.partition, t.c.next_offset]
                if "topic_id" in (
                    self.dialect.existing_columns(conn, t.name, t.schema) or ["topic_id"]
                ):
                    cols.append(t.c.topic_id)
                rows = conn.execute(sa.select(*cols).where(t.c.group_id == group)).all()
        except sa_exc.SQLAlchemyError as exc:
            err = self.dialect.classify(exc)
            if isinstance(err, SetupError):
                raise SetupError(f"sink {self.cfg.name!r} ({self._where()}): {err}") from None
            raise RetriableError(f"cannot read stored offsets: {_first(exc)}") from None
        return {
            (r[0], r[1]): (r[2], r[3] if len(r) > 3 else None)
            for r in rows
            if (r[0], r[1]) in wanted
        }

    def _store_offsets(
        self,
        conn: Connection,
        positions: Mapping[TopicPartition, int],
        counts: Mapping[TopicPartition, int],
        previous: Mapping[TopicPartition, int | None] | None,
    ) -> None:
        """Store the next offsets; with ``previous``, only if the stored ones still match
        (else FencedError: another consumer applied the partition since we read them)."""
        t = self.offsets
        group = self.context.group_id
        ids = self.context.topic_ids
        for (topic, partition), nxt in positions.items():
            tp = (topic, partition)
            n = counts.get(tp, 0)
            where = sa.and_(t.c.group_id == group, t.c.topic == topic, t.c.partition == partition)
            fenced = previous is not None
            prev = previous.get(tp) if previous is not None else None
            if fenced and prev is not None:
                where = sa.and_(where, t.c.next_offset == prev)
            if not fenced or prev is not None:
                res = conn.execute(
                    sa.update(t)
                    .where(where)
                    .values(next_offset=nxt, applied=t.c.applied + n, topic_id=ids.get(topic))
                )
                if res.rowcount == 1:
                    continue
                if fenced:
                    raise FencedError(
                        f"offsets of {topic}[{partition}] in the target are no longer {prev}"
                    )
            try:
                with conn.begin_nested():
                    conn.execute(
                        sa.insert(t).values(
                            group_id=group,
                            topic=topic,
                            partition=partition,
                            next_offset=nxt,
                            applied=n,
                            topic_id=ids.get(topic),
                        )
                    )
            except sa_exc.IntegrityError:
                raise FencedError(
                    f"offsets of {topic}[{partition}] were stored by another consumer"
                ) from None

    # -- planning ---------------------------------------------------------------------------

    def _table_name(self, rec: SinkRecord) -> str:
        src = rec.source
        if not src:
            cached = self._topic_tables.get(rec.topic)
            if cached is not None:
                return cached
        ck = (rec.topic, src.get("table"), src.get("schema"))
        name = self._names.get(ck)
        if name is not None:
            return name
        parts = rec.topic.split(".")
        values = {
            "source": src.get("name") or parts[0],
            "schema": src.get("schema") or (parts[-2] if len(parts) >= 3 else ""),
            "database": src.get("db") or (parts[-2] if len(parts) >= 3 else ""),
            "table": src.get("table") or src.get("collection") or parts[-1],
            "topic": rec.topic,
        }
        name = self.rcfg.table.format(**values)
        self._topic_tables[rec.topic] = name
        if src:
            self._names[ck] = name
        return name

    def _plan(
        self, batch: Sequence[SinkRecord]
    ) -> tuple[dict[str, _TablePlan], dict[int, RecordError], dict[TopicPartition, int]]:
        plans: dict[str, _TablePlan] = {}
        failed: dict[int, RecordError] = {}
        counts: dict[TopicPartition, int] = dict(
            Counter(zip(map(_topic, batch), map(_partition, batch), strict=True))
        )
        rcfg = self.rcfg
        route_key = tuple(rcfg.key) if rcfg.key else None
        typed_placeholders = self._typed_placeholders
        ignore_deletes = rcfg.deletes == "ignore"
        apply_truncates = rcfg.truncates == "apply"
        table_name = self._table_name
        for i, rec in enumerate(batch):
            op = rec.op
            name = table_name(rec)
            plan = plans.get(name)
            if plan is None:
                plan = plans[name] = _TablePlan(name, route_key or rec.key_fields)
            elif not plan.key_columns and rec.key_fields and not route_key:
                plan.key_columns = rec.key_fields
            plan.count += 1
            if op == "t":
                if apply_truncates:
                    plan.truncate = True
                    plan.units.clear()
                    plan.keyless.clear()
                continue
            is_delete = op == "d"
            if is_delete and ignore_deletes:
                continue
            row = None if is_delete else rec.after
            partial = False
            if row is not None:
                typed = typed_placeholders(rec.fields)
                if (
                    UNAVAILABLE in row.values()
                    or (typed and _has_typed_placeholder(row, typed))
                    or (rec.fields is None and any(map(_is_unavailable, row.values())))
                ):
                    # unchanged TOASTed values (text, bytes, array... forms): keep what the
                    # target (or this batch) has
                    row = _without_placeholders(row, typed, rec.fields is None)
                    partial = True
            keys = plan.key_columns
            if not keys:
                if is_delete:
                    failed[i] = RecordError(
                        f"cannot delete from {name!r}: the table has no key (set the route's `key`)",
                        code="no_key",
                    )
                    continue
                plan.keyless.append(_Unit(i, row, rec.fields, None))
                continue
            src = rec.key if rec.key is not None and not route_key else rec.row
            if src is None:
                failed[i] = RecordError(f"record for {name!r} has no key", code="no_key")
                continue
            try:
                key = (src[keys[0]],) if len(keys) == 1 else tuple(src[k] for k in keys)
            except KeyError as exc:
                failed[i] = RecordError(
                    f"record for {name!r} lacks key column {exc.args[0]!r}", code="no_key"
                )
                continue
            hkey: Any = key
            try:
                hash(key)
            except TypeError:
                hkey = orjson.dumps(key)
            unit = plan.units.get(hkey)
            if unit is None:
                plan.units[hkey] = _Unit(i, row, rec.fields, key, delete=is_delete)
            else:
                if partial and row is not None and unit.row is not None:
                    row = {**unit.row, **row}
                unit.index = i
                unit.row = row
                if row is not None:
                    unit.fields = rec.fields
                if is_delete:
                    unit.delete = True
        return plans, failed, counts

    def _typed_placeholders(self, fields: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
        """(column, placeholder form) of the columns whose TOAST placeholder is not the plain
        text, once per row schema; without a schema every column is checked for every form."""
        if fields is None:
            return ()
        key = id(fields)
        cached = self._placeholder_cache.get(key)
        if cached is None or cached[0] is not fields:
            found = tuple(
                (c, f) for c, s in fields.items() if (f := _typed_placeholder(s)) is not None
            )
            if len(self._placeholder_cache) > 4096:
                self._placeholder_cache.clear()
            cached = self._placeholder_cache[key] = (fields, found)
        return cached[1]

    # -- schema -----------------------------------------------------------------------------

    def _known_columns(self, conn: Connection, name: str) -> dict[str, Any] | None:
        cols = self._tables.get(name)
        if cols is not None:
            return cols
        names = self.dialect.existing_columns(conn, name, self.rcfg.target_schema)
        if names is None:
            return None
        cols = dict.fromkeys(names)
        self._tables[name] = cols
        return cols

    def _wanted_columns(self, plan: _TablePlan) -> dict[str, Any]:
        """Column name -> Connect schema (or None when unknown) over the plan's rows."""
        wanted: dict[str, Any] = {}
        for unit in plan.all_units():
            if unit.row is None:
                continue
            fields = unit.fields or {}
            for col in unit.row:
                if col not in wanted or wanted[col] is None:
                    wanted[col] = fields.get(col)
        if self.rcfg.deletes == "soft":
            wanted.setdefault(self.rcfg.soft_delete_column, {"type": "boolean", "optional": True})
        return wanted

    def _ensure_schema(self, plans: dict[str, _TablePlan], failed: dict[int, RecordError]) -> None:
        assert self.engine is not None
        evolve = self.rcfg.schema_evolution == "basic"
        limit = self.dialect.identifier_limit
        for name, plan in plans.items():
            wanted = self._wanted_columns(plan)
            too_long = [n for n in (name, *wanted) if limit and len(n.encode()) > limit]
            if too_long:
                _fail_all(
                    plan,
                    failed,
                    f"name {too_long[0]!r} is longer than the target's {limit}-byte limit for "
                    "identifiers; shorten it with the route's `table` template or `mapping.rename`",
                    "identifier_too_long",
                )
                continue
            known = self._tables.get(name)
            if known is not None and all(c in known for c in wanted):
                continue
            with self._ddl_lock:
                self._tables.pop(name, None)
                try:
                    try:
                        self._evolve(name, plan, wanted, evolve, failed)
                    except sa_exc.DBAPIError:
                        # Another route on this target may have created the table or added
                        # the column first ("already exists"): look again, once.
                        self._evolve(name, plan, wanted, evolve, failed)
                except sa_exc.SQLAlchemyError as exc:
                    err = self.dialect.classify(exc)
                    if isinstance(err, RetriableError):
                        raise err from None
                    self._tables.pop(name, None)
                    for unit in plan.all_units():
                        failed[unit.index] = RecordError(
                            f"cannot create or alter table {name!r}: {_first(exc)}",
                            code="schema_evolution",
                        )

    def _evolve(
        self,
        name: str,
        plan: _TablePlan,
        wanted: dict[str, Any],
        evolve: bool,
        failed: dict[int, RecordError],
    ) -> None:
        assert self.engine is not None
        dialect = self.dialect
        with self.engine.begin() as conn:
            known = self._known_columns(conn, name)
            if known is None and all(u.row is None for u in plan.all_units()):
                # Only deletes (or tombstones, truncates) for a table never created: the rows
                # do not exist, so there is nothing to do -- not an error.
                plan.skip = True
                return
            if known is None:
                if not evolve:
                    _fail_all(
                        plan,
                        failed,
                        f"target table {name!r} does not exist; create it or set "
                        'schema_evolution = "basic" on the route',
                        "missing_table",
                    )
                    return
                untyped = [c for c, s in wanted.items() if s is None]
                if untyped or not wanted:
                    _fail_all(
                        plan,
                        failed,
                        f"cannot create table {name!r}: the topic carries no schema for "
                        f"{', '.join(untyped) or 'its columns'}; create the table yourself",
                        "missing_schema",
                    )
                    return
                keys = set(plan.key_columns)
                columns = [
                    sa.Column(
                        c,
                        dialect.column_type(s, key=c in keys),
                        primary_key=c in keys,
                        nullable=c not in keys,
                        autoincrement=False,
                    )
                    for c, s in wanted.items()
                ]
                table = sa.Table(
                    name,
                    sa.MetaData(),
                    *columns,
                    schema=self.rcfg.target_schema,
                    **dialect.table_options(),
                )
                log.info("creating table %s", name)
                table.create(conn, checkfirst=True)
                self._tables.pop(name, None)
                return
            missing = [c for c in wanted if c not in known]
            if not missing:
                return
            if not evolve:
                for unit in plan.all_units():
                    if unit.row is not None and any(c in unit.row for c in missing):
                        failed[unit.index] = RecordError(
                            f"target table {name!r} has no column(s) "
                            f"{', '.join(repr(c) for c in missing)}; add them or set "
                            'schema_evolution = "basic"',
                            code="missing_column",
                        )
                return
            prep = conn.dialect.identifier_preparer
            target = prep.format_table(sa.table(name, schema=self.rcfg.target_schema))
            for col in missing:
                schema = wanted[col] or {"type": "string", "optional": True}
                typ = dialect.column_type(schema).compile(dialect=conn.dialect)
                log.info("adding column %s.%s %s", name, col, typ)
                conn.exec_driver_sql(f"ALTER TABLE {target} ADD COLUMN {prep.quote(col)} {typ}")
        self._tables.pop(name, None)

    # -- writing ----------------------------------------------------------------------------

    def _clause(self, name: str, columns: tuple[str, ...]) -> sa.TableClause:
        key = (name, columns)
        clause = self._clauses.get(key)
        if clause is None:
            clause = sa.table(
                name, *(sa.column(c) for c in columns), schema=self.rcfg.target_schema
            )
            if len(self._clauses) > 1024:
                self._clauses.clear()
            self._clauses[key] = clause
        return clause

    def _row_converters(
        self, fields: dict[str, Any] | None, cols: tuple[str, ...]
    ) -> list[Converter]:
        ck = (id(fields), cols)
        convs = self._converters.get(ck)
        if convs is None:
            convs = []
            for c in cols:
                schema = fields.get(c) if fields else None
                if schema is None:
                    convs.append(_json_value)
                    continue
                base = value_converter(schema)
                post = self.dialect.adapter(schema)
                convs.append(_compose(base, post))
            if len(self._converters) > 4096:
                self._converters.clear()
            self._converters[ck] = convs
        return convs

    def _key_converters_for(self, plan: _TablePlan) -> list[Converter]:
        known = self._key_converters.setdefault(plan.name, {})
        for unit in plan.all_units():
            if unit.fields:
                for k in plan.key_columns:
                    if k not in known and k in unit.fields:
                        s = unit.fields[k]
                        known[k] = _compose(value_converter(s), self.dialect.adapter(s))
        return [known.get(k) for k in plan.key_columns]

    def _write(
        self, conn: Connection, plans: dict[str, _TablePlan], units: Iterable[_Unit] | None = None
    ) -> None:
        for plan in plans.values():
            if plan.skip:
                continue
            self._write_table(conn, plan, plan.all_units() if units is None else list(units))

    def _write_table(
        self, conn: Connection, plan: _TablePlan, units: list[_Unit], bulk: bool = True
    ) -> None:
        rcfg = self.rcfg
        dialect = self.dialect
        name = plan.name
        keys = plan.key_columns
        if plan.truncate and bulk:
            conn.execute(sa.delete(sa.table(name, schema=rcfg.target_schema)))
        soft = rcfg.deletes == "soft"
        upsert_mode = rcfg.mode == "upsert" and bool(keys)
        # 1. deletes (also "delete before write" when a key was deleted and re-created)
        del_keys = [
            u.key for u in units if u.delete and u.key is not None and (u.row is None or not soft)
        ]
        if del_keys:
            kconv = self._key_converters_for(plan)
            params = [
                {
                    f"k{i}": (c(v) if c else _json_value(v))
                    for i, (c, v) in enumerate(zip(kconv, k, strict=True))
                }
                for k in del_keys
            ]
            clause = self._clause(name, keys)
            where = sa.and_(*(clause.c[k] == sa.bindparam(f"k{i}") for i, k in enumerate(keys)))
            if soft:
                sclause = self._clause(name, (*keys, rcfg.soft_delete_column))
                swhere = sa.and_(
                    *(sclause.c[k] == sa.bindparam(f"k{i}") for i, k in enumerate(keys))
                )
                stmt: Any = sa.update(sclause).where(swhere).values({rcfg.soft_delete_column: True})
            else:
                stmt = sa.delete(clause).where(where)
            conn.execute(stmt, params)
        # 2. writes, grouped by column set
        groups: dict[tuple[tuple[str, ...], int], list[_Unit]] = {}
        for u in units:
            if u.row is not None:
                groups.setdefault((tuple(u.row), id(u.fields)), []).append(u)
        for (cols, _fid), group in groups.items():
            convs = self._row_converters(group[0].fields, cols)
            conv_at = [(i, c) for i, c in enumerate(convs) if c is not None]
            rows: list[list[Any]] = []
            append = rows.append
            for u in group:
                vals = list(u.row.values())  # type: ignore[union-attr]
                for i, c in conv_at:
                    vals[i] = c(vals[i])
                append(vals)
            out_cols = cols
            if soft and rcfg.soft_delete_column not in cols:
                out_cols = (*cols, rcfg.soft_delete_column)
                for r in rows:
                    r.append(False)
            if upsert_mode and not dialect.can_upsert(out_cols):
                # generic SQL: delete by key, then insert
                clause = self._clause(name, keys)
                kidx = [out_cols.index(k) for k in keys]
                where = sa.and_(*(clause.c[k] == sa.bindparam(f"k{i}") for i, k in enumerate(keys)))
                conn.execute(
                    sa.delete(clause).where(where),
                    [{f"k{j}": r[i] for j, i in enumerate(kidx)} for r in rows],
                )
                upsert = False
            else:
                upsert = upsert_mode
            clause = self._clause(name, out_cols)
            if bulk and dialect.bulk_upsert(conn, clause, out_cols, keys, rows, upsert=upsert):
                continue
            if upsert:
                stmt = dialect.upsert(clause, out_cols, keys)
            else:
                stmt = sa.insert(clause).values(
                    {c: sa.bindparam(f"p{i}") for i, c in enumerate(out_cols)}
                )
            conn.execute(stmt, [{f"p{i}": v for i, v in enumerate(r)} for r in rows])

    # -- apply --------------------------------------------------------------------------------

    def apply(
        self,
        batch: Sequence[SinkRecord],
        positions: Mapping[TopicPartition, int] | None = None,
        *,
        previous: Mapping[TopicPartition, int | None] | None = None,
    ) -> BatchResult:
        assert self.engine is not None, "open() first"
        plans, failed, counts = self._plan(batch)
        if plans:
            self._ensure_schema(plans, failed)
        if failed:
            return BatchResult(failed)
        try:
            with self.engine.begin() as conn:
                if positions:
                    # offsets first: a fenced batch fails before doing any work
                    self._store_offsets(conn, positions, counts, previous)
                self._write(conn, plans)
            return BatchResult()
        except (sa_exc.SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
            err = self.dialect.classify(exc) if isinstance(exc, sa_exc.SQLAlchemyError) else None
            if isinstance(err, SetupError):
                raise SetupError(f"sink {self.cfg.name!r} ({self._where()}): {err}") from None
            if isinstance(err, RetriableError):
                raise err from None
            self._tables.clear()  # the failure may come from a table changed under us
            first = err or RecordError(f"value does not fit: {exc}", code=type(exc).__name__)
        failed = self._isolate(plans)
        if not failed:
            raise RetriableError(f"batch failed but no single record does: {first}")
        return BatchResult(failed)

    def _isolate(self, plans: dict[str, _TablePlan]) -> dict[int, RecordError]:
        """Find the records that fail, then roll everything back: the batch is written again
        under savepoints, halving the groups that fail until single records are left
        (a few statements for one bad row in a large batch, not one per row)."""
        assert self.engine is not None
        failed: dict[int, RecordError] = {}
        with self.engine.connect() as conn:
            tx = conn.begin()
            try:
                for plan in plans.values():
                    if plan.skip:
                        continue
                    if plan.truncate:
                        conn.execute(sa.delete(sa.table(plan.name, schema=self.rcfg.target_schema)))
                    todo = [plan.all_units()]
                    while todo:
                        units = todo.pop()
                        exc = self._try_write(conn, plan, units)
                        if exc is None:
                            continue
                        if len(units) > 1:
                            half = len(units) // 2
                            todo += [units[half:], units[:half]]  # first half first
                            continue
                        failed[units[0].index] = exc
            finally:
                tx.rollback()
        return failed

    def _try_write(
        self, conn: Connection, plan: _TablePlan, units: list[_Unit]
    ) -> RecordError | None:
        """Write ``units`` under a savepoint; the record error if it fails (rolled back)."""
        sp = conn.begin_nested()
        try:
            self._write_table(conn, plan, units, bulk=False)
            sp.commit()
            return None
        except (sa_exc.SQLAlchemyError, ValueError, TypeError, OverflowError) as exc:
            sp.rollback()
            if isinstance(exc, sa_exc.SQLAlchemyError):
                err = self.dialect.classify(exc)
                if isinstance(err, RetriableError):
                    raise err from None
                assert isinstance(err, RecordError)
                return err
            return RecordError(
                f"value does not fit the target column: {exc}", code=type(exc).__name__
            )


_topic = operator.attrgetter("topic")
_partition = operator.attrgetter("partition")


def _has_typed_placeholder(row: dict[str, Any], typed: tuple[tuple[str, Any], ...]) -> bool:
    # a plain loop: no generator on the per-row path
    get = row.get
    for c, f in typed:  # noqa: SIM110
        if get(c) == f:
            return True
    return False


def _without_placeholders(
    row: dict[str, Any], typed: tuple[tuple[str, Any], ...], untyped: bool
) -> dict[str, Any]:
    """The row without its TOAST placeholders (columns to leave as they are)."""
    forms = dict(typed)
    if untyped:
        return {k: v for k, v in row.items() if not _is_unavailable(v)}
    return {k: v for k, v in row.items() if v != UNAVAILABLE and not (k in forms and v == forms[k])}


def _fail_all(plan: _TablePlan, failed: dict[int, RecordError], message: str, code: str) -> None:
    for unit in plan.all_units():
        failed[unit.index] = RecordError(message, code=code)


def _compose(a: Converter, b: Converter) -> Converter:
    if a is None:
        return b
    if b is None:
        return a
    return lambda v: b(a(v))


def _create_table(engine: sa.Engine, table: sa.Table) -> None:
    """CREATE TABLE that tolerates a concurrent creator: another route opening the same target
    can win the race between the existence check and the CREATE (MySQL error 1050, Postgres
    duplicate pg_type); if the table exists afterwards, that is success."""
    try:
        with engine.begin() as conn:
            table.create(conn, checkfirst=True)
    except sa_exc.DBAPIError:
        if not _has_table(engine, table):
            raise


def _has_table(engine: sa.Engine, table: sa.Table) -> bool:
    try:
        return sa.inspect(engine).has_table(table.name, schema=table.schema)
    except sa_exc.SQLAlchemyError:
        return False


def _first(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


_ORIGIN_SLOTS = 64


def _setup_replication_origin(dbapi_conn: Any, prefix: str, sink: str) -> None:
    """Mark a new PostgreSQL session's transactions with a replication origin.

    PostgreSQL 15 lets one origin be active in one session only, so each connection takes the
    first free ``<prefix>_<n>`` (created when missing). Decoding then sends an Origin message
    before each of its transactions, which the Postgres source can skip (``skip_origins``).
    """
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        with dbapi_conn.cursor() as cur:
            for n in range(_ORIGIN_SLOTS):
                name = f"{prefix}_{n}"
                try:
                    cur.execute("SELECT pg_replication_origin_oid(%s)", (name,))
                    if cur.fetchone()[0] is None:
                        cur.execute("SELECT pg_replication_origin_create(%s)", (name,))
                    cur.execute("SELECT pg_replication_origin_session_setup(%s)", (name,))
                    return
                except Exception as exc:
                    state = getattr(exc, "sqlstate", None)
                    if state == "55006" or "already active" in str(exc):  # in use: next one
                        continue
                    if state == "23505":  # created concurrently: use it
                        try:
                            cur.execute("SELECT pg_replication_origin_session_setup(%s)", (name,))
                            return
                        except Exception:
                            continue
                    if state == "42501":
                        raise ConfigError(
                            f"sinks.{sink}.replication_origin: the target user may not use "
                            "replication origins; run as superuser or GRANT EXECUTE ON FUNCTION "
                            "pg_replication_origin_create(text), "
                            "pg_replication_origin_session_setup(text), "
                            "pg_replication_origin_oid(text) TO the sink's user"
                        ) from exc
                    raise
        raise ConfigError(
            f"sinks.{sink}.replication_origin: all {_ORIGIN_SLOTS} origins {prefix}_0.."
            f"{prefix}_{_ORIGIN_SLOTS - 1} are in use by other sessions"
        )
    finally:
        dbapi_conn.autocommit = autocommit


def _set_gtid_domain(dbapi_conn: Any, domain: int, sink: str) -> None:
    """Put a new MariaDB session's transactions into GTID domain ``domain``."""
    with dbapi_conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(cur.fetchone()[0])
        if "mariadb" not in version.lower():
            raise ConfigError(
                f"sinks.{sink}.gtid_domain_id: the target is MySQL {version}, which has no GTID "
                "domains; two-way sync with a MySQL table is not available (see the docs)"
            )
        try:
            cur.execute(f"SET SESSION gtid_domain_id = {int(domain)}")
        except Exception as exc:
            if "SUPER" in str(exc) or "BINLOG ADMIN" in str(exc) or "1227" in str(exc):
                raise ConfigError(
                    f"sinks.{sink}.gtid_domain_id: the target user may not set gtid_domain_id; "
                    "grant it SUPER (or BINLOG ADMIN on MariaDB 10.5.2+)"
                ) from exc
            raise
