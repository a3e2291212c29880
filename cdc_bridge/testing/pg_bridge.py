"""Run one Postgres source as its own process (crash tests, benchmarks): a JSON-file offset
store, periodic checkpoints, stop on SIGTERM. ``python -m cdc_bridge.testing.pg_bridge CONF``."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.postgres.config import PostgresSourceConfig
from cdc_bridge.sources.postgres.source import PostgresSource

__all__ = ["FileOffsetStore", "main"]


class FileOffsetStore:
    """Offsets in a JSON file, replaced atomically (fsync + rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load_offset(self, source: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return data.get(source)

    def save_offset(self, source: str, offset: dict[str, Any]) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        data[source] = offset
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def main(argv: list[str]) -> int:
    """argv[0]: JSON file with ``bootstrap``, ``state`` (offset file), ``source`` (config dict)
    and optional ``producer`` (librdkafka overrides)."""
    conf = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(
        level=conf.get("log_level", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    cfg = PostgresSourceConfig.model_validate(conf["source"])
    producer = EventProducer(conf["bootstrap"], conf.get("producer", {}))
    encoder = EnvelopeEncoder(schemas=cfg.schemas, tombstones=cfg.tombstones)
    ctx = SourceContext(cfg.name, producer, encoder, FileOffsetStore(Path(conf["state"])))
    signal.signal(signal.SIGTERM, lambda *_: ctx.stopping.set())
    done = threading.Event()

    def checkpoints() -> None:
        while not done.wait(0.1):
            ctx.checkpoint()

    t = threading.Thread(target=checkpoints, daemon=True)
    t.start()
    source = PostgresSource(cfg)
    try:
        source.run(ctx)
    finally:
        source.close()
        producer.close(10)
        done.set()
        t.join()
        ctx.checkpoint()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
