"""Benchmark: how long the embedded test servers take to start and stop (fixture overhead).

just bench-service-startup      # or: .venv/bin/python bench/service_startup.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from cdc_bridge.testing.services import (
    KafkaService,
    MariaDBService,
    PostgresService,
    start_kafka,
    start_mariadb,
    start_postgres,
)


def _measure(
    start: Callable[[], KafkaService | PostgresService | MariaDBService], rounds: int
) -> dict[str, float]:
    starts, stops = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        service = start()
        t1 = time.perf_counter()
        service.stop()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return {
        "start_s_median": round(statistics.median(starts), 3),
        "start_s_max": round(max(starts), 3),
        "stop_s_median": round(statistics.median(stops), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {
        "kafka": _measure(start_kafka, args.rounds),
        "postgres": _measure(start_postgres, args.rounds),
        "mariadb": _measure(start_mariadb, args.rounds),
    }
    print(json.dumps({"bench": "service_startup", "rounds": args.rounds, **results}))
    print(
        "service startup (median): "
        + ", ".join(f"{name} {r['start_s_median']:.2f}s" for name, r in results.items())
    )


if __name__ == "__main__":
    main()
