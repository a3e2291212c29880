"""Snapshot hand-off, replay ids out of retention, gap and overflow events (Salesforce source)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cdc_bridge.sources.salesforce.source import ReplayLost
from cdc_bridge.testing.salesforce import SalesforceEmulator
from cdc_bridge.testing.sources import OffsetStoreDouble, SourceThread
from tests.sources.salesforce.sf_harness import (
    TopicReader,
    Writer,
    events,
    source_config,
)


def _final(recs: list[tuple[Any, Any]]) -> dict[str, dict[str, Any] | None]:
    """Id -> last after (None when the last event deleted it)."""
    out: dict[str, dict[str, Any] | None] = {}
    for key, value in recs:
        if value is None:
            continue
        out[key["Id"]] = value["after"]
    return out


def _wait_subscribed(emu: SalesforceEmulator, n: int = 1) -> None:
    deadline = time.monotonic() + 20
    while (emu.pubsub.calls.count("Subscribe") if emu.pubsub else 0) < n:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)


def test_snapshot_then_stream_misses_nothing_changed_during_it(
    kafka: Any, topic_name: Callable[..., str]
) -> None:
    with SalesforceEmulator(bulk_delay=1.0, pubsub_keepalive_s=0.5) as emu:
        api = Writer(emu)
        ids = api.create_many("Account", [{"Name": f"S{i}", "Phone": str(i)} for i in range(250)])
        name = topic_name("sfsnap")
        cfg = source_config(emu, name=name, snapshot="initial", snapshot_page_size=100)
        src = SourceThread(cfg, kafka.bootstrap).start()
        reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        try:
            _wait_subscribed(emu)
            # while the Bulk query job runs: an update, a create and a delete
            api.update("Account", ids[0], {"Phone": "changed during the snapshot"})
            new_id = api.create("Account", {"Name": "created during the snapshot"})
            api.delete("Account", ids[1])
            expected = {r["Id"]: r for r in emu.records("Account")}

            def converged(recs: list[tuple[Any, Any]]) -> bool:
                final = _final(recs)
                live = {k: v for k, v in final.items() if v is not None}
                return set(live) == set(expected) and all(
                    live[k]["Phone"] == expected[k]["Phone"] for k in live
                )

            assert reader.until(converged, 60), (src.error, len(reader.records))
            vals = events(reader.records)
            reads = [v for v in vals if v["op"] == "r"]
            assert len(reads) >= 249  # the snapshot (the delete may land before the job)
            assert reads[0]["source"]["snapshot"] == "first"
            assert reads[-1]["source"]["snapshot"] == "last"
            assert all(v["source"]["snapshot"] == "false" for v in vals[len(reads) :])
            assert new_id in _final(reader.records) and _final(reader.records)[ids[1]] is None
            assert src.error is None
        finally:
            src.stop()
            reader.close()
            api.close()


def _run_until(src: SourceThread, reader: TopicReader, n: int) -> None:
    assert reader.until(lambda r: len(events(r)) >= n, 30), (src.error, len(reader.records))


def test_replay_id_out_of_retention_fails_or_resnapshots(
    kafka: Any, topic_name: Callable[..., str], tmp_path: Path
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        api = Writer(emu)
        name = topic_name("sfret")
        store = OffsetStoreDouble(tmp_path / "offsets.json")
        cfg = source_config(emu, name=name)
        reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        src = SourceThread(cfg, kafka.bootstrap, store).start()
        _wait_subscribed(emu)
        api.create("Account", {"Name": "one"})
        _run_until(src, reader, 1)
        src.stop()
        stored = store.load_offset(name)
        assert stored and stored["replay"]["/data/AccountChangeEvent"]
        # while the bridge is down: more changes, then retention drops them all
        api.create("Account", {"Name": "two"})
        emu.bus.expire()
        src = SourceThread(cfg, kafka.bootstrap, store).start()
        src.thread.join(30)
        assert isinstance(src.error, ReplayLost), src.error
        message = str(src.error)
        assert "outside the Pub/Sub API's retention window" in message
        assert 'on_position_lost = "resnapshot"' in message and "72 hours" in message
        src.stop()
        # resnapshot: every record again as op r, then streaming goes on
        cfg2 = source_config(emu, name=name, on_position_lost="resnapshot", snapshot="when_needed")
        src = SourceThread(cfg2, kafka.bootstrap, store).start()
        try:
            assert reader.until(lambda r: sum(1 for v in events(r) if v["op"] == "r") >= 2, 30), (
                src.error
            )
            reads = {v["after"]["Name"] for v in events(reader.records) if v["op"] == "r"}
            assert reads == {"one", "two"}
            _wait_subscribed(emu, 3)
            api.create("Account", {"Name": "three"})
            assert reader.until(
                lambda r: any((v["after"] or {}).get("Name") == "three" for v in events(r)), 30
            ), src.error
        finally:
            src.stop()
            reader.close()
            api.close()


def test_gap_events_are_repaired_by_reading_the_listed_records(
    kafka: Any, topic_name: Callable[..., str]
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        api = Writer(emu)
        ids = api.create_many("Account", [{"Name": f"G{i}"} for i in range(3)])
        name = topic_name("sfgap")
        src = SourceThread(
            source_config(emu, name=name, mode="changed_fields"), kafka.bootstrap
        ).start()
        reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        try:
            _wait_subscribed(emu)
            with emu.without_change_events():
                emu.ui_update("Account", ids[0], {"Phone": "gap-1"})
                emu.ui_update("Account", ids[1], {"Phone": "gap-2"})
                emu.ui_delete("Account", ids[2])
            emu.bus.inject_gap("Account", ids[:2], "UPDATE")
            emu.bus.inject_gap("Account", [ids[2]], "UPDATE")  # gone by now: a delete
            _run_until(src, reader, 3)
            vals = events(reader.records)
            by_id = {v["after"]["Id"] if v["after"] else v["before"]["Id"]: v for v in vals}
            assert by_id[ids[0]]["op"] == "u" and by_id[ids[0]]["after"]["Phone"] == "gap-1"
            assert by_id[ids[0]]["after"]["Name"] == "G0"  # full record, even in changed_fields
            assert by_id[ids[1]]["after"]["Phone"] == "gap-2"
            assert by_id[ids[2]]["op"] == "d"
            assert src.source.gap_events == 2
        finally:
            src.stop()
            reader.close()
            api.close()


def test_overflow_rereads_records_modified_since_the_last_commit(
    kafka: Any, topic_name: Callable[..., str]
) -> None:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as emu:
        api = Writer(emu)
        ids = api.create_many("Account", [{"Name": f"O{i}"} for i in range(40)])
        time.sleep(2.2)  # the re-read starts a second before the last commit (second precision)
        name = topic_name("sfover")
        src = SourceThread(source_config(emu, name=name), kafka.bootstrap).start()
        reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        try:
            _wait_subscribed(emu)
            api.update("Account", ids[0], {"Phone": "seen"})
            _run_until(src, reader, 1)
            with emu.without_change_events():
                for rid in ids[10:30]:
                    emu.ui_update("Account", rid, {"Phone": "bulk change"})
                emu.ui_delete("Account", ids[30])
            emu.bus.inject_overflow("Account")
            assert reader.until(lambda r: len(events(r)) >= 22, 30), src.error
            final = _final(reader.records)
            assert all(final[rid] and final[rid]["Phone"] == "bulk change" for rid in ids[10:30])
            assert final[ids[30]] is None
            assert src.source.overflow_events == 1
            untouched = set(ids[31:]) & set(final)
            assert not untouched  # only records modified since the last commit were re-read
        finally:
            src.stop()
            reader.close()
            api.close()


def test_stream_resets_and_idle_ends_resume_without_loss(
    kafka: Any, topic_name: Callable[..., str]
) -> None:
    with SalesforceEmulator(
        bulk_delay=0.02, pubsub_keepalive_s=0.3, pubsub_idle_timeout_s=1.0
    ) as emu:
        api = Writer(emu)
        name = topic_name("sfreset")
        cfg = source_config(emu, name=name, mode="changed_fields", batch_size=5)
        cfg = cfg.model_copy(update={"retry_initial_delay_ms": 100})
        src = SourceThread(cfg, kafka.bootstrap).start()
        reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        emu.bus.delivery_delay_s = 0.01  # a slow server
        stop = threading.Event()
        try:
            _wait_subscribed(emu)
            made: list[str] = []

            def write() -> None:
                for i in range(60):
                    made.append(api.create("Account", {"Name": f"R{i}"}))
                    if i % 20 == 10:
                        emu.bus.reset_streams()
                    time.sleep(0.01)
                stop.set()

            t = threading.Thread(target=write)
            t.start()
            t.join(60)
            time.sleep(1.5)  # idle: the server ends the stream, the source resubscribes
            made.append(api.create("Account", {"Name": "after idle"}))
            assert reader.until(lambda r: set(made) <= set(_final(r)), 60), (
                src.error,
                len(made),
                len(_final(reader.records)),
            )
            assert src.error is None
            assert emu.pubsub is not None and emu.pubsub.calls.count("Subscribe") >= 3
        finally:
            src.stop()
            reader.close()
            api.close()


def test_a_restart_before_any_replay_id_rereads_what_changed_while_down(
    kafka: Any, topic_name: Callable[..., str]
) -> None:
    """Subscribed at LATEST, stopped before any event or keep-alive gave a replay id: the
    stored position re-reads from the subscription's start (LATEST again would miss it)."""
    with SalesforceEmulator(bulk_delay=0.02) as emu:  # keep-alives only every 270 s
        api = Writer(emu)
        name = topic_name("sfnorep")
        store = OffsetStoreDouble()
        cfg = source_config(emu, name=name)
        reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        src = SourceThread(cfg, kafka.bootstrap, store).start()
        src.wait_streaming()
        _wait_subscribed(emu)
        src.stop()
        assert store.offsets[name]["replay"] == {} and store.offsets[name]["catch_up_ms"]
        rid = api.create("Account", {"Name": "created while the bridge was down"})
        src = SourceThread(cfg, kafka.bootstrap, store).start()
        try:
            assert reader.until(lambda r: any(k["Id"] == rid for k, _v in r), 30), src.error
            api.create("Account", {"Name": "streamed"})
            assert reader.until(lambda r: len(events(r)) >= 2, 30), src.error
            assert src.error is None
        finally:
            src.stop()
            reader.close()
            api.close()
