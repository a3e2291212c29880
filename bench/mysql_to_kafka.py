"""Benchmark: MySQL/MariaDB binlog -> Debezium events -> broker ack, and latency at a fixed rate.

1. Throughput: N rows are committed first (multi-row and single-row transactions), then the
   source streams them from the position before; rows/s = rows until the broker acknowledged
   the last record, divided by the time since the source started. Also reported: the bare
   binlog decode rate of ``BinlogStream`` and of mysql-replication's ``BinLogStreamReader``
   on the same binlog (the library this replaced on the hot path).
2. Latency: a writer process commits single-row transactions at a fixed rate (default 5,000
   rows/s); a consumer measures commit -> consumed latency from a microsecond timestamp in
   each row. Reports p50/p99/max.

Uses a private MariaDB and the embedded broker (or CDC_TEST_MYSQL_DSN / CDC_TEST_KAFKA_BOOTSTRAP).

    just bench-mysql            # or: .venv/bin/python bench/mysql_to_kafka.py --rows 200000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from typing import Any

import pymysql
from confluent_kafka import Consumer, TopicPartition

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.mysql.binlog import BinlogStream, Rows
from cdc_bridge.sources.mysql.config import MySqlSourceConfig
from cdc_bridge.sources.mysql.source import MySqlSource
from cdc_bridge.testing.services import start_kafka, start_mariadb

TABLE = """CREATE TABLE orders (
  id BIGINT PRIMARY KEY, customer_id BIGINT, email VARCHAR(80), status VARCHAR(16),
  total DECIMAL(12,2), created_at DATETIME(6), note VARCHAR(120)
) DEFAULT CHARSET=utf8mb4"""


class Store:
    def __init__(self, offset: dict[str, Any] | None) -> None:
        self.offset = offset

    def load_offset(self, source: str) -> dict[str, Any] | None:
        return self.offset

    def save_offset(self, source: str, offset: dict[str, Any]) -> None:
        self.offset = offset


def _row(i: int, ts: str = "2024-01-01 10:00:00.123456") -> str:
    return f"({i},{i % 5000},'customer{i % 5000}@example.com','paid',{i % 1000}.25,'{ts}','{'n' * 90}')"


def load(conn: Any, start: int, rows: int, per_txn: int) -> None:
    with conn.cursor() as cur:
        i = start
        while i < start + rows:
            n = min(per_txn, start + rows - i)
            if n == 1:
                cur.execute("INSERT INTO orders VALUES " + _row(i))
            else:
                # 10-row statements: one row event each, several per transaction
                for j in range(i, i + n, 10):
                    cur.execute(
                        "INSERT INTO orders VALUES "
                        + ",".join(_row(k) for k in range(j, min(j + 10, i + n)))
                    )
            conn.commit()
            i += n


def decode_rate(args: dict[str, Any], file: str, pos: int) -> float:
    s = BinlogStream(args, 9901, file=file, pos=pos, blocking=False)
    n = 0
    t = time.perf_counter()
    for ev in s.events():
        if type(ev) is Rows:
            n += len(ev.rows)
    s.close()
    return n / (time.perf_counter() - t)


def library_rate(args: dict[str, Any], file: str, pos: int, limit: int) -> float:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent

    r = BinLogStreamReader(
        {**args, "passwd": args["password"]},
        server_id=9902,
        log_file=file,
        log_pos=pos,
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent],
        enable_logging=False,
    )
    n = 0
    t = time.perf_counter()
    for ev in r:
        n += len(ev.rows)
        if n >= limit:
            break
    r.close()
    return n / (time.perf_counter() - t)


def throughput(
    db_args: dict[str, Any], dsn: str, bootstrap: str, rows: int, per_txn: int
) -> dict[str, Any]:
    conn = pymysql.connect(**db_args, database="bench", charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    load(conn, 0, rows, per_txn)
    conn.close()
    name = f"tp{per_txn}"
    cfg = MySqlSourceConfig(
        name=name,
        kind="mysql",
        dsn=dsn,
        tables=["bench.orders"],
        server_id=9800 + per_txn,
        snapshot="never",
        gtid="off",
    )
    producer = EventProducer(bootstrap)
    ctx = SourceContext(name, producer, EnvelopeEncoder(), Store({"file": file, "pos": int(pos)}))
    source = MySqlSource(cfg)
    t0 = time.perf_counter()
    th = threading.Thread(target=source.run, args=(ctx,), daemon=True)
    th.start()
    while ctx.events_emitted < rows:
        time.sleep(0.002)
    emitted_s = time.perf_counter() - t0
    producer.flush(120)
    acked_s = time.perf_counter() - t0
    ctx.stopping.set()
    th.join(10)
    producer.close()
    return {
        "rows": rows,
        "rows_per_txn": per_txn,
        "rows_per_s_acked": round(rows / acked_s),
        "rows_per_s_emitted": round(rows / emitted_s),
        "decode_rows_per_s": round(decode_rate(db_args, file, int(pos))),
        "mysql_replication_rows_per_s": round(
            library_rate(db_args, file, int(pos), min(rows, 20000))
        ),
    }


WRITER = r"""
import sys, time, pymysql
args = eval(sys.argv[1]); rate = int(sys.argv[2]); seconds = float(sys.argv[3]); start = int(sys.argv[4])
c = pymysql.connect(**args, database="bench", autocommit=True)
cur = c.cursor()
t0 = time.time(); i = 0
while True:
    now = time.time()
    if now - t0 >= seconds: break
    due = int((now - t0) * rate)
    while i < due:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time())) + ".%06d" % (int(time.time() * 1e6) % 1000000)
        cur.execute("INSERT INTO orders VALUES (%s, 1, 'x@example.com', 'paid', 1.25, %s, 'n')", (start + i, ts))
        i += 1
    time.sleep(0.0005)
print(i)
"""


def latency(
    db_args: dict[str, Any], dsn: str, bootstrap: str, rate: int, seconds: float
) -> dict[str, Any]:
    name = "lat"
    cfg = MySqlSourceConfig(
        name=name, kind="mysql", dsn=dsn, tables=["bench.orders"], server_id=9700, snapshot="never"
    )
    producer = EventProducer(bootstrap)
    ctx = SourceContext(name, producer, EnvelopeEncoder(), Store(None))
    source = MySqlSource(cfg)
    th = threading.Thread(target=source.run, args=(ctx,), daemon=True)
    th.start()
    while source.binlog is None:
        time.sleep(0.01)
    topic = f"{name}.bench.orders"
    lat: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        # fetch.wait.max.ms: the broker may hold a fetch that long when no new data is there
        # (the embedded broker always does), which would dominate the measured latency.
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "lat",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        assigned = False
        while not stop.is_set():
            if not assigned:
                md = c.list_topics(topic, timeout=2).topics.get(topic)
                if md is None or not md.partitions or md.error is not None:
                    time.sleep(0.05)
                    continue
                c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
                assigned = True
            m = c.poll(0.05)  # consume(n, t) would wait for n messages: adds latency
            if m is not None:
                if m.error() or m.value() is None:
                    continue
                now_us = time.time() * 1e6
                after = json.loads(m.value())["payload"]["after"]
                lat.append((now_us - after["created_at"]) / 1000)
        c.close()

    ct = threading.Thread(target=consume, daemon=True)
    ct.start()
    start_id = 10_000_000
    out = subprocess.run(
        [sys.executable, "-c", WRITER, repr(db_args), str(rate), str(seconds), str(start_id)],
        capture_output=True,
        text=True,
        check=True,
    )
    written = int(out.stdout.strip())
    deadline = time.time() + 30
    while len(lat) < written and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    ct.join(5)
    ctx.stopping.set()
    th.join(10)
    producer.close()
    lat.sort()
    n = len(lat)
    return {
        "rate_rows_per_s": rate,
        "rows": written,
        "received": n,
        "achieved_rows_per_s": round(written / seconds),
        "p50_ms": round(lat[n // 2], 1) if n else None,
        "p99_ms": round(lat[int(n * 0.99)], 1) if n else None,
        "max_ms": round(lat[-1], 1) if n else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["throughput", "latency"], default=None)
    a = parser.parse_args()
    with start_mariadb() as db, start_kafka() as kafka:
        args = db.connect_kwargs()
        with contextlib.closing(pymysql.connect(**args, autocommit=True)) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
            cur.execute("USE bench")
            cur.execute(TABLE)
        dsn = db.dsn
        result: dict[str, Any] = {"bench": "mysql_to_kafka"}
        if a.only != "latency":
            result["multi_row_txns"] = throughput(args, dsn, kafka.bootstrap, a.rows, 100)
            _truncate(args)
            result["single_row_txns"] = throughput(args, dsn, kafka.bootstrap, a.rows // 4, 1)
            _truncate(args)
        if a.only != "throughput":
            result["latency"] = latency(args, dsn, kafka.bootstrap, a.rate, a.seconds)
    print(json.dumps(result))
    multi = result.get("multi_row_txns")
    single = result.get("single_row_txns")
    lat = result.get("latency")
    if multi and single:
        print(
            f"binlog->broker ack: {multi['rows_per_s_acked']:,} rows/s (100-row txns), "
            f"{single['rows_per_s_acked']:,} rows/s (1-row txns); decode only "
            f"{multi['decode_rows_per_s']:,} / {single['decode_rows_per_s']:,} rows/s vs "
            f"mysql-replication {multi['mysql_replication_rows_per_s']:,} / "
            f"{single['mysql_replication_rows_per_s']:,}"
        )
    if lat:
        print(
            f"latency at {lat['achieved_rows_per_s']:,} rows/s: p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms"
        )


def _truncate(args: dict[str, Any]) -> None:
    with contextlib.closing(pymysql.connect(**args, autocommit=True)) as c, c.cursor() as cur:
        cur.execute("TRUNCATE bench.orders")


if __name__ == "__main__":
    main()
