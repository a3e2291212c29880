"""Fault tests of the MySQL/MariaDB source under the real ``cdc-bridge start`` process: the
server shut down cleanly (``mysqladmin shutdown``: the binlog stream ends with an EOF packet)
or killed, and the bridge itself killed and restarted at once. Each ends with every row the
server holds on the topic, value for value."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from cdc_bridge.testing.services import KafkaService, MariaDBService, MySQLDatabase
from tests.faults.support import (
    BridgeProcess,
    Writer,
    assert_rows,
    bridge_config,
    converged,
    read_topic,
    table_rows,
)

_server_ids = itertools.count(31_000)


@pytest.fixture
def my_db(faults_mariadb: MariaDBService) -> Iterator[MySQLDatabase]:
    """A fresh database on the breakable MariaDB, with ``items (id, v)`` and 100 rows."""
    db = faults_mariadb.create_database(f"myf_{time.monotonic_ns() % 10**12}")
    with connect(db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(200))")
        cur.execute(
            "INSERT INTO items VALUES " + ",".join(f"({i}, 'pre{i}')" for i in range(1, 101))
        )
    yield db
    faults_mariadb.drop_database(db.name)


def connect(db: MySQLDatabase) -> Any:
    return pymysql.connect(
        **db.connect_kwargs(), autocommit=True, connect_timeout=2, read_timeout=5
    )


def _source(db: MySQLDatabase, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "mysql",
        "dsn": f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/",
        "tables": [f"{db.name}.items"],
        "server_id": next(_server_ids),
        "heartbeat_s": 1,
        **extra,
    }


def _start(
    db: MySQLDatabase,
    kafka: KafkaService,
    tmp_path: Path,
    bridge_process: Callable[..., BridgeProcess],
    **extra: Any,
) -> tuple[BridgeProcess, str]:
    name = f"myr{time.monotonic_ns() % 10**9}"
    conf = bridge_config(tmp_path, kafka.bootstrap, sources=[_source(db, name, **extra)])
    bridge = bridge_process(conf)
    bridge.wait_ready(60)
    return bridge, f"{name}.{db.name}.items"


def _final_check(bridge: BridgeProcess, db: MySQLDatabase, kafka: KafkaService, topic: str) -> None:
    expected = table_rows(connect(db))
    records = read_topic(kafka.bootstrap, topic, until=converged(expected), timeout=30)
    assert_rows(records, expected, bridge.log_tail())
    bridge.wait_ready(30)
    assert bridge.stop() == 0, bridge.log_tail()


def test_clean_shutdown_and_kill_of_the_server_resume_capture(
    my_db: MySQLDatabase,
    faults_mariadb: MariaDBService,
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """Defect 1: a clean shutdown ends the binlog stream with an EOF packet; the source must
    treat it as a disconnect (reconnect, resume), exactly as after a killed server."""
    bridge, topic = _start(my_db, kafka, tmp_path, bridge_process)
    errors = (pymysql.err.MySQLError, OSError)
    with Writer(lambda: connect(my_db), errors) as writer:
        writer.wait_more(150, 30, "before the clean shutdown")
        faults_mariadb.down()  # SIGTERM: what `mysqladmin shutdown` does
        time.sleep(0.5)
        faults_mariadb.up()
        writer.wait_more(150, 30, "after the clean shutdown")
        faults_mariadb.kill()
        faults_mariadb.up()
        writer.wait_more(150, 30, "after the kill")
    # Captured after both outages, and the bridge says it is ready again.
    _final_check(bridge, my_db, kafka, topic)


def test_bridge_sigkill_then_immediate_restart_resumes_at_once(
    my_db: MySQLDatabase,
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """Defect 9: after a SIGKILL the server still lists the dead bridge's connection under
    the same server_id for a while; the restarted bridge must not take it for another
    replica (the server drops the old connection when the new one registers)."""
    # The default heartbeat (5 s): the server notices the dead connection only when a
    # heartbeat write fails, so it still lists it when the new process starts.
    bridge, topic = _start(my_db, kafka, tmp_path, bridge_process, heartbeat_s=5)
    errors = (pymysql.err.MySQLError, OSError)
    with Writer(lambda: connect(my_db), errors) as writer:
        writer.wait_more(100, 30, "before the kill")
    bridge.kill()  # while the source is idle: nothing is written to the dead socket
    bridge.start()  # at once, as a supervisor with no restart delay would
    bridge.wait_ready(30)
    with Writer(lambda: connect(my_db), errors, first_id=5000) as writer:
        writer.wait_more(100, 30, "after the restart")
    assert "choose a server_id" not in bridge.log(), bridge.log_tail()
    _final_check(bridge, my_db, kafka, topic)
