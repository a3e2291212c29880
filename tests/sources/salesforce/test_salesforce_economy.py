"""API economy of mode full, from the emulator's call log: at most 10 sObject Collections
retrieve calls per 10,000 updated records.

The updates wait as a backlog (the source resumes after the replay id before them), so the
batches do not depend on how fast this machine writes: each batch gathers up to 2,000 events
within ``max_wait_ms``."""

from __future__ import annotations

from typing import Any

from cdc_bridge.testing.salesforce import SalesforceEmulator
from cdc_bridge.testing.sources import OffsetStoreDouble, SourceThread
from tests.sources.mysql_support import consume
from tests.sources.salesforce.sf_harness import source_config

RECORDS = 10_000


def test_full_mode_reads_10000_updated_records_in_at_most_10_calls(
    kafka: Any, topic_name: Any
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        obj = emu.store.schema("Account")
        assert obj is not None
        with emu.without_change_events(), emu.ui_transaction() as tx:
            ids = [emu.store.insert(tx, obj, {"Name": f"E{i}"}) for i in range(RECORDS)]
        first = emu.bus.latest_replay
        for start in range(0, RECORDS, 500):  # 20 transactions of 500 updates
            with emu.ui_transaction() as tx:
                for n, rid in enumerate(ids[start : start + 500]):
                    emu.store.update(tx, obj, rid, {"Phone": f"+1 {start + n}"})
        name = topic_name("sfeco")
        store = OffsetStoreDouble()
        store.offsets[name] = {
            "replay": {"/data/AccountChangeEvent": first.to_bytes(8, "big").hex()}
        }
        emu.reset_counters()
        src = SourceThread(
            source_config(emu, name=name, max_wait_ms=1000), kafka.bootstrap, store
        ).start()
        try:
            seen: set[str] = set()

            def complete(recs: list[Any]) -> bool:
                for _k, v in recs:
                    if v is not None:
                        seen.add(v["payload"]["after"]["Id"])
                return len(seen) >= RECORDS

            recs = consume(kafka.bootstrap, f"{name}.Account", complete, timeout=120)
            assert all(v["payload"]["after"]["Phone"] for _k, v in recs if v is not None)
            retrieves = [
                c
                for c in emu.call_log
                if c.method == "POST" and c.path.endswith("/composite/sobjects/Account")
            ]
            print(
                f"\nsalesforce API economy: {len(retrieves)} retrieve calls for {RECORDS} updates"
            )
            assert 5 <= len(retrieves) <= 10  # 2,000 ids per call at most
            assert src.error is None
        finally:
            src.stop()
