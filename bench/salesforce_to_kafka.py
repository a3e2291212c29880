"""Benchmark: Salesforce change events (emulator, Pub/Sub API over gRPC+TLS) -> source -> Kafka.

Commits N record updates in the emulator (transactions of 200, every record its own values,
so every update is its own change event), then starts the Salesforce source on that backlog
(stored replay id before the first event) and measures until Kafka acknowledged the last
event (the source's safe position reached the last replay id). Runs mode ``full`` (records
read back through sObject Collections retrieve) and mode ``changed_fields`` (no API calls).
Reports change events/s and REST API calls per 10,000 changes, from the emulator's call log.

    .venv/bin/python bench/salesforce_to_kafka.py --changes 20000
    .venv/bin/python bench/salesforce_to_kafka.py --latency 0.15   # REST calls 150 ms slower

The emulator runs in this process, so events/s includes its own cost (Avro encoding, gRPC
serving) on the same cores; against a real org, Salesforce's delivery and call latency
dominate and the call counts are what matter.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from typing import Any

from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer, TopicSettings
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig
from cdc_bridge.sources.salesforce.source import SalesforceSource
from cdc_bridge.testing.salesforce import FaultConfig, SalesforceEmulator
from cdc_bridge.testing.services import start_kafka

CHANNEL = "/data/AccountChangeEvent"


class _Store:
    def __init__(self, offset: dict[str, Any]) -> None:
        self.offset = offset

    def load_offset(self, source: str) -> dict[str, Any] | None:
        return self.offset

    def save_offset(self, source: str, offset: dict[str, Any]) -> None:
        self.offset = offset


def run(bootstrap: str, changes: int, mode: str, latency: float) -> dict[str, Any]:
    with SalesforceEmulator(bulk_delay=0.02) as emu:
        obj = emu.store.schema("Account")
        assert obj is not None
        with emu.without_change_events(), emu.ui_transaction() as tx:
            ids = [emu.store.insert(tx, obj, {"Name": f"B{i}"}) for i in range(changes)]
        first = emu.bus.latest_replay
        for start in range(0, changes, 200):
            with emu.ui_transaction() as tx:
                for n, rid in enumerate(ids[start : start + 200]):
                    emu.store.update(tx, obj, rid, {"Phone": f"+1 {start + n}"})
        last = emu.bus.latest_replay
        assert last - first == changes, (first, last)
        if latency:
            emu.set_faults(FaultConfig(latency=latency))
        c = emu.auth_config
        cfg = SalesforceSourceConfig.model_validate(
            {
                "name": f"bench_{mode}",
                "kind": "salesforce",
                "auth": "password",
                "login_url": emu.url,
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "username": c.username,
                "password": c.password,
                "security_token": c.security_token,
                "ca_bundle": emu.ca_file,
                "pubsub_endpoint": emu.pubsub_endpoint,
                "objects": ["Account"],
                "snapshot": "never",
                "mode": mode,
            }
        )
        producer = EventProducer(bootstrap, {"linger.ms": 5}, topics=TopicSettings(partitions=3))
        store = _Store({"replay": {CHANNEL: first.to_bytes(8, "big").hex()}, "commit_ms": {}})
        ctx = SourceContext(cfg.name, producer, EnvelopeEncoder(), store)
        source = SalesforceSource(cfg)
        emu.reset_counters()
        t = threading.Thread(target=source.run, args=(ctx,), daemon=True)
        started = time.perf_counter()
        t.start()
        target = last.to_bytes(8, "big").hex()
        while True:
            safe = ctx.safe_offset()
            if safe is not None and getattr(safe, "replay", {}).get(CHANNEL) == target:
                break
            if not t.is_alive():
                raise RuntimeError("the source stopped early")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        ctx.stopping.set()
        t.join(15)
        source.close()
        producer.close(10)
        calls = [x for x in emu.call_log if x.kind != "auth"]
        retrieves = sum(
            1
            for x in calls
            if x.method == "POST" and x.path.endswith("/composite/sobjects/Account")
        )
        return {
            "mode": mode,
            "changes": changes,
            "seconds": round(elapsed, 3),
            "events_per_s": round(changes / elapsed),
            "api_calls_per_10k": round(len(calls) * 10_000 / changes, 1),
            "retrieve_calls_per_10k": round(retrieves * 10_000 / changes, 1),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=20_000, help="change events per run")
    ap.add_argument("--latency", type=float, default=0.0, help="extra seconds per REST call")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    kafka = start_kafka()
    try:
        results = [
            run(kafka.bootstrap, args.changes, mode, args.latency)
            for mode in ("full", "changed_fields")
        ]
    finally:
        kafka.stop()
    print(
        json.dumps({"bench": "salesforce_to_kafka", "latency_s": args.latency, "results": results})
    )
    for r in results:
        print(
            f"salesforce -> kafka ({r['mode']}): {r['changes']} change events in {r['seconds']}s = "
            f"{r['events_per_s']:,} events/s; REST calls per 10k changes: {r['api_calls_per_10k']} "
            f"(retrieve: {r['retrieve_calls_per_10k']})"
        )


if __name__ == "__main__":
    main()
