"""Crash test: 20,000 Salesforce changes while the bridge is SIGKILLed three times; none missing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cdc_bridge.testing.salesforce import SalesforceEmulator
from tests.sources.mysql_support import consume
from tests.sources.salesforce.sf_harness import source_config

CHANGES = 20_000
PER_TX = 50


def _start(conf: dict[str, Any], root: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(root))
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.sources.salesforce.sf_runner", json.dumps(conf)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


@pytest.mark.slow
def test_sigkill_three_times_during_20000_changes_loses_nothing(
    kafka: Any, topic_name: Any, tmp_path: Path
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        name = topic_name("sfcrash")
        cfg = source_config(emu, name=name, snapshot="never")
        root = Path(__file__).resolve().parents[3]
        conf = {
            "source": json.loads(cfg.model_dump_json(exclude_none=True, by_alias=True) or "{}")
            | {
                "client_secret": emu.auth_config.client_secret,
                "password": emu.auth_config.password,
                "security_token": emu.auth_config.security_token,
            },
            "bootstrap": kafka.bootstrap,
            "state": str(tmp_path / "state.json"),
        }
        obj = emu.store.schema("Account")
        assert obj is not None
        started = threading.Event()
        done = threading.Event()

        def writer() -> None:
            started.wait(30)
            for t in range(CHANGES // PER_TX):
                with emu.ui_transaction() as tx:
                    for i in range(PER_TX):
                        n = t * PER_TX + i
                        emu.store.insert(tx, obj, {"Name": f"row {n}"})
                time.sleep(0.012)  # spread the changes over the kills (~6 s)
            done.set()

        log = tmp_path / "bridge.log"
        proc = _start(conf, root, log)
        w = threading.Thread(target=writer)
        w.start()
        kills = 0
        try:
            # the first run subscribes at LATEST and stores its first position: start writing
            # once it is streaming (a position exists), so nothing precedes the subscription
            deadline = time.monotonic() + 30
            while not (tmp_path / "state.json").exists():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            time.sleep(0.7)
            started.set()
            while kills < 3:
                time.sleep(1.5)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = _start(conf, root, log)
            assert not done.is_set(), "the writer finished before the last kill"
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
        finally:
            started.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
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
