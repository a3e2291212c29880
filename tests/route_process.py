"""Runs the route workers of a JSON-described bridge in this process until SIGTERM/SIGKILL.

Used by tests that need separate processes (rebalances, crashes) before the CLI runtime
exists: ``python -m tests.route_process '<json>'`` with the arguments of
``tests.routes_support.config``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from tests.routes_support import config, run_routes


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
    args = json.loads(sys.argv[1])
    cfg = config(
        args["bootstrap"],
        args["url"],
        args["routes"],
        bridge=args.get("bridge", "test"),
        consumer=args.get("consumer"),
    )
    running = run_routes(cfg)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("started", flush=True)
    while not done.wait(0.2):
        if running.errors:
            break
    running.close()


if __name__ == "__main__":
    main()
