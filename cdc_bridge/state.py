"""The bridge's own state store: source positions (a snapshot's progress is part of the
position), sink offsets and the dead-letter index, in any SQLAlchemy database (SQLite file by
default, Postgres for shared state). Tables are created and upgraded by the Alembic migrations in ``migrations/`` (installed as
``cdc_bridge.migrations``).

Every write is one short transaction; position writes are atomic upserts, so a crash leaves
either the old or the new position, never a torn one.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from cdc_bridge.errors import ConfigError, RetriableError

__all__ = [
    "DEFAULT_STATE_URL",
    "DeadLetter",
    "StateStore",
    "metadata",
    "normalize_url",
]

log = logging.getLogger(__name__)

DEFAULT_STATE_URL = "sqlite:///./.cdc-bridge/state.db"
VERSION_TABLE = "cdc_bridge_alembic_version"


@functools.cache
def _migrations_dir() -> Path:
    """The Alembic script folder: top-level ``migrations/`` in a checkout (an editable install
    maps it), ``cdc_bridge/migrations`` in an installed wheel."""
    spec = importlib.util.find_spec("cdc_bridge.migrations")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - broken install
        raise RuntimeError("the package cdc_bridge.migrations is missing from this installation")
    return Path(next(iter(spec.submodule_search_locations)))


_ALEMBIC_LOCK = threading.Lock()

metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class _UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


_TS = _UtcDateTime()

source_offsets = sa.Table(
    "source_offsets",
    metadata,
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("offset", sa.JSON(), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)
sink_offsets = sa.Table(
    "sink_offsets",
    metadata,
    sa.Column("route", sa.String(200), primary_key=True),
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("offset", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("topic", sa.String(249), nullable=False),
    sa.Column("partition", sa.Integer(), nullable=False),
    sa.Column("offset", sa.BigInteger(), nullable=False),
    sa.Column("key", sa.LargeBinary(), nullable=True),
    sa.Column("error", sa.Text(), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("replayed_at", _TS, nullable=True),
    # what `dlq replay` did: replayed, superseded, failed, skipped (migration 0002)
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Index("ix_dead_letters_route_pending", "route", "replayed_at"),
)


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered record in the index (the record itself is on the DLQ topic)."""

    id: int
    route: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    error: str
    created_at: datetime
    replayed_at: datetime | None
    outcome: str | None = None  # replayed, superseded, failed, skipped (None: pending)


def _now() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> URL:
    """Parse a state URL; bare ``postgresql://`` / ``mysql://`` get the installed drivers."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"bridge.state: {url!r} is not a SQLAlchemy URL ({exc}); e.g. "
            f"{DEFAULT_STATE_URL} or postgresql://user:pass@host/db"
        ) from None
    driver = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}.get(
        parsed.drivername
    ) or {"mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    return parsed


def _sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database)


class StateStore:
    """The state store (implements the sources' ``OffsetStore`` protocol).

    ``StateStore(url, migrate=True)`` also creates/upgrades the tables; the runtime does
    that on start, ``cdc-bridge migrate`` does it explicitly.
    """

    def __init__(self, url: str = DEFAULT_STATE_URL, *, migrate: bool = False) -> None:
        self.url = normalize_url(url)
        self._sqlite_file = _sqlite_path(self.url)
        kwargs: dict[str, Any] = {
            "pool_pre_ping": True,
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        if self.url.get_backend_name() == "sqlite":
            if self._sqlite_file is not None:
                self._sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            if self._sqlite_file is None:
                kwargs["poolclass"] = sa.StaticPool
                kwargs["connect_args"]["check_same_thread"] = False
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"bridge.state: no driver for {self.url.drivername!r} ({exc}); use sqlite:///..., "
                "postgresql+psycopg://... or mysql+pymysql://..."
            ) from None
        if self.url.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._dialect = self.engine.dialect.name
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"StateStore({self.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # -- migrations ------------------------------------------------------------------------

    def _alembic_config(self, connection: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_migrations_dir()))
        cfg.attributes["connection"] = connection
        return cfg

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        with self._connect() as conn:
            return ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()

    def migrate(self) -> tuple[str | None, str | None]:
        """Upgrade to the newest revision; returns (revision before, revision after)."""
        from alembic import command

        # alembic's `context` is process-global: one migration per process at a time;
        # across processes the database (or the SQLite file lock) serialises them.
        with _ALEMBIC_LOCK, self._migration_lock():
            before = self.current_revision()
            try:
                with self._connect() as conn:
                    command.upgrade(self._alembic_config(conn), "head")
                    conn.commit()
            except SQLAlchemyError as exc:
                raise RetriableError(f"cannot migrate the state store {self!r}: {exc}") from exc
            after = self.current_revision()
        if before != after:
            log.info("state store migrated from %s to %s", before or "empty", after)
        return before, after

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """SQLite: a file lock next to the database (other backends lock inside env.py)."""
        if self._sqlite_file is None:
            yield
            return
        lock_path = self._sqlite_file.with_name(self._sqlite_file.name + ".migrate.lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise RetriableError(f"cannot use the state store {self!r}: {exc.orig or exc}") from exc

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise RetriableError(
                f"cannot write to the state store {self!r}: {exc.orig or exc}"
            ) from exc

    # -- upsert ----------------------------------------------------------------------------

    def _upsert(
        self,
        conn: Connection,
        table: sa.Table,
        keys: Mapping[str, Any],
        values: Mapping[str, Any],
    ) -> None:
        row = {**keys, **values}
        if self._dialect in ("sqlite", "postgresql"):
            if self._dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                stmt: Any = sqlite_insert(table).values(row)
            else:
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt = pg_insert(table).values(row)
            conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=dict(values)))
        elif self._dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            stmt = mysql_insert(table).values(row)
            conn.execute(stmt.on_duplicate_key_update(**values))
        else:
            where = sa.and_(*(table.c[k] == v for k, v in keys.items()))
            if conn.execute(table.update().where(where).values(values)).rowcount == 0:
                conn.execute(table.insert().values(row))

    # -- source offsets (OffsetStore) ------------------------------------------------------

    def load_offset(self, source: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            value = conn.execute(
                sa.select(source_offsets.c.offset).where(source_offsets.c.source == source)
            ).scalar_one_or_none()
        return dict(value) if value is not None else None

    def save_offset(self, source: str, offset: dict[str, Any]) -> None:
        """Store ``source``'s position (one atomic upsert)."""
        with self._begin() as conn:
            self._upsert(
                conn,
                source_offsets,
                {"source": source},
                {"offset": offset, "updated_at": _now()},
            )

    def delete_offset(self, source: str) -> bool:
        """Forget a source's position (its next start snapshots or starts fresh)."""
        with self._begin() as conn:
            return bool(
                conn.execute(
                    source_offsets.delete().where(source_offsets.c.source == source)
                ).rowcount
            )

    def offsets(self) -> dict[str, tuple[dict[str, Any], datetime]]:
        """Every stored source position with when it was written (for ``status``)."""
        with self._connect() as conn:
            rows = conn.execute(sa.select(source_offsets)).all()
        return {r.source: (dict(r.offset), r.updated_at) for r in rows}

    # -- sink offsets ----------------------------------------------------------------------

    def load_sink_offsets(self, route: str) -> dict[tuple[str, int], int]:
        """(topic, partition) -> next offset to consume, for sinks keeping offsets here."""
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(
                    sink_offsets.c.topic, sink_offsets.c.partition, sink_offsets.c.offset
                ).where(sink_offsets.c.route == route)
            ).all()
        return {(r.topic, r.partition): r.offset for r in rows}

    def save_sink_offsets(
        self,
        route: str,
        offsets: Mapping[tuple[str, int], int],
        conn: Connection | None = None,
    ) -> None:
        """Store consumer positions of ``route``; pass ``conn`` to join a caller's transaction."""
        if conn is not None:
            self._save_sink_offsets(conn, route, offsets)
            return
        with self._begin() as own:
            self._save_sink_offsets(own, route, offsets)

    def _save_sink_offsets(
        self, conn: Connection, route: str, offsets: Mapping[tuple[str, int], int]
    ) -> None:
        now = _now()
        for (topic, partition), offset in offsets.items():
            self._upsert(
                conn,
                sink_offsets,
                {"route": route, "topic": topic, "partition": partition},
                {"offset": offset, "updated_at": now},
            )

    # -- dead-letter index -----------------------------------------------------------------

    def add_dead_letter(
        self,
        route: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        error: str,
    ) -> int:
        """Index a record sent to the dead-letter topic; returns its id."""
        with self._begin() as conn:
            result = conn.execute(
                dead_letters.insert().values(
                    route=route,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=key,
                    error=error,
                    created_at=_now(),
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def add_dead_letters(
        self, route: str, letters: Iterable[tuple[str, int, int, bytes | None, str]]
    ) -> int:
        """Index many dead letters ``(topic, partition, offset, key, error)`` in one
        transaction; returns how many."""
        now = _now()
        rows = [
            {
                "route": route,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": key,
                "error": error,
                "created_at": now,
            }
            for topic, partition, offset, key, error in letters
        ]
        if rows:
            with self._begin() as conn:
                conn.execute(dead_letters.insert(), rows)
        return len(rows)

    def dead_letters(
        self, route: str | None = None, *, include_replayed: bool = False, limit: int = 1000
    ) -> list[DeadLetter]:
        query = sa.select(dead_letters).order_by(dead_letters.c.id).limit(limit)
        if route is not None:
            query = query.where(dead_letters.c.route == route)
        if not include_replayed:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        with self._connect() as conn:
            rows = conn.execute(query).all()
        return [DeadLetter(**r._asdict()) for r in rows]

    def count_dead_letters(self, route: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(dead_letters)
        query = query.where(dead_letters.c.replayed_at.is_(None))
        if route is not None:
            query = query.where(dead_letters.c.route == route)
        with self._connect() as conn:
            return int(conn.execute(query).scalar_one())

    def mark_replayed(self, ids: Iterable[int], outcome: str = "replayed") -> int:
        """Record that ``dlq replay`` handled these letters, and how (``replayed``: applied;
        ``superseded``: the target already holds a later change of the key; ``failed``: it
        failed again; ``skipped``: the route no longer selects it). Each letter once."""
        ids = list(ids)
        if not ids:
            return 0
        with self._begin() as conn:
            return int(
                conn.execute(
                    dead_letters.update()
                    .where(dead_letters.c.id.in_(ids), dead_letters.c.replayed_at.is_(None))
                    .values(replayed_at=_now(), outcome=outcome)
                ).rowcount
            )


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL (readers never block the writer), durable commits, wait on locks."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()
