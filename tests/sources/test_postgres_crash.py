"""Crash test: a writer commits 50,000 rows in small transactions while the bridge process is
SIGKILLed at three random moments and restarted. Every committed row must reach Kafka
(duplicates are counted and reported; none may be missing)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from cdc_bridge.testing.services import KafkaService
from tests.sources.pg_harness import payload, read_topic

ROWS = 50_000
PER_TX = 5


def _start(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "cdc_bridge.testing.pg_bridge", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )


@pytest.mark.slow
def test_sigkill_three_times_loses_nothing(
    pg_database: str, kafka: KafkaService, tmp_path: Path
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE crash (id int PRIMARY KEY, payload text)")
        c.execute("INSERT INTO crash SELECT g, 'pre' FROM generate_series(1, 1000) g")
    conf = tmp_path / "bridge.json"
    conf.write_text(
        json.dumps(
            {
                "bootstrap": kafka.bootstrap,
                "state": str(tmp_path / "offsets.json"),
                "producer": {"linger.ms": 2},
                "source": {
                    "name": "crash",
                    "kind": "postgres",
                    "dsn": pg_database,
                    "tables": ["public.crash"],
                    "snapshot": "initial",
                    "status_interval_ms": 100,
                    "snapshot_batch_size": 200,
                },
            }
        )
    )
    log = tmp_path / "bridge.log"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    written = threading.Event()

    def writer() -> None:
        with psycopg.connect(pg_database, autocommit=True) as c:
            for start in range(1001, 1001 + ROWS, PER_TX):
                with c.transaction():
                    c.execute(
                        "INSERT INTO crash SELECT g, repeat('x', 100) FROM generate_series(%s::int, %s::int) g",
                        (start, start + PER_TX - 1),
                    )
                time.sleep(0.0002)
        written.set()

    proc = _start(conf, log)
    w = threading.Thread(target=writer)
    w.start()
    kills = []
    try:
        for _ in range(3):
            time.sleep(rng.uniform(0.8, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills.append(time.monotonic())
            proc = _start(conf, log)
        w.join()
        total = 1000 + ROWS
        recs = read_topic(kafka.bootstrap, "crash.public.crash", total, timeout=120, settle=1.0)
    finally:
        proc.terminate()
        proc.wait(20)
        w.join()
    ids = Counter(payload(r)["after"]["id"] for r in recs)
    missing = set(range(1, total + 1)) - set(ids)
    dupes = sum(n - 1 for n in ids.values())
    print(f"crash test: {len(recs)} records, {len(ids)} distinct rows, {dupes} duplicates")
    assert written.is_set() and len(kills) == 3
    assert not missing, (
        f"{len(missing)} rows missing, e.g. {sorted(missing)[:10]}; bridge log tail:\n"
        + log.read_text(errors="replace")[-3000:]
    )
