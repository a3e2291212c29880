"""The postgres source under the real runtime (`Bridge`): routes.toml -> topics, positions in
the state store, and a restart that resumes from them."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from cdc_bridge.config import load_config
from cdc_bridge.runtime import Bridge
from cdc_bridge.testing.services import KafkaService
from tests.sources.pg_harness import payload, read_topic, wait_for


def _run(conf: Path) -> tuple[Bridge, threading.Thread, list[int]]:
    bridge = Bridge(load_config(conf), checkpoint_interval=0.1)
    code: list[int] = []
    t = threading.Thread(target=lambda: code.append(bridge.run()), daemon=True)
    t.start()
    return bridge, t, code


def test_bridge_runs_postgres_source_and_resumes(
    pg_database: str, kafka: KafkaService, tmp_path: Path
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE orders (id int PRIMARY KEY, total numeric(8,2))")
        c.execute("INSERT INTO orders SELECT g, g FROM generate_series(1, 50) g")
    conf = tmp_path / "routes.toml"
    conf.write_text(
        f"""
[bridge]
name = "rt"
state = "sqlite:///{tmp_path}/state.db"

[kafka]
bootstrap_servers = "{kafka.bootstrap}"
topic_partitions = 1

[[sources]]
name = "rtshop"
kind = "postgres"
dsn = "{pg_database}"
tables = ["public.orders"]
"""
    )
    bridge, t, code = _run(conf)
    try:
        recs = read_topic(kafka.bootstrap, "rtshop.public.orders", 50)
        with psycopg.connect(pg_database, autocommit=True) as c:
            c.execute("INSERT INTO orders VALUES (51, 1.5)")
        recs = read_topic(kafka.bootstrap, "rtshop.public.orders", 51)
    finally:
        bridge.stop()
        t.join(30)
    assert code == [0]
    assert [payload(r)["op"] for r in recs] == ["r"] * 50 + ["c"]
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("INSERT INTO orders VALUES (52, 2.5)")  # while the bridge is down
    bridge, t, code = _run(conf)
    try:
        assert wait_for(
            lambda: len(read_topic(kafka.bootstrap, "rtshop.public.orders", 52, timeout=5)) >= 52,
            30,
        )
        recs = read_topic(kafka.bootstrap, "rtshop.public.orders", 52, settle=1.0)
    finally:
        bridge.stop()
        t.join(30)
    assert code == [0]
    ids = [payload(r)["after"]["id"] for r in recs]
    assert ids == list(range(1, 53))  # no second snapshot, nothing replayed, nothing lost
