"""Crash test: 20,000 Salesforce changes while the bridge is SIGKILLed three times; none missing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cdc_bridge.testing.salesforce import SalesforceEmulator
from cdc_bridge.testing.sources import SourceProcess
from tests.sources.mysql_support import consume
from tests.sources.salesforce.sf_harness import source_settings

CHANGES = 20_000
PER_TX = 50


@pytest.mark.slow
def test_sigkill_three_times_during_20000_changes_loses_nothing(
    kafka: Any, topic_name: Any, tmp_path: Path
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        name = topic_name("sfcrash")
        conf = source_settings(emu, name=name, snapshot="never", schemas=False)
        obj = emu.store.schema("Account")
        assert obj is not None
        started = threading.Event()
        written = [0]

        def writer() -> None:
            started.wait(30)
            for t in range(CHANGES // PER_TX):
                with emu.ui_transaction() as tx:
                    for i in range(PER_TX):
                        n = t * PER_TX + i
                        emu.store.insert(tx, obj, {"Name": f"row {n}"})
                written[0] += PER_TX
                time.sleep(0.012)

        proc = SourceProcess(tmp_path, conf, kafka.bootstrap).start()
        w = threading.Thread(target=writer)
        w.start()
        kills = 0
        try:
            # the first run subscribes at LATEST and stores its first position: start writing
            # once it is streaming (a position exists), so nothing precedes the subscription
            deadline = time.monotonic() + 30
            while proc.stored() is None:
                assert time.monotonic() < deadline, proc.log_tail()
                time.sleep(0.05)
            time.sleep(0.7)
            started.set()
            while kills < 3:  # killed at a quarter, half and three quarters of the writes
                while written[0] < CHANGES * (kills + 1) // 4:
                    assert w.is_alive(), "the writer stopped"
                    time.sleep(0.01)
                proc.kill()
                kills += 1
                proc.start()
            w.join()
            seen: dict[str, int] = {}
            consumed = [0]

            def complete(recs: list[Any]) -> bool:
                for _k, v in recs[consumed[0] :]:
                    if v is not None and v["after"]:
                        seen[v["after"]["Name"]] = seen.get(v["after"]["Name"], 0) + 1
                consumed[0] = len(recs)
                return len(seen) >= CHANGES

            consume(kafka.bootstrap, f"{name}.Account", complete, timeout=120)
        except AssertionError:
            raise AssertionError(f"source log tail:\n{proc.log_tail()}") from None
        finally:
            started.set()
            proc.stop()
            w.join(60)
    expected = {f"row {n}" for n in range(CHANGES)}
    missing = len(expected - set(seen))
    duplicates = sum(seen.values()) - len(seen)
    print(
        f"\nsalesforce crash test: {CHANGES} changes, {kills} SIGKILLs, missing={missing}, "
        f"duplicates={duplicates}"
    )
    assert missing == 0
    assert set(seen) == expected
