"""Replication slot and publication management, and the prerequisite checks before streaming."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cdc_bridge.errors import ConfigError, ConfigProblem
from cdc_bridge.sources.postgres.lsn import LSN

__all__ = [
    "SlotState",
    "TableInfo",
    "check_prerequisites",
    "drop_problems",
    "drop_publication",
    "drop_slot",
    "ensure_publication",
    "resolve_tables",
    "slot_lag",
    "slot_state",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlotState:
    name: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    confirmed_flush: LSN | None
    restart_lsn: LSN | None
    temporary: bool
    wal_status: str | None = None  # reserved, extended, unreserved, lost (PostgreSQL 13+)

    @property
    def invalidated(self) -> bool:
        """The server removed WAL the slot needs (max_slot_wal_keep_size): it cannot stream."""
        return self.wal_status == "lost"


@dataclass(frozen=True, slots=True)
class TableInfo:
    schema: str
    name: str
    oid: int
    primary_key: tuple[str, ...]
    replica_identity: str  # d, n, f, i

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def _lsn(v: str | None) -> LSN | None:
    return LSN.parse(v) if v else None


def slot_state(conn: psycopg.Connection, slot: str) -> SlotState | None:
    wal_status = "wal_status" if conn.info.server_version >= 130000 else "NULL"
    row = conn.execute(
        "SELECT slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text,"
        f" restart_lsn::text, temporary, {wal_status}"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotState(
        row[0],
        row[1],
        row[2],
        bool(row[3]),
        row[4],
        _lsn(row[5]),
        _lsn(row[6]),
        bool(row[7]),
        row[8],
    )


def slot_lag(conn: psycopg.Connection, slot: str) -> int | None:
    """Bytes of WAL between the server's current position and the slot's confirmed position."""
    row = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def resolve_tables(conn: psycopg.Connection, tables: list[str] | None) -> list[TableInfo]:
    """Look up the configured tables (all user tables when None); missing ones are an error."""
    q = (
        "SELECT n.nspname, c.relname, c.oid, c.relreplident,"
        " coalesce((SELECT array_agg(a.attname ORDER BY array_position(i.indkey, a.attnum))"
        "   FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        "    AND a.attnum = ANY(i.indkey)"
        "   WHERE i.indrelid = c.oid AND i.indisprimary), '{}')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p')"
    )
    if tables is None:
        rows = conn.execute(
            q + " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%%' AND NOT c.relispartition"
            " ORDER BY 1, 2"
        ).fetchall()
    else:
        rows = []
        missing = []
        for t in tables:
            schema, _, name = t.partition(".")
            row = conn.execute(
                q + " AND n.nspname = %s AND c.relname = %s", (schema, name)
            ).fetchone()
            if row is None:
                missing.append(t)
            else:
                rows.append(row)
        if missing:
            raise ConfigError(
                f"table(s) {', '.join(missing)} do not exist in the database "
                "(or are not ordinary tables); fix `tables` of this source or create them"
            )
    return [TableInfo(r[0], r[1], int(r[2]), tuple(r[4]), r[3]) for r in rows]


def _publication_problems(
    conn: psycopg.Connection, publication: str, tables: list[TableInfo] | None, user: str
) -> list[str]:
    """What stops ``user`` from creating ``publication`` (or changing it to publish exactly
    ``tables``; None: all tables), as ``start`` will do -- the same rules PostgreSQL applies:
    CREATE on the database and ownership of every table (superuser for ALL TABLES); to change
    an existing publication, ownership of it too."""
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if row is not None and row[0]:
        return []
    existing = conn.execute(
        "SELECT puballtables, pg_has_role(current_user, pubowner, 'USAGE'),"
        " pubowner::regrole::text FROM pg_publication WHERE pubname = %s",
        (publication,),
    ).fetchone()
    if existing is not None:
        if tables is None:
            return []  # ensure_publication only checks an ALL TABLES publication
        current = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                (publication,),
            ).fetchall()
        }
        if current == {(t.schema, t.name) for t in tables}:
            return []  # nothing to change
        if not existing[1]:
            return [
                f"publication {publication!r} must be changed to publish exactly `tables`, but "
                f"it belongs to {existing[2]}, not {user!r}: as {existing[2]} or a superuser run "
                f"`ALTER PUBLICATION {publication} SET TABLE "
                f"{', '.join(t.qualified for t in tables)}`, or `ALTER PUBLICATION "
                f"{publication} OWNER TO {user}`"
            ]
        to_own = [t for t in tables if (t.schema, t.name) not in current]
    elif tables is None:
        return [
            f"publication {publication!r} does not exist and `tables` is omitted: only a "
            f"superuser can create a publication FOR ALL TABLES; as a superuser run `CREATE "
            f"PUBLICATION {publication} FOR ALL TABLES`, or list the tables"
        ]
    else:
        to_own = list(tables)
        db = conn.execute(
            "SELECT current_database(), has_database_privilege(current_database(), 'CREATE')"
        ).fetchone()
        if db is not None and not db[1]:
            return [
                f"user {user!r} cannot create publication {publication!r}: it lacks the CREATE "
                f"privilege on database {db[0]!r}: run `GRANT CREATE ON DATABASE {db[0]} TO "
                f"{user}`, or create the publication as the tables' owner (`CREATE PUBLICATION "
                f"{publication} FOR TABLE {', '.join(t.qualified for t in tables)}`)"
            ]
    not_owned = []
    for t in to_own:
        owner = conn.execute(
            "SELECT pg_has_role(current_user, relowner, 'USAGE'), relowner::regrole::text"
            " FROM pg_class WHERE oid = %s",
            (t.oid,),
        ).fetchone()
        if owner is not None and not owner[0]:
            not_owned.append((t.qualified, owner[1]))
    if not not_owned:
        return []
    listed = ", ".join(f"{t} (owner {o})" for t, o in not_owned)
    names = ", ".join(t.qualified for t in tables or [])
    verb = "create" if existing is None else "add tables to"
    return [
        f"user {user!r} cannot {verb} publication {publication!r}: PostgreSQL requires the "
        f"owner of each published table, and {user!r} does not own {listed}. As the owner or "
        f"a superuser run `CREATE PUBLICATION {publication} FOR TABLE {names}` (the bridge "
        f"then uses it), or `GRANT <owner> TO {user}`"
    ]


def check_prerequisites(
    conn: psycopg.Connection,
    *,
    slot: str,
    tables: list[TableInfo],
    source: str,
    publication: str | None = None,
    all_tables: bool = False,
) -> None:
    """Raise ConfigError naming every unmet prerequisite and how to fix it. With
    ``publication``, also the privileges to create or change it as ``start`` will
    (``all_tables``: the source captures every table, a FOR ALL TABLES publication)."""
    problems: list[str] = []
    wal_level = conn.execute("SHOW wal_level").fetchone()
    if wal_level is None or wal_level[0] != "logical":
        problems.append(
            f"wal_level is {wal_level[0] if wal_level else '?'!r}, logical replication needs "
            "'logical': set `wal_level = logical` in postgresql.conf (or ALTER SYSTEM SET "
            "wal_level = logical) and restart PostgreSQL"
        )
    row = conn.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    user = row[0] if row else "?"
    if not row or not row[1]:
        problems.append(
            f"user {user!r} lacks the REPLICATION attribute: run `ALTER ROLE {user} REPLICATION` "
            "as a superuser"
        )
    no_select = [
        t.qualified
        for t in tables
        if not conn.execute("SELECT has_table_privilege(%s::oid, 'SELECT')", (t.oid,)).fetchone()[0]  # type: ignore[index]
    ]
    if no_select:
        problems.append(
            f"user {user!r} cannot SELECT from {', '.join(no_select)}: run "
            f"`GRANT SELECT ON {', '.join(no_select)} TO {user}`"
        )
    state = slot_state(conn, slot)
    if state is not None:
        db = conn.execute("SELECT current_database()").fetchone()
        dbname = db[0] if db else None
        if state.plugin != "pgoutput":
            problems.append(
                f"replication slot {slot!r} exists but uses plugin {state.plugin!r}, not pgoutput: "
                f"pick another `slot_name`, or drop it (`SELECT pg_drop_replication_slot('{slot}')`) "
                "if nothing else uses it"
            )
        elif state.database != dbname:
            problems.append(
                f"replication slot {slot!r} belongs to database {state.database!r}, not {dbname!r}: "
                "pick another `slot_name`"
            )
        if state.active:
            problems.append(
                f"replication slot {slot!r} is already in use by another process (pid "
                f"{state.active_pid}); is another bridge running source {source!r}? Stop it, or "
                "give this source its own `slot_name`"
            )
    if publication is not None:
        problems += _publication_problems(conn, publication, None if all_tables else tables, user)
    if problems:
        raise ConfigError(
            f"PostgreSQL source {source!r} cannot stream:", [ConfigProblem("", p) for p in problems]
        )
    for t in tables:
        if not t.primary_key:
            hint = (
                ""
                if t.replica_identity == "f"
                else f"; UPDATE/DELETE on it fail while it is published unless you run "
                f"`ALTER TABLE {t.qualified} REPLICA IDENTITY FULL`"
            )
            log.warning(
                "table %s has no primary key: its events get a null key%s", t.qualified, hint
            )


def ensure_publication(
    conn: psycopg.Connection, publication: str, tables: list[TableInfo] | None
) -> None:
    """Create the publication if absent, or make it publish exactly ``tables`` (None: all)."""
    exists = conn.execute(
        "SELECT puballtables FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    ident = sql.Identifier(publication)
    target = (
        None
        if tables is None
        else sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
    )
    try:
        if exists is None:
            if target is None:
                conn.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(ident))
            elif tables:
                conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(ident, target))
            else:
                conn.execute(sql.SQL("CREATE PUBLICATION {}").format(ident))
            log.info("created publication %s", publication)
            return
        if target is None:
            if not exists[0]:
                raise ConfigError(
                    f"publication {publication!r} exists but does not publish all tables, and "
                    "`tables` is omitted: list the tables, or recreate the publication "
                    f"(`DROP PUBLICATION {publication}`)"
                )
            return
        if exists[0]:
            raise ConfigError(
                f"publication {publication!r} publishes ALL TABLES but `tables` lists only some: "
                f"drop it (`DROP PUBLICATION {publication}`) so the bridge recreates it, or pick "
                "another `publication_name`"
            )
        current = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                (publication,),
            ).fetchall()
        }
        wanted = {(t.schema, t.name) for t in tables or []}
        if current != wanted:
            if wanted:
                conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(ident, target))
            else:
                for s, n in current:
                    conn.execute(
                        sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
                            ident, sql.Identifier(s, n)
                        )
                    )
            log.info("publication %s now publishes %s", publication, sorted(wanted))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"cannot create or change publication {publication!r}: {exc.diag.message_primary}. "
            "Create it as the tables' owner or a superuser (`CREATE PUBLICATION "
            f"{publication} FOR TABLE ...`), or grant this user ownership of the tables"
        ) from exc


def drop_problems(conn: psycopg.Connection, slot: str, publication: str) -> list[str]:
    """What stops the current user from dropping both ``slot`` and ``publication`` (checked
    before dropping either, so that it drops both or neither)."""
    problems = []
    row = conn.execute(
        "SELECT current_user, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    user, superuser, replication = row if row is not None else ("?", False, False)
    state = slot_state(conn, slot)
    if state is not None:
        if state.active:
            problems.append(
                f"replication slot {slot!r} is in use by process {state.active_pid}: stop the "
                "bridge first"
            )
        if not (superuser or replication):
            problems.append(
                f"user {user!r} cannot drop replication slot {slot!r}: it needs the REPLICATION "
                f"attribute (`ALTER ROLE {user} REPLICATION`) or superuser"
            )
    pub = conn.execute(
        "SELECT pg_has_role(current_user, pubowner, 'USAGE'), pubowner::regrole::text"
        " FROM pg_publication WHERE pubname = %s",
        (publication,),
    ).fetchone()
    if pub is not None and not (superuser or pub[0]):
        problems.append(
            f"user {user!r} cannot drop publication {publication!r}: it belongs to {pub[1]}; run "
            f"this as {pub[1]} or a superuser, or `ALTER PUBLICATION {publication} OWNER TO "
            f"{user}` first"
        )
    return problems


def drop_slot(conn: psycopg.Connection, slot: str) -> bool:
    """Drop the slot (explicit request only); False if it did not exist."""
    state = slot_state(conn, slot)
    if state is None:
        return False
    if state.active:
        raise ConfigError(
            f"replication slot {slot!r} is in use by process {state.active_pid}; stop the bridge first"
        )
    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return True


def drop_publication(conn: psycopg.Connection, publication: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
    if row is None:
        return False
    conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
    return True
