"""A bridge process for the Salesforce crash test: one source, a JSON-file offset store.

Run: python -m tests.sources.salesforce.sf_runner '<json: source (config dict), bootstrap, state>'
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig
from cdc_bridge.sources.salesforce.source import SalesforceSource
from cdc_bridge.testing.sources import OffsetStoreDouble


def main() -> None:
    conf = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    cfg = SalesforceSourceConfig.model_validate(conf["source"])
    store = OffsetStoreDouble(Path(conf["state"]))
    producer = EventProducer(conf["bootstrap"])
    ctx = SourceContext(cfg.name, producer, EnvelopeEncoder(schemas=False), store)
    source = SalesforceSource(cfg)
    print("ready", flush=True)
    source.run(ctx)


if __name__ == "__main__":
    main()
