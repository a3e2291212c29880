"""The MariaDB/MySQL test server: external, testcontainers, or a private install-db'd one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from cdc_bridge.testing import _process
from cdc_bridge.testing._common import (
    ENV_MYSQL,
    Handle,
    check_ident,
    redact,
    track,
    use_testcontainers,
)
from cdc_bridge.testing._process import ServiceError


@dataclass(frozen=True)
class MySQLDatabase:
    """One database on a MySQL/MariaDB server, with root-level credentials."""

    name: str
    dsn: str
    host: str
    port: int
    user: str
    password: str

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pymysql.connect` (and mysql-replication's settings)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.name,
        }


@dataclass(eq=False)
class MariaDBService(Handle):
    """A MariaDB (or MySQL) server with a full-row binlog; `dsn` is mysql://root@host:port/."""

    dsn: str
    host: str
    port: int
    user: str = "root"
    password: str = ""
    external: bool = False
    _workdir: Path | None = None
    _args: list[str] = field(default_factory=list, repr=False)
    _proc: subprocess.Popen[bytes] | None = None
    _container: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def connect_kwargs(self, database: str | None = None) -> dict[str, Any]:
        """Keyword arguments for `pymysql.connect` as the admin user."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
        }
        if database is not None:
            kwargs["database"] = database
        return kwargs

    def connect(self, database: str | None = None) -> Any:
        """An autocommit PyMySQL connection as the admin user."""
        import pymysql

        return pymysql.connect(**self.connect_kwargs(database), autocommit=True)

    def dsn_for(self, database: str) -> str:
        return urlunsplit(urlsplit(self.dsn)._replace(path="/" + quote(database)))

    def create_database(self, name: str) -> MySQLDatabase:
        """Create database `name` and describe it."""
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{check_ident(name)}`")
        return MySQLDatabase(
            name=name,
            dsn=self.dsn_for(name),
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
        )

    def drop_database(self, name: str) -> None:
        """Drop database `name`; connections still using it (left open by a test) are killed."""
        import pymysql

        check_ident(name)
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 2")
            try:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                return
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1205:  # ER_LOCK_WAIT_TIMEOUT: a metadata lock is held
                    raise
            cur.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
                "CONNECTION_ID()",
                (name,),
            )
            for (thread_id,) in cur.fetchall():
                with contextlib.suppress(pymysql.Error):
                    cur.execute(f"KILL {int(thread_id)}")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def kill(self) -> None:
        """SIGKILL the server: a crash, recovered by `restart()`."""
        if self._proc is None:
            raise ServiceError("kill() needs a private server, not an external one")
        _process.kill_group(self._proc)

    def restart(self, timeout: float = 60) -> None:
        """Start the server again on the same port and data (after `kill()`, or a clean stop)."""
        self.down()
        self.up(timeout)

    def down(self) -> None:
        """A clean shutdown (SIGTERM, as ``mysqladmin shutdown``): clients get end-of-stream."""
        if self._proc is None or self._workdir is None:
            raise ServiceError("down() needs a private server, not an external one")
        _process.terminate(self._proc, timeout=30)

    def up(self, timeout: float = 60) -> None:
        """Start the server again on the same port and data (after `down()` or `kill()`)."""
        if self._proc is None or self._workdir is None:
            raise ServiceError("up() needs a private server, not an external one")
        if self._proc.poll() is None:
            raise ServiceError("the server still runs: call down() or kill() first")
        self._proc = _spawn_mariadb(self._args, self._workdir, self.port, timeout)

    def _shutdown(self) -> None:
        if self._proc is not None:
            _process.terminate(self._proc, timeout=15)
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
        if self._workdir is not None:
            _process.remove_workdir(self._workdir)


def _mysql_ready(host: str, port: int, user: str, password: str) -> bool:
    """True when a login works; bounded even if something else holds the port and stays mute."""
    import pymysql

    try:
        conn = pymysql.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            connect_timeout=2,
            read_timeout=2,
            write_timeout=2,
        )
    except (pymysql.Error, OSError):
        return False
    conn.close()
    return True


def mariadb_binaries() -> tuple[str, str]:
    """(install-db, server) paths of the local MariaDB installation."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = (
        shutil.which("mariadbd")
        or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
        or shutil.which("mysqld", path="/usr/sbin:/usr/local/sbin")
    )
    if not install or not server:
        raise ServiceError(
            "MariaDB server binaries (mariadb-install-db, mariadbd) not found: install the "
            f"`mariadb-server` package, or set {ENV_MYSQL}=mysql://user:password@host:port/"
        )
    return install, server


#: Server options shared by install-db and the server (InnoDB sizes must match).
_MARIADB_INNODB = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
]

#: The binlog settings a CDC source needs, as a production server would have them.
MARIADB_BINLOG_OPTIONS = [
    "--server-id=1",
    "--log-bin=mysql-bin",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--gtid-strict-mode=ON",
    "--sync-binlog=0",
]


def start_mariadb(timeout: float = 60) -> MariaDBService:
    """A MariaDB server: $CDC_TEST_MYSQL_DSN, a container, or a private install-db'd one."""
    external = os.environ.get(ENV_MYSQL, "").strip()
    if external:
        return _external_mysql(external)
    if use_testcontainers():
        return _mariadb_container()
    install, server = mariadb_binaries()
    for _attempt in range(3):
        try:
            return _start_private_mariadb(install, server, timeout)
        except ServiceError as exc:
            if not _process.port_conflict(exc):
                raise
    raise ServiceError("could not find a free port for mariadb after 3 attempts")


def _external_mysql(url: str) -> MariaDBService:
    parts = urlsplit(url)
    if parts.scheme not in {"mysql", "mariadb", "mysql+pymysql"} or not parts.hostname:
        raise ServiceError(
            f"{ENV_MYSQL} must look like mysql://user:password@host:port/, got {redact(url)}"
        )
    host, port = parts.hostname, parts.port or 3306
    user, password = unquote(parts.username or "root"), unquote(parts.password or "")
    if not _mysql_ready(host, port, user, password):
        raise ServiceError(f"{ENV_MYSQL}: cannot connect to {redact(url)}")
    dsn = urlunsplit(parts._replace(path="/", query="", fragment=""))
    return MariaDBService(
        dsn=dsn, host=host, port=port, user=user, password=password, external=True
    )


def _spawn_mariadb(
    args: list[str], workdir: Path, port: int, timeout: float
) -> subprocess.Popen[bytes]:
    log = workdir / "mariadb.log"
    # Started as `mysql` directly (not --user=mysql) so it still dies with its parent.
    user = "mysql" if os.geteuid() == 0 else None
    proc = _process.spawn(args, user=user, log=log, cwd=workdir)
    _process.record_server_pid(workdir, proc.pid)
    _process.wait_until(
        lambda: _mysql_ready("127.0.0.1", port, "root", ""),
        proc=proc,
        timeout=timeout,
        what=f"mariadbd on 127.0.0.1:{port}",
        log=log,
    )
    return proc


def _start_private_mariadb(install: str, server: str, timeout: float) -> MariaDBService:
    root = os.geteuid() == 0
    workdir = _process.make_workdir("mariadb", owner_user="mysql" if root else None)
    data = workdir / "data"
    # A private tmpdir: in the shared /tmp, bootstrap temp tables of concurrent installs (or a
    # /tmp cleaner) could collide with ours ("Error on delete of '/tmp/#sql-temptable-...'").
    tmpdir = workdir / "tmp"
    tmpdir.mkdir()
    if root:
        shutil.chown(tmpdir, "mysql", "mysql")
    port = _process.free_port()
    user_opt = ["--user=mysql"] if root else []
    proc: subprocess.Popen[bytes] | None = None
    try:
        _process.run_checked(
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
                f"--tmpdir={tmpdir}",
                *user_opt,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *_MARIADB_INNODB,
            ],
            user=None,
            log=workdir / "install-db.log",
            what="mariadb-install-db",
        )
        args = [
            server,
            "--no-defaults",
            f"--datadir={data}",
            f"--tmpdir={tmpdir}",
            f"--socket={workdir / 'mysqld.sock'}",
            f"--pid-file={workdir / 'mysqld.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-networking=0",
            "--skip-name-resolve",
            "--performance-schema=OFF",
            "--max-connections=200",
            *_MARIADB_INNODB,
            *MARIADB_BINLOG_OPTIONS,
        ]
        proc = _spawn_mariadb(args, workdir, port, timeout)
        # root@localhost exists; make the TCP root account explicit (not only via name mapping).
        import pymysql

        with (
            contextlib.closing(
                pymysql.connect(host="127.0.0.1", port=port, user="root", password="")
            ) as conn,
            conn.cursor() as cur,
        ):
            for host in ("127.0.0.1", "%"):
                cur.execute(f"CREATE USER IF NOT EXISTS 'root'@'{host}' IDENTIFIED BY ''")
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' WITH GRANT OPTION")
    except BaseException:
        if proc is not None:
            _process.kill_group(proc)
        _process.remove_workdir(workdir)
        raise
    service = MariaDBService(
        dsn=f"mysql://root@127.0.0.1:{port}/",
        host="127.0.0.1",
        port=port,
        _workdir=workdir,
        _args=args,
        _proc=proc,
    )
    track(service)
    return service


def _mariadb_container() -> MariaDBService:
    from testcontainers.core.container import DockerContainer

    flags = " ".join(o for o in MARIADB_BINLOG_OPTIONS if not o.startswith("--sync"))
    container = (
        DockerContainer("mariadb:10.11")
        .with_env("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "1")
        .with_exposed_ports(3306)
        .with_command(f"{flags} --sync-binlog=0")
    )
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(3306))
    deadline = time.monotonic() + 90
    # The entrypoint runs a temporary server first (socket only); wait for the real one.
    while not _mysql_ready(host, port, "root", ""):
        if time.monotonic() > deadline:
            logs = b"".join(container.get_logs()).decode(errors="replace")[-3000:]
            container.stop()
            raise ServiceError(f"mariadb container did not become ready; logs:\n{logs}")
        time.sleep(0.5)
    service = MariaDBService(
        dsn=f"mysql://root@{host}:{port}/", host=host, port=port, _container=container
    )
    track(service)
    return service
