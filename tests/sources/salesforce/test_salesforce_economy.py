"""API economy of mode full, from the emulator's call log: at most 10 sObject Collections
retrieve calls per 10,000 updated records."""

from __future__ import annotations

import time
from typing import Any

from cdc_bridge.testing.salesforce import SalesforceEmulator
from tests.sources.mysql_support import consume
from tests.sources.salesforce.sf_harness import RunningSource, source_config

RECORDS = 10_000


def test_full_mode_reads_10000_updated_records_in_at_most_10_calls(
    kafka: Any, topic_name: Any
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        obj = emu.store.schema("Account")
        assert obj is not None
        with emu.without_change_events(), emu.ui_transaction() as tx:
            ids = [emu.store.insert(tx, obj, {"Name": f"E{i}"}) for i in range(RECORDS)]
        name = topic_name("sfeco")
        src = RunningSource(source_config(emu, name=name), kafka.bootstrap)
        try:
            deadline = time.monotonic() + 20
            while not (emu.pubsub and "Subscribe" in emu.pubsub.calls):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)
            emu.reset_counters()
            for start in range(0, RECORDS, 500):  # 20 transactions of 500 updates
                with emu.ui_transaction() as tx:
                    for n, rid in enumerate(ids[start : start + 500]):
                        emu.store.update(tx, obj, rid, {"Phone": f"+1 {start + n}"})
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
