"""A bridge process for the MySQL crash test: one source, a JSON-file offset store.

Run: python -m tests.sources.mysql_crash_runner '<json: dsn, name, table, bootstrap, state>'
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.mysql.config import MySqlSourceConfig
from cdc_bridge.sources.mysql.source import MySqlSource
from tests.sources.mysql_support import MemoryOffsetStore


def main() -> None:
    conf = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    cfg = MySqlSourceConfig(
        name=conf["name"],
        kind="mysql",
        dsn=conf["dsn"],
        tables=[conf["table"]],
        server_id=conf["server_id"],
    )
    store = MemoryOffsetStore(Path(conf["state"]))
    producer = EventProducer(conf["bootstrap"])
    ctx = SourceContext(cfg.name, producer, EnvelopeEncoder(), store)
    source = MySqlSource(cfg)
    print("ready", flush=True)
    source.run(ctx)


if __name__ == "__main__":
    main()
