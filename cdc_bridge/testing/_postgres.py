"""The PostgreSQL test server: external, testcontainers, or a private initdb'd instance."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from cdc_bridge.testing import _process
from cdc_bridge.testing._common import (
    ENV_POSTGRES,
    Handle,
    check_ident,
    redact,
    track,
    use_testcontainers,
)
from cdc_bridge.testing._process import ServiceError


def _with_dbname(dsn: str, dbname: str) -> str:
    """The same DSN pointing at another database (URL or key=value form)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + quote(dbname)))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


@dataclass(eq=False)
class PostgresService(Handle):
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
            conn.execute(f'CREATE DATABASE "{check_ident(name)}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` with its replication slots (slots would keep it alive)."""
        import psycopg

        check_ident(name)
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

    def restart(self, timeout: float = 60, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate; nothing to do after `kill()`)
        and start it again on the same port and data."""
        self.down(mode)
        self.up(timeout)

    def down(self, mode: str = "fast") -> None:
        """Shut the server down like ``pg_ctl stop -m MODE`` (smart, fast, immediate)."""
        if self._proc is None or self._workdir is None:
            raise ServiceError("down() needs a private server, not an external one")
        sig = _STOP_SIGNALS.get(mode)
        if sig is None:
            raise ValueError(f"mode must be one of {sorted(_STOP_SIGNALS)}, not {mode!r}")
        _process.terminate(self._proc, sig=sig, timeout=30)

    def up(self, timeout: float = 60) -> None:
        """Start the server again on the same port and data (after `down()` or `kill()`)."""
        if self._proc is None or self._workdir is None:
            raise ServiceError("up() needs a private server, not an external one")
        if self._proc.poll() is None:
            raise ServiceError("the server still runs: call down() or kill() first")
        self._proc = _spawn_postgres(self._args, self._workdir, self.dsn, self.port, timeout)

    def _shutdown(self) -> None:
        if self._proc is not None:
            _process.terminate(self._proc, sig=signal.SIGINT, timeout=15)  # fast shutdown
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
        if self._workdir is not None:
            _process.remove_workdir(self._workdir)


#: pg_ctl's shutdown modes and the postmaster signal each one sends.
_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


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
            raise ServiceError(f"{ENV_POSTGRES}: cannot connect to {redact(external)}")
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
            if not _process.port_conflict(exc):
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
    track(service)
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
    # The image's pg_hba.conf allows replication connections only from inside the container.
    result = container.exec(
        [
            "sh",
            "-c",
            'echo "host replication all all trust" >> "$PGDATA/pg_hba.conf" && '
            'psql -U postgres -tAc "SELECT pg_reload_conf()"',
        ]
    )
    if result.exit_code != 0:
        container.stop()
        raise ServiceError(f"cannot allow replication in the postgres container: {result.output!r}")
    service = PostgresService(dsn=dsn, host=host, port=port, _container=container)
    track(service)
    return service
