"""Setup checks for the MySQL source: binlog settings, privileges, tables, server_id.

Each failed check raises ``ConfigError`` with one message naming what is wrong and the fix
(my.cnf line or GRANT statement).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pymysql

from cdc_bridge.errors import ConfigError, RetriableError

__all__ = ["ServerInfo", "binlog_status", "check_server", "connect"]

log = logging.getLogger(__name__)

ER_TABLEACCESS_DENIED = 1142
ER_NO_SUCH_TABLE = 1146
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_BAD_DB = 1049


@dataclass
class ServerInfo:
    """What the source needs to know about the server."""

    version: str
    mariadb: bool
    server_id: int
    gtid_on: bool
    row_metadata_full: bool
    annotate: bool
    tables: list[tuple[str, str]]


def connect(connect_args: dict[str, Any], where: str) -> Any:
    """A plain autocommit connection, with connection failures turned into clear errors."""
    try:
        return pymysql.connect(
            **connect_args, charset="utf8mb4", autocommit=True, connect_timeout=10
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code == 1045:
            raise ConfigError(
                f"{where}: access denied for user {connect_args.get('user')!r}: check the "
                "user and password in the dsn"
            ) from None
        raise RetriableError(
            f"{where}: cannot connect to MySQL at {connect_args.get('host')}:"
            f"{connect_args.get('port')}: {exc.args[-1]}"
        ) from None


def binlog_status(cur: Any) -> Any:
    """The row of SHOW MASTER STATUS (SHOW BINARY LOG STATUS on MySQL 8.4+), or None."""
    try:
        cur.execute("SHOW MASTER STATUS")
    except pymysql.err.ProgrammingError:
        cur.execute("SHOW BINARY LOG STATUS")
    return cur.fetchone()


def _replicas(cur: Any) -> list[tuple[int, str]]:
    """(server id, reported host) of the replicas registered with this server (empty if not
    allowed)."""
    for statement in ("SHOW REPLICAS", "SHOW SLAVE HOSTS"):
        try:
            cur.execute(statement)
        except pymysql.err.MySQLError:
            continue
        return [(int(r[0]), str(r[1] or "")) for r in cur.fetchall()]
    return []


def _var(cur: Any, name: str) -> str | None:
    cur.execute("SHOW GLOBAL VARIABLES LIKE %s", (name,))
    row = cur.fetchone()
    return None if row is None else str(row[1])


def _grants(cur: Any) -> str:
    cur.execute("SHOW GRANTS")
    return " ".join(str(r[0]) for r in cur.fetchall()).upper()


def check_server(
    connect_args: dict[str, Any],
    tables: list[str] | None,
    server_id: int,
    where: str = "sources.mysql",
    gtid: str = "auto",
    report_host: str | None = None,
) -> ServerInfo:
    """Verify the prerequisites; returns facts about the server (and the resolved tables).

    ``report_host``: the host this source registers its binlog connection as; a replica
    listed with the same server_id *and* this host is the source's own earlier connection
    (e.g. of a killed process), not a clash.
    """
    conn = connect(connect_args, where)
    try:
        cur = conn.cursor()
        cur.execute("SELECT VERSION(), @@server_id")
        version, own_id = cur.fetchone()
        mariadb = "mariadb" in str(version).lower()
        cnf = "[mysqld] section of my.cnf (then restart the server)"
        if (_var(cur, "log_bin") or "OFF").upper() not in ("ON", "1"):
            raise ConfigError(
                f"{where}: the server's binary log is off: add `log_bin=mysql-bin` and "
                f"`server_id=1` to the {cnf}"
            )
        fmt = (_var(cur, "binlog_format") or "").upper()
        if fmt != "ROW":
            raise ConfigError(
                f"{where}: binlog_format is {fmt or 'unset'}, cdc-bridge needs ROW: add "
                f"`binlog_format=ROW` to the {cnf}, or run SET GLOBAL binlog_format='ROW'"
            )
        image = (_var(cur, "binlog_row_image") or "FULL").upper()
        if image != "FULL":
            raise ConfigError(
                f"{where}: binlog_row_image is {image}, cdc-bridge needs FULL (complete "
                f"before/after rows): add `binlog_row_image=FULL` to the {cnf}, or run "
                "SET GLOBAL binlog_row_image='FULL'"
            )
        for var, fix in (
            ("log_bin_compress", "log_bin_compress=OFF"),
            ("binlog_transaction_compression", "binlog_transaction_compression=OFF"),
        ):
            if (_var(cur, var) or "OFF").upper() in ("ON", "1"):
                raise ConfigError(
                    f"{where}: {var} is ON and compressed binlog events cannot be decoded: "
                    f"add `{fix}` to the {cnf}"
                )
        metadata = (_var(cur, "binlog_row_metadata") or "").upper()
        grants = _grants(cur)
        on_all = "ON *.*" in grants
        all_priv = "ALL PRIVILEGES ON *.*" in grants
        user = f"'{connect_args.get('user')}'"
        if not all_priv and not (on_all and "REPLICATION SLAVE" in grants):
            raise ConfigError(
                f"{where}: user {user} lacks the REPLICATION SLAVE privilege needed to read "
                f"the binlog: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user}"
            )
        try:
            binlog_status(cur)
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != ER_SPECIFIC_ACCESS_DENIED:
                raise
            raise ConfigError(
                f"{where}: user {user} lacks the REPLICATION CLIENT (MariaDB: BINLOG MONITOR) "
                f"privilege needed to read binlog positions: GRANT REPLICATION CLIENT ON *.* "
                f"TO {user}"
            ) from None
        if not mariadb and not all_priv and not (on_all and "RELOAD" in grants):
            raise ConfigError(
                f"{where}: user {user} lacks the RELOAD privilege the snapshot needs for its "
                f"brief FLUSH TABLES WITH READ LOCK: GRANT RELOAD ON *.* TO {user}"
            )
        if int(own_id) == server_id:
            raise ConfigError(
                f"{where}.server_id = {server_id} is the server's own server_id: choose a "
                "number no other server or replica of this server uses"
            )
        for replica_id, host in _replicas(cur):
            if replica_id == server_id and report_host is not None and host == report_host:
                # Our own previous connection (a crashed or killed bridge): the server still
                # lists it until a write to it fails, and drops it when we register.
                log.info(
                    "%s: the server still lists this source's previous binlog connection "
                    "(server_id %s); it is replaced when this one registers",
                    where,
                    server_id,
                )
            elif replica_id == server_id:
                raise ConfigError(
                    f"{where}.server_id = {server_id} is already used by another replica "
                    "connected to this server (SHOW SLAVE HOSTS): choose a server_id no "
                    "other replica uses"
                )
        resolved = _resolve_tables(cur, tables, where, user)
        if mariadb:
            gtid_on = gtid != "off"
            annotate = (_var(cur, "binlog_annotate_row_events") or "").upper() in ("ON", "1")
        else:
            gtid_on = gtid != "off" and (_var(cur, "gtid_mode") or "").upper() == "ON"
            if gtid == "on" and not gtid_on:
                raise ConfigError(
                    f"{where}.gtid = 'on' but the server's gtid_mode is not ON: add "
                    f"`gtid_mode=ON` and `enforce_gtid_consistency=ON` to the {cnf}, or set "
                    "gtid = 'auto'"
                )
            annotate = (_var(cur, "binlog_rows_query_log_events") or "").upper() in ("ON", "1")
        return ServerInfo(
            version=str(version),
            mariadb=mariadb,
            server_id=int(own_id),
            gtid_on=gtid_on,
            row_metadata_full=metadata == "FULL",
            annotate=annotate,
            tables=resolved,
        )
    finally:
        conn.close()


def _resolve_tables(
    cur: Any, tables: list[str] | None, where: str, user: str
) -> list[tuple[str, str]]:
    if tables is None:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN "
            "('mysql', 'information_schema', 'performance_schema', 'sys') "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME"
        )
        return [(str(a), str(b)) for a, b in cur.fetchall()]
    out = []
    for name in tables:
        db, _, tb = name.partition(".")
        try:
            cur.execute(f"SELECT 1 FROM `{db}`.`{tb}` LIMIT 0")
            cur.fetchall()
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else 0
            if code in (ER_NO_SUCH_TABLE, ER_BAD_DB):
                raise ConfigError(
                    f"{where}.tables: table {name} does not exist on the server: check the "
                    "name (`database.table`) or create the table"
                ) from None
            if code == ER_TABLEACCESS_DENIED or code == 1044:
                raise ConfigError(
                    f"{where}.tables: user {user} may not SELECT from {name}: "
                    f"GRANT SELECT ON `{db}`.* TO {user}"
                ) from None
            raise
        out.append((db, tb))
    return out
