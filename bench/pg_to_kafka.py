"""Benchmark: Postgres -> Kafka through the postgres source, on this machine.

1. Throughput: N ~200-byte rows committed (1,000-row transactions) while the bridge is down,
   then the time until Kafka acknowledged every event after it starts: rows/s commit -> ack.
2. Latency: a steady writer (pgbench, --rate) commits RATE rows/s in 50-row transactions;
   for every row, broker acknowledgement time minus Postgres commit time: p50 / p99 / max.
3. Peak RSS of the bridge process (this process: the source runs in-process), after the
   streaming phases, and after
4. an ``initial_only`` snapshot of the whole table (rows/s until every row is acknowledged).

Prints one JSON line, then a human line. Services: private Postgres and tansu broker (or
CDC_TEST_POSTGRES_DSN / CDC_TEST_KAFKA_BOOTSTRAP).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.events import ChangeEvent
from cdc_bridge.kafka import EventProducer
from cdc_bridge.sources.base import Offset, SourceContext
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.sources.postgres.source import PostgresOffset, PostgresSource
from cdc_bridge.testing.services import postgres_bindir, start_kafka, start_postgres

DDL = """
CREATE TABLE IF NOT EXISTS bench (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL,
  status varchar(20) NOT NULL,
  amount numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  note text
)
"""
# ~200 bytes per row on disk: 8+4+~8+~8+8 + 150-char note + tuple header
INSERT_BATCH = (
    "INSERT INTO bench (customer_id, status, amount, note)"
    " SELECT g %% 1000, 'shipped', (g %% 100000) / 100.0, repeat('n', 150)"
    " FROM generate_series(1, %s) g"
)


class TimedContext(SourceContext):
    """Records, per emitted batch, its offset and the commit times of its rows, so the
    acknowledgement time of every row can be taken when the safe offset passes it."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.batches: list[tuple[int, list[int]]] = []
        self.carry: list[int] = []
        self.lock = threading.Lock()

    def emit(self, events: Sequence[ChangeEvent], offset: Offset | None = None) -> None:
        # a chunk without an offset (part of a transaction) is acknowledged with the next offset
        self.carry.extend(e.ts_us for e in events)
        if isinstance(offset, PostgresOffset) and self.carry:
            with self.lock:
                self.batches.append((offset.lsn, self.carry))
            self.carry = []
        super().emit(events, offset)


class CountingProducer(EventProducer):
    """Counts the value bytes it produces: the size of an event is part of its cost."""

    value_bytes = 0

    def send(self, records: Sequence[Any], offset: Any = None) -> None:
        self.value_bytes += sum(len(r[2]) for r in records if r[2] is not None)
        super().send(records, offset)


def run_source(
    cfg: PostgresSourceConfig, bootstrap: str
) -> tuple[PostgresSource, TimedContext, threading.Thread]:
    producer = CountingProducer(bootstrap)
    ctx = TimedContext(cfg.name, producer, EnvelopeEncoder(schemas=cfg.schemas))
    src = PostgresSource(cfg)

    def target() -> None:
        try:
            src.run(ctx)
        finally:
            src.close()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return src, ctx, t


def stop(ctx: SourceContext, t: threading.Thread) -> None:
    ctx.stopping.set()
    t.join(30)
    ctx.producer.close(30)


def wait_streaming(src: PostgresSource, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (src.repl is not None and src.repl.streaming):
        if time.monotonic() > deadline:
            raise RuntimeError("source did not start streaming")
        time.sleep(0.01)


def current_lsn(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
        assert row is not None
        return int(row[0])


def throughput(dsn: str, bootstrap: str, rows: int, schemas: bool) -> dict[str, Any]:
    name = f"bt{os.getpid()}{int(schemas)}"
    cfg = PostgresSourceConfig.model_validate(
        {"name": name, "kind": "postgres", "dsn": dsn, "tables": ["public.bench"],
         "snapshot": "never", "schemas": schemas}
    )  # fmt: skip
    src, ctx, t = run_source(cfg, bootstrap)  # creates slot and publication
    wait_streaming(src)
    stop(ctx, t)
    with psycopg.connect(dsn, autocommit=True) as c:
        for _ in range(rows // 1000):
            c.execute(INSERT_BATCH, (1000,))
    src, ctx, t = run_source(cfg, bootstrap)
    start = time.monotonic()
    cpu_start = time.process_time()
    total = 0
    idx = 0
    while total < rows:
        time.sleep(0.005)
        safe = ctx.safe_offset()
        if safe is None:
            continue
        with ctx.lock:
            while idx < len(ctx.batches) and ctx.batches[idx][0] <= safe.lsn:
                total += len(ctx.batches[idx][1])
                idx += 1
        if time.monotonic() - start > float(os.environ.get("BENCH_TIMEOUT", 600)):
            raise RuntimeError(f"only {total} of {rows} rows acknowledged after 600s")
    elapsed = time.monotonic() - start
    # CPU seconds of this process (source, encoder and librdkafka threads) per 100k rows:
    # steadier than rows/s when other work shares the cores.
    cpu = time.process_time() - cpu_start
    assert isinstance(ctx.producer, CountingProducer)
    value_bytes = ctx.producer.value_bytes
    stop(ctx, t)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pg_drop_replication_slot(%s)", (cfg.slot,))
    return {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed),
            "cpu_s_per_100k": round(cpu * 100_000 / rows, 3),
            "bytes_per_event": round(value_bytes / max(1, ctx.producer.sent))}  # fmt: skip


def snapshot(dsn: str, bootstrap: str) -> dict[str, Any]:
    """initial_only snapshot of the whole bench table, until Kafka acknowledged every row."""
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT count(*) FROM bench").fetchone()
        assert row is not None
        rows = int(row[0])
    cfg = PostgresSourceConfig.model_validate(
        {"name": f"bs{os.getpid()}", "kind": "postgres", "dsn": dsn, "tables": ["public.bench"],
         "snapshot": "initial_only"}
    )  # fmt: skip
    start = time.monotonic()
    _src, ctx, t = run_source(cfg, bootstrap)
    t.join()
    ctx.producer.close(120)
    elapsed = time.monotonic() - start
    return {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed)}


def latency(dsn: str, bootstrap: str, rate: int, seconds: int) -> dict[str, Any]:
    name = f"bl{os.getpid()}"
    cfg = PostgresSourceConfig.model_validate(
        {
            "name": name,
            "kind": "postgres",
            "dsn": dsn,
            "tables": ["public.bench"],
            "snapshot": "never",
        }
    )
    src, ctx, t = run_source(cfg, bootstrap)
    wait_streaming(src)
    lat_us: list[int] = []
    done = threading.Event()

    def poll_acks() -> None:
        idx = 0
        while not done.is_set() or idx < len(ctx.batches):
            safe = ctx.safe_offset()
            now = time.time_ns() // 1000
            with ctx.lock:
                while (
                    idx < len(ctx.batches)
                    and safe is not None
                    and 0 <= ctx.batches[idx][0] <= safe.lsn
                ):
                    lat_us.extend(now - ts for ts in ctx.batches[idx][1])
                    idx += 1
            if done.is_set() and idx < len(ctx.batches) and safe is None:
                break
            time.sleep(0.0005)

    poller = threading.Thread(target=poll_acks, daemon=True)
    poller.start()
    per_tx = 50
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(INSERT_BATCH.replace("%%", "%").replace("%s", str(per_tx)) + ";\n")
        script = f.name
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    env = {**os.environ, "PGHOST": str(info.get("host", "127.0.0.1")),
           "PGPORT": str(info.get("port", 5432)), "PGUSER": str(info.get("user", "postgres")),
           "PGDATABASE": str(info.get("dbname", "postgres"))}  # fmt: skip
    subprocess.run(
        [str(postgres_bindir() / "pgbench"), "-n", "-f", script, "-R", str(rate // per_tx),
         "-T", str(seconds), "-c", "2", "-j", "1"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    os.unlink(script)
    time.sleep(1.0)
    done.set()
    poller.join(10)
    stop(ctx, t)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pg_drop_replication_slot(%s)", (cfg.slot,))
    lat = sorted(lat_us)
    if not lat:
        raise RuntimeError("no latency samples")

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] / 1000, 2)

    return {"rate_rows_per_s": rate, "samples": len(lat), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": round(lat[-1] / 1000, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--rate", type=int, default=5_000)
    ap.add_argument("--seconds", type=int, default=15)
    args = ap.parse_args()
    with start_postgres() as pg, start_kafka() as kafka:
        dsn = pg.dsn
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(DDL)
        tp = throughput(dsn, kafka.bootstrap, args.rows, schemas=True)
        tp_noschema = throughput(dsn, kafka.bootstrap, args.rows, schemas=False)
        lat = latency(dsn, kafka.bootstrap, args.rate, args.seconds)
        rss_streaming_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        snap = snapshot(dsn, kafka.bootstrap)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "bench": "pg_to_kafka",
        "cpus": os.cpu_count(),
        "throughput": tp,
        "throughput_schemas_off": tp_noschema,
        "snapshot": snap,
        "latency": lat,
        "peak_rss_mb_streaming": round(rss_streaming_mb, 1),
        "peak_rss_mb": round(rss_mb, 1),
    }
    print(json.dumps(result))
    print(
        f"pg_to_kafka: {tp['rows_per_s']:,} rows/s commit->ack ({tp_noschema['rows_per_s']:,} "
        f"without schemas; {tp['cpu_s_per_100k']} / {tp_noschema['cpu_s_per_100k']} CPU s per "
        f"100k rows, {tp['bytes_per_event']:,} / {tp_noschema['bytes_per_event']:,} bytes per "
        f"event), latency at {lat['rate_rows_per_s']:,} rows/s: p50 {lat['p50_ms']} ms, "
        f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; snapshot {snap['rows_per_s']:,} rows/s; "
        f"peak RSS {rss_streaming_mb:.0f} MB streaming, {rss_mb:.0f} MB with the snapshot"
    )


if __name__ == "__main__":
    main()
