"""The source conformance suite: the same delivery guarantees checked for every registered
source kind, through the coordinator (``cdc_bridge/sources/coordinator.py``).

- snapshot -> stream hand-off while a writer keeps changing the table: every row arrives and
  the last event of every row carries its final value;
- SIGKILL three times while a writer inserts: no committed row is missing;
- a restart right after a crash (killed mid-snapshot, then again before it connected);
- a lost position under each ``on_position_lost`` policy: ``fail`` names what was lost,
  ``resnapshot`` re-reads the table (including what changed while it was stopped);
- an incremental snapshot (``request_snapshot``, what ``cdc-bridge snapshot`` does) of a
  streamed table while a writer updates and deletes random rows: the rows rebuilt from the
  topic equal the table and no row goes back to an older version (``v`` only grows).

MongoDB runs where a replica set is reachable (skipped with the reason otherwise); Salesforce
runs against the emulator (cdc_bridge/testing/salesforce) and takes no incremental snapshots.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cdc_bridge.sources.coordinator import PositionLost
from cdc_bridge.testing.sources import (
    OffsetStoreDouble,
    SourceProcess,
    SourceThread,
    build_source,
)
from tests.sources.conformance.conftest import Driver, TopicTail


def _ids(records: list[tuple[int, int | None, str, str]]) -> set[int]:
    return {r[0] for r in records}


def test_snapshot_hands_off_to_the_stream_under_a_concurrent_writer(
    driver: Driver, tail: TopicTail, kafka: Any
) -> None:
    driver.insert(range(1, 2001))
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        i = 2001
        rng = random.Random(7)
        while not stop.is_set() and i <= 3000:
            driver.insert(range(i, i + 10))
            driver.update(rng.randrange(1, i), i)  # rows the snapshot may already have read
            written.append(i)
            i += 10
            time.sleep(0.005)

    w = threading.Thread(target=writer)
    w.start()
    with SourceThread(driver.config(), kafka.bootstrap) as running:
        time.sleep(0.3)
        w.join(60)
        stop.set()
        running.wait_streaming()
        driver.insert(range(5000, 5001), v=5)  # after the hand-off: streamed
        want = driver.rows()
        recs = tail.until(lambda r: set(want) <= _ids(r) and tail.latest() == want, 60)
        assert running.error is None
    marks = [snap for _i, _v, op, snap in recs if op == "r"]
    assert marks[0] == "first" and "last" in marks
    assert any(op == "c" for _i, _v, op, _s in recs)
    assert tail.latest() == want  # every row's last event has its final value


def test_sigkill_three_times_loses_nothing(
    driver: Driver, tail: TopicTail, kafka: Any, tmp_path: Path
) -> None:
    driver.insert(range(1, 501))
    total = 6000
    done = threading.Event()

    def writer() -> None:
        for start in range(501, total + 1, 10):
            driver.insert(range(start, start + 10))
            time.sleep(0.004)
        done.set()

    proc = SourceProcess(tmp_path, driver.config(), kafka.bootstrap).start()
    w = threading.Thread(target=writer)
    w.start()
    rng = random.Random()
    try:
        for _ in range(3):
            time.sleep(rng.uniform(0.7, 1.6))
            proc.kill()
            proc.start()
        w.join(120)
        assert done.is_set()
        tail.until(lambda r: _ids(r) >= set(range(1, total + 1)), 90)
    except AssertionError:
        raise AssertionError(f"source log tail:\n{proc.log_tail()}") from None
    finally:
        proc.stop()
    missing = set(range(1, total + 1)) - _ids(tail.records)
    assert not missing


def test_restart_right_after_a_crash(
    driver: Driver, tail: TopicTail, kafka: Any, tmp_path: Path
) -> None:
    driver.insert(range(1, 3001))
    # small chunks: the snapshot is still running when the first checkpoint lands
    proc = SourceProcess(tmp_path, driver.config(snapshot_batch_size=50), kafka.bootstrap)
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while proc.stored() is None:  # killed right after its first checkpoint
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.01)
        proc.kill()
        proc.start()
        time.sleep(0.05)  # and again before it even connected
        proc.kill()
        proc.start()
        tail.until(lambda r: _ids(r) >= set(range(1, 3001)), 60)
        driver.insert(range(3001, 3002))  # and it streams afterwards
        tail.until(lambda r: 3001 in _ids(r), 60)
    except AssertionError:
        raise AssertionError(f"source log tail:\n{proc.log_tail()}") from None
    finally:
        code = proc.stop()
    assert code == 0, proc.log_tail()


@pytest.mark.parametrize("policy", ["fail", "resnapshot"])
def test_lost_position_under_each_policy(
    driver: Driver, tail: TopicTail, kafka: Any, policy: str
) -> None:
    if driver.no_lost_position:
        pytest.skip(driver.no_lost_position)
    store = OffsetStoreDouble()
    driver.insert(range(1, 101))
    with SourceThread(driver.config(), kafka.bootstrap, store) as first:
        first.wait_streaming()
        driver.insert(range(101, 111))
        tail.until(lambda r: _ids(r) >= set(range(1, 111)))
    assert store.offsets[driver.name].get("snapshot") is None
    driver.insert(range(111, 121))  # while the source is stopped
    what = driver.lose_position()
    running = SourceThread(driver.config(on_position_lost=policy), kafka.bootstrap, store).start()
    try:
        if policy == "fail":
            running.thread.join(60)
            assert isinstance(running.error, PositionLost), running.error
            text = str(running.error)
            assert "position lost" in text and what in text and "on_position_lost" in text
            return
        running.wait_streaming()
        driver.insert(range(121, 122))
        recs = tail.until(lambda r: 121 in _ids(r) and _ids(r) >= set(range(1, 122)))
        reread = {i for i, _v, op, _s in recs if op == "r"}
        assert reread >= set(range(1, 121))  # the new snapshot has the rows of the gap
        assert running.error is None
    finally:
        running.stop()


def _went_back(records: list[tuple[int, int | None, str, str]]) -> list[str]:
    """Events that take a row back: an older ``v``, or any event after the row's delete."""
    newest: dict[int, int] = {}
    gone: set[int] = set()
    out: list[str] = []
    for i, v, op, snap in records:
        if v is None:
            gone.add(i)
        elif i in gone:
            out.append(f"row {i}: {op} (snapshot={snap}) v{v} after its delete")
        elif v < newest.get(i, -1):
            out.append(f"row {i}: v{newest[i]} then v{v} ({op}, snapshot={snap})")
        else:
            newest[i] = v
    return out


def test_incremental_snapshot_under_concurrent_writes(
    driver: Driver, tail: TopicTail, kafka: Any
) -> None:
    if driver.no_incremental_snapshot:
        pytest.skip(driver.no_incremental_snapshot)
    rows = 3000
    driver.insert(range(1, rows + 1))
    config = driver.config(snapshot="never", **driver.incremental_config(chunk_size=200))
    stop = threading.Event()

    def writer() -> None:  # v is the row's version: it only grows; a deleted row stays gone
        rng = random.Random(3)
        version = dict.fromkeys(range(1, rows + 1), 0)
        n = 0
        while not stop.is_set():
            i = rng.randrange(1, rows + 1)
            if i not in version:
                continue
            if rng.random() < 0.1:
                driver.delete(i)
                del version[i]
            else:
                version[i] += 1
                driver.update(i, version[i])
            n += 1
            if n % 20 == 0:
                time.sleep(0.01)

    def reads(records: list[tuple[int, int | None, str, str]]) -> int:
        return sum(1 for _i, _v, op, snap in records if op == "r" and snap == "incremental")

    def rebuilt() -> dict[int, int]:
        return {i: v for i, v in tail.latest().items() if v is not None}

    w = threading.Thread(target=writer)
    with SourceThread(config, kafka.bootstrap) as running:
        running.wait_streaming()
        w.start()
        try:
            tail.until(lambda r: any(op == "u" for _i, _v, op, _s in r))  # streaming
            requester = build_source(config)  # what `cdc-bridge snapshot` does
            try:
                requester.request_snapshot([driver.table], None)
            finally:
                requester.close()
            tail.until(lambda r: reads(r) >= rows // 2, 90)  # the writer goes on meanwhile
        finally:
            stop.set()
            w.join(30)
        want = driver.rows()
        tail.until(lambda r: rebuilt() == want, 90)
        assert running.error is None
    assert not _went_back(tail.records), _went_back(tail.records)[:10]
    assert rebuilt() == want
    assert 0 < reads(tail.records) <= rows
    assert {op for _i, _v, op, _s in tail.records} >= {"u", "d", "r"}
