"""Sink errors end in one of two states: the bridge stops at start with a message naming the
sink and the target (wrong password, SQLite file in a missing directory), or -- when the
problem appears while running -- the route retries, logs an ERROR and ``/readyz`` says 503
until it is fixed. Stopping the bridge while a route retries is a clean stop (exit 0)."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cdc_bridge.config import load_config
from cdc_bridge.runtime import Bridge
from tests.faults._routes import encoded, item, item_events, items_topic, produce_records
from tests.faults.support import bridge_config, free_port, wait_for, write_config


def _conf(tmp_path: Path, kafka: Any, url: str, topic: str) -> dict[str, Any]:
    return bridge_config(
        tmp_path,
        kafka.bootstrap,
        sinks=[{"name": "target", "kind": "database", "url": url}],
        routes=[{"name": "items", "from": topic, "to": "target", "table": "items"}],
        bridge={"name": f"b{uuid.uuid4().hex[:8]}"},
    )


def _route_state(body: dict[str, Any]) -> tuple[str, str]:
    r = body["routes"].get("items") or {}
    return r.get("state", ""), r.get("detail", "")


def test_ctrl_c_while_a_route_retries_an_unreachable_sink_is_a_clean_stop(
    tmp_path: Path, kafka: Any, topic_name: Any, bridge_process: Any
) -> None:
    url = f"postgresql://cdc:secret@127.0.0.1:{free_port()}/shop"
    bridge = bridge_process(_conf(tmp_path, kafka, url, topic_name("items")))
    body = bridge.wait_readyz(
        lambda code, b: code == 503 and _route_state(b)[0] == "retrying",
        30,
        "the route retrying its sink",
    )
    assert "cannot open the sink" in _route_state(body)[1]
    assert bridge.proc is not None
    bridge.proc.send_signal(signal.SIGINT)
    assert bridge.wait_exit(30) == 0, bridge.log_tail()
    log = bridge.log()
    assert "crashed" not in log and "Traceback" not in log, log[-3000:]
    assert "bridge stopped cleanly" in log


def _start(tmp_path: Path, conf: dict[str, Any], caplog: pytest.LogCaptureFixture) -> int:
    """``cdc-bridge start`` in this process (the same Bridge the command runs); exit code."""
    path = write_config(tmp_path / "routes.toml", conf)
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    code = Bridge(load_config(path)).run()
    assert time.monotonic() - started < 30, "the bridge took long to give up"
    return code


def test_wrong_sink_password_stops_the_bridge_at_start_naming_sink_and_host(
    tmp_path: Path,
    kafka: Any,
    mariadb: Any,
    mariadb_database: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-one'")
    try:
        url = f"mysql://{user}:wrong-one@{mariadb.host}:{mariadb.port}/{mariadb_database.name}"
        assert _start(tmp_path, _conf(tmp_path, kafka, url, "never-used"), caplog) != 0
        log = caplog.text
        assert "sink 'target'" in log and f"{mariadb.host}:{mariadb.port}" in log, log[-3000:]
        assert "Access denied" in log and "wrong-one" not in log
        assert "retrying" not in log and "Traceback" not in log
    finally:
        with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def test_sqlite_target_in_a_missing_directory_stops_the_bridge_naming_the_path(
    tmp_path: Path, kafka: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "no-such-dir" / "target.db"
    conf = _conf(tmp_path, kafka, f"sqlite:///{path}", "never-used")
    assert _start(tmp_path, conf, caplog) != 0
    log = caplog.text
    assert "sink 'target'" in log and str(path.parent) in log, log[-3000:]
    assert "retrying" not in log and "Traceback" not in log


def test_password_changed_while_running_is_an_error_and_not_ready_until_fixed(
    tmp_path: Path,
    kafka: Any,
    mariadb: Any,
    mariadb_database: Any,
    topic_name: Any,
    bridge_process: Any,
) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    db = mariadb_database.name
    with contextlib.closing(mariadb.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw1'")
        cur.execute(f"GRANT ALL ON `{db}`.* TO '{user}'@'%'")
    admin = mariadb.connect()
    try:
        topic = items_topic(topic_name, kafka.bootstrap)
        url = f"mysql://{user}:pw1@{mariadb.host}:{mariadb.port}/{db}"
        bridge = bridge_process(_conf(tmp_path, kafka, url, topic))
        produce_records(kafka.bootstrap, topic, encoded(item_events([item(1)])))
        bridge.wait_ready(60)

        def rows() -> list[Any]:
            with admin.cursor() as cur:
                cur.execute(f"SHOW TABLES FROM `{db}` LIKE 'items'")
                if not cur.fetchall():
                    return []
                cur.execute(f"SELECT id, qty, name FROM `{db}`.items ORDER BY id")
                return list(cur.fetchall())

        wait_for(lambda: len(rows()) == 1, 30, "the first row")
        # The password changes under the running bridge; its connections are dropped.
        with admin.cursor() as cur:
            cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'pw2'")
            cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
            for (pid,) in cur.fetchall():
                with contextlib.suppress(Exception):
                    cur.execute(f"KILL {int(pid)}")
        produce_records(kafka.bootstrap, topic, encoded(item_events([item(2)])))
        body = bridge.wait_readyz(
            lambda code, b: code == 503 and _route_state(b)[0] == "retrying",
            30,
            "the route retrying with the refused password",
        )
        assert "Access denied" in _route_state(body)[1]
        bridge.wait_log("ERROR", 10)
        assert "Access denied" in "".join(
            line for line in bridge.log().splitlines() if "ERROR" in line
        )
        # Fixed outside: the route goes on by itself, nothing lost.
        with admin.cursor() as cur:
            cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'pw1'")
        wait_for(lambda: len(rows()) == 2, 60, "the second row after the fix")
        bridge.wait_ready(30)
        assert rows() == [(1, "10", "item 1"), (2, "20", "item 2")]
        assert bridge.stop() == 0
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")
        admin.close()
