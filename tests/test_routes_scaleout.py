"""Scale-out and crashes: `cdc-bridge start` processes sharing a consumer group through rebalances, and
a sink process SIGKILLed mid-stream; the target ends equal and no record is applied twice
(the offsets table counts applied records per partition)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.routes_support import (
    col,
    create_topic,
    encode,
    event,
    produce,
    table,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = (col("id", "int32", False), col("v", "int64"), col("s", "string"))


class Workload:
    """Random inserts/updates/deletes/key changes with a model of the expected final state."""

    def __init__(self, prefix: str, seed: int = 7) -> None:
        self.t = table(source=prefix, columns=COLUMNS)
        self.rng = random.Random(seed)
        self.state: dict[int, dict[str, Any]] = {}
        self.next_id = 0
        self.produced = 0

    def chunk(self, n: int) -> list[Any]:
        events = []
        for _ in range(n):
            x = self.rng.random()
            if x < 0.4 or len(self.state) < 10:
                i = self.next_id
                self.next_id += 1
                r = {"id": i, "v": self.rng.randrange(10**9), "s": f"s{i}"}
                self.state[i] = r
                events.append(event(self.t, "c", None, r))
            elif x < 0.8:
                i = self.rng.choice(list(self.state))
                old = self.state[i]
                new = {**old, "v": old["v"] + 1}
                self.state[i] = new
                events.append(event(self.t, "u", old, new))
            elif x < 0.9:
                i = self.rng.choice(list(self.state))
                old = self.state.pop(i)
                events.append(event(self.t, "d", old, None))
            else:  # primary-key change: d + tombstone + c on the wire
                i = self.rng.choice(list(self.state))
                old = self.state.pop(i)
                j = self.next_id
                self.next_id += 1
                new = {**old, "id": j}
                self.state[j] = new
                events.append(event(self.t, "u", old, new))
        return encode(events)

    def send(self, bootstrap: str, n: int) -> None:
        self.produced += produce(bootstrap, self.chunk(n))


# tansu (the test broker) does not keep cooperative-sticky assignments apart (two members
# get the same partition); the eager protocol is what it implements correctly.
CONSUMER = {"partition.assignment.strategy": os.environ.get("ROUTE_TEST_ASSIGNOR", "roundrobin")}

# Process logs, configs and state stores (kept for post-mortems of failed runs).
LOGS = Path(os.environ.get("ROUTE_TEST_LOGS", "/tmp/cdc-bridge-route-tests"))
LOGS.mkdir(parents=True, exist_ok=True)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def start(bootstrap: str, url: str, routes: list[dict[str, Any]]) -> subprocess.Popen[bytes]:
    """A real `cdc-bridge start` process running ``routes`` into ``url``."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    lines = [
        "[bridge]",
        'name = "scale"',
        f'state = "sqlite:///{LOGS / f"state-{tag}.db"}"',
        "[kafka]",
        f'bootstrap_servers = "{bootstrap}"',
        "[kafka.consumer]",
        '"session.timeout.ms" = 2000',
        '"heartbeat.interval.ms" = 300',
        *(f'"{k}" = {_toml(v)}' for k, v in CONSUMER.items()),
        "[[sinks]]",
        'name = "target"',
        'kind = "database"',
        f"url = {_toml(url)}",
    ]
    for route in routes:
        lines += ["[[routes]]", 'to = "target"', *(f"{k} = {_toml(v)}" for k, v in route.items())]
    config = LOGS / f"routes-{tag}.toml"
    config.write_text("\n".join(lines) + "\n")
    log_path = LOGS / f"route-{tag}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdc_bridge", "start", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    wait_for(
        lambda: b"consuming" in log_path.read_bytes() or proc.poll() is not None,
        what="the bridge process to start",
    )
    assert proc.poll() is None, log_path.read_text()
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


def query(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(sql))
    except (sa.exc.ProgrammingError, sa.exc.OperationalError):
        return []  # the table does not exist yet
    finally:
        engine.dispose()


def applied(url: str) -> int:
    rows = query(url, "SELECT COALESCE(SUM(applied), 0) FROM cdc_bridge_offsets")
    return int(rows[0][0]) if rows else 0


def target_state(url: str) -> dict[int, dict[str, Any]]:
    return {
        r[0]: {"id": r[0], "v": r[1], "s": r[2]}
        for r in query(url, "SELECT id, v, s FROM customers")
    }


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return pg_database.replace("postgresql://", "postgresql+psycopg://", 1)


def test_two_processes_share_partitions_through_rebalances(
    kafka: Any, topic_name: Any, pg_url: str
) -> None:
    w = Workload(topic_name("shop"))
    create_topic(kafka.bootstrap, w.t.topic, partitions=4)
    routes = [{"name": "scale", "from": w.t.topic, "batch_size": 50, "linger_ms": 20}]
    w.send(kafka.bootstrap, 1500)
    a = start(kafka.bootstrap, pg_url, routes)
    procs = [a]
    try:
        wait_for(lambda: applied(pg_url) > 0, what="first batches")
        b = start(kafka.bootstrap, pg_url, routes)  # joins: partitions move to b
        procs.append(b)
        w.send(kafka.bootstrap, 1500)
        time.sleep(2)
        stop(a)  # leaves: its partitions move back to b after finishing its batch
        w.send(kafka.bootstrap, 1000)
        c = start(kafka.bootstrap, pg_url, routes)
        procs.append(c)
        w.send(kafka.bootstrap, 1000)
        wait_for(lambda: applied(pg_url) >= w.produced, timeout=120, what="everything applied")
        time.sleep(1)
    finally:
        for p in procs:
            stop(p)
    assert applied(pg_url) == w.produced  # nothing applied twice, nothing skipped
    assert target_state(pg_url) == w.state


@pytest.mark.slow
def test_sigkill_mid_stream_three_times(
    kafka: Any, topic_name: Any, pg_url: str, mariadb_database: Any, tmp_path: Path
) -> None:
    w = Workload(topic_name("shop"), seed=11)
    create_topic(kafka.bootstrap, w.t.topic, partitions=3)
    sqlite_url = f"sqlite:///{tmp_path / 'target.db'}"
    maria_url = mariadb_database.dsn.replace("mysql://", "mysql+pymysql://", 1)
    targets = [pg_url, maria_url, sqlite_url]
    routes = {
        url: [{"name": f"crash{n}", "from": w.t.topic, "batch_size": 20, "linger_ms": 10}]
        for n, url in enumerate(targets)
    }
    w.send(kafka.bootstrap, 3000)
    for round_ in range(3):
        w.send(kafka.bootstrap, 4000)
        for u in targets:  # one target at a time, so each is killed mid-stream
            floor = applied(u)
            proc = start(kafka.bootstrap, u, routes[u])
            wait_for(
                lambda u=u, floor=floor: applied(u) > floor + 50,
                what=f"progress in round {round_}",
            )
            stop(proc, signal.SIGKILL)
            assert applied(u) < w.produced, "killed after the end: no crash tested"
    procs = [start(kafka.bootstrap, url, routes[url]) for url in targets]
    try:
        for u in targets:
            wait_for(lambda u=u: applied(u) >= w.produced, timeout=120, what="everything applied")
    finally:
        for p in procs:
            stop(p)
    for u in targets:
        assert applied(u) == w.produced
        assert target_state(u) == w.state
