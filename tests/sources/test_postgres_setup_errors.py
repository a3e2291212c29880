"""Each bad setup ends in one clear ConfigError that says how to fix it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cdc_bridge.errors import ConfigError
from cdc_bridge.sources.postgres.replication import ReplicationConnection
from cdc_bridge.sources.postgres.source import PostgresSource
from cdc_bridge.testing import _process
from cdc_bridge.testing.services import postgres_bindir
from tests.sources.pg_harness import make_config


def check(dsn: str, **kw: object) -> None:
    src = PostgresSource(make_config(dsn, "bad", **kw))
    try:
        src.check()
    finally:
        src.close()


def with_user(dsn: str, user: str) -> str:
    return dsn.replace("postgres@", f"{user}@", 1)


def test_missing_table(pg_database: str) -> None:
    with pytest.raises(ConfigError, match=r"public\.nope do not exist.*fix `tables`"):
        check(pg_database, tables=["public.nope"])


def test_missing_replication_privilege_and_select(pg_database: str) -> None:
    user = "u" + os.urandom(4).hex()
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE secret (id int PRIMARY KEY)")
        c.execute(f"CREATE ROLE {user} LOGIN")
    try:
        with pytest.raises(ConfigError) as info:
            check(with_user(pg_database, user), tables=["public.secret"])
        msg = str(info.value)
        assert f"ALTER ROLE {user} REPLICATION" in msg
        assert f"GRANT SELECT ON public.secret TO {user}" in msg
    finally:
        with psycopg.connect(pg_database, autocommit=True) as c:
            c.execute(f"DROP OWNED BY {user}; DROP ROLE {user}")


def test_slot_with_other_plugin(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("SELECT pg_create_logical_replication_slot('cdc_bridge_bad', 'test_decoding')")
    with pytest.raises(ConfigError, match=r"uses plugin 'test_decoding', not pgoutput"):
        check(pg_database, tables=["public.t"])


def test_slot_active_in_other_process(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("CREATE PUBLICATION p FOR TABLE t")
    other = ReplicationConnection(pg_database)
    try:
        other.create_slot("cdc_bridge_bad")
        other.start_replication("cdc_bridge_bad", 0, publications=["p"])
        with pytest.raises(ConfigError, match=r"already in use by another process \(pid \d+\)"):
            check(pg_database, tables=["public.t"])
    finally:
        other.close()


def test_table_without_primary_key_warns(
    pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE nokey (v int)")
    check(pg_database, tables=["public.nokey"])
    assert any(
        "no primary key" in r.message and "REPLICA IDENTITY FULL" in r.message
        for r in caplog.records
    )


@pytest.fixture(scope="module")
def replica_level_dsn() -> Iterator[str]:
    """A private server with wal_level=replica (the shared one is logical)."""
    bindir = postgres_bindir()
    work = Path(tempfile.mkdtemp(prefix="cdc-test-pgreplica-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(work, user)
    port = _process.free_port()
    run = ["runuser", "-u", user, "--"] if user else []
    subprocess.run(
        [*run, str(bindir / "initdb"), "-D", str(work / "d"), "-U", "postgres", "--auth=trust",
         "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.Popen(
        [*run, str(bindir / "postgres"), "-D", str(work / "d"), "-c", f"port={port}",
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={work}",
         "-c", "wal_level=replica", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(dsn).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield dsn
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(work, ignore_errors=True)


def test_wal_level_not_logical(replica_level_dsn: str) -> None:
    with psycopg.connect(replica_level_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)")
    with pytest.raises(ConfigError, match=r"wal_level is 'replica'.*wal_level = logical"):
        check(replica_level_dsn, tables=["public.t"])


def test_run_waits_briefly_for_a_slot_being_released(pg_database: str, kafka: object) -> None:
    """A restarted bridge may find its slot still held by the old walsender for a moment."""
    import threading

    from tests.sources.pg_harness import run_source

    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("CREATE PUBLICATION cdc_bridge_bad FOR TABLE t")
    other = ReplicationConnection(pg_database)
    other.create_slot("cdc_bridge_bad")
    other.start_replication("cdc_bridge_bad", 0, publications=["cdc_bridge_bad"])
    threading.Timer(1.0, other.close).start()
    cfg = make_config(pg_database, "bad", tables=["public.t"], snapshot="never")
    with run_source(kafka.bootstrap, cfg) as running:  # type: ignore[attr-defined]
        assert running.source.repl is not None and running.source.repl.streaming
