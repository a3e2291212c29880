"""Fault tests of setup mistakes on the source side, under the real ``cdc-bridge`` commands:
a wrong broker address (no orphan replication slot; the error names the address and the
key), and configs that can do nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.faults.support import BridgeProcess, bridge_config, free_port


def test_wrong_broker_address_fails_before_touching_the_source(
    pg_database: str,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    name = f"wrb{time.monotonic_ns() % 10**9}"
    wrong = f"127.0.0.1:{free_port()}"  # nothing listens there
    source = {"name": name, "kind": "postgres", "dsn": pg_database, "tables": ["public.items"]}
    conf = bridge_config(tmp_path, wrong, sources=[source], kafka={"connect_timeout_s": 3})
    bridge = bridge_process(conf)
    assert bridge.wait_exit(30) == 1, bridge.log_tail()
    log = bridge.log()
    assert f"cannot reach Kafka at {wrong} ([kafka] bootstrap_servers)" in log, log
    assert "Traceback" not in log, log
    with psycopg.connect(pg_database) as c:
        slots = c.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
        pubs = c.execute("SELECT pubname FROM pg_publication").fetchall()
    assert slots == [] and pubs == [], (slots, pubs)


def test_routes_only_bridge_reports_an_unreachable_broker_within_seconds(
    bridge_process: Callable[..., BridgeProcess], tmp_path: Path
) -> None:
    wrong = f"127.0.0.1:{free_port()}"
    conf = bridge_config(
        tmp_path,
        wrong,
        sinks=[{"name": "dw", "kind": "database", "url": f"sqlite:///{tmp_path / 't.db'}"}],
        routes=[{"name": "r", "from": "shop.public.items", "to": "dw"}],
    )
    bridge = bridge_process(conf)  # the default [kafka] connect_timeout_s
    bridge.wait_log(f"cannot reach Kafka at {wrong} ([kafka] bootstrap_servers)", 15)
    assert "ERROR" in bridge.log(), bridge.log()
    assert bridge.stop() == 0, bridge.log_tail()  # stopping while it waits is a clean stop
