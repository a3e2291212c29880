"""Crash test: 50,000 rows committed while the bridge is SIGKILLed three times; none missing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.sources.mysql_support import consume

ROWS = 50_000
TXN_ROWS = 50  # 5 statements of 10 rows per transaction


def _start(conf: dict[str, Any], root: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(root))
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.sources.mysql_crash_runner", json.dumps(conf)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


@pytest.mark.slow
def test_sigkill_three_times_loses_nothing(
    mariadb_database: Any, kafka: Any, topic_name: Any, tmp_path: Path
) -> None:
    db = mariadb_database
    conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute("CREATE TABLE crash (id INT PRIMARY KEY, v VARCHAR(40))")
    name = topic_name("crash")
    root = Path(__file__).resolve().parents[2]
    conf = {
        "dsn": f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/",
        "name": name,
        "table": f"{db.name}.crash",
        "bootstrap": kafka.bootstrap,
        "state": str(tmp_path / "state.json"),
        "server_id": 6100,
    }
    done = threading.Event()

    def writer() -> None:
        c = pymysql.connect(**db.connect_kwargs())
        with contextlib.closing(c), c.cursor() as cur:
            for t in range(ROWS // TXN_ROWS):
                for s in range(TXN_ROWS // 10):
                    base = t * TXN_ROWS + s * 10
                    cur.execute(
                        "INSERT INTO crash VALUES "
                        + ",".join(f"({base + i}, 'row {base + i}')" for i in range(10))
                    )
                c.commit()
                time.sleep(0.005)  # spread the load over the kills (~6 s)
        done.set()

    proc = _start(conf, root, tmp_path / "bridge.log")
    w = threading.Thread(target=writer)
    w.start()
    kills = 0
    try:
        while kills < 3:
            time.sleep(1.5)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = _start(conf, root, tmp_path / "bridge.log")
        assert not done.is_set(), "the writer finished before the last kill"
        w.join()
        assert done.is_set()
        seen: dict[int, int] = {}
        consumed = [0]

        def complete(recs: list[Any]) -> bool:
            for _k, v in recs[consumed[0] :]:
                if v is not None:
                    rid = v["payload"]["after"]["id"]
                    seen[rid] = seen.get(rid, 0) + 1
            consumed[0] = len(recs)
            return len(seen) >= ROWS

        consume(kafka.bootstrap, f"{name}.{db.name}.crash", complete, timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    missing = ROWS - len(set(seen) & set(range(ROWS)))
    duplicates = sum(seen.values()) - len(seen)
    print(
        f"\nmysql crash test: {ROWS} rows, {kills} SIGKILLs, missing={missing}, "
        f"duplicates={duplicates}"
    )
    assert missing == 0
    assert set(seen) == set(range(ROWS))
