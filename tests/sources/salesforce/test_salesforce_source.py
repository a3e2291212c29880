"""The Salesforce source against the emulator's Pub/Sub API and a real Kafka broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cdc_bridge.testing.salesforce import SalesforceEmulator
from cdc_bridge.testing.sources import SourceThread
from tests.sources.salesforce.sf_harness import (
    TopicReader,
    Writer,
    events,
    source_config,
)


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.5) as e:
        yield e


class Bench:
    """A running source, a reader of its Account topic and two REST writers."""

    def __init__(self, emu: SalesforceEmulator, kafka: Any, name: str, **cfg: Any) -> None:
        self.emu = emu
        self.cfg = source_config(emu, name=name, **cfg)
        self.src = SourceThread(self.cfg, kafka.bootstrap, cfg.pop("store", None)).start()
        self.reader = TopicReader(kafka.bootstrap, f"{name}.Account")
        self.api = Writer(emu)
        self.bridge = Writer(emu, client="cdc-bridge")
        deadline = time.monotonic() + 10
        while "Subscribe" not in (emu.pubsub.calls if emu.pubsub else []):
            assert time.monotonic() < deadline, self.src.error
            time.sleep(0.05)
        time.sleep(0.3)  # the LATEST subscription is in place

    def wait(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        ok = self.reader.until(lambda r: len(events(r)) >= n, timeout)
        assert ok, (self.src.error, [v["op"] for v in events(self.reader.records)])
        return events(self.reader.records)

    def close(self) -> None:
        self.src.stop()
        self.reader.close()
        self.api.close()
        self.bridge.close()


@pytest.fixture
def bench(
    emu: SalesforceEmulator, kafka: Any, topic_name: Callable[..., str]
) -> Iterator[Callable[..., Bench]]:
    made: list[Bench] = []

    def make(**cfg: Any) -> Bench:
        b = Bench(emu, kafka, topic_name("sf"), **cfg)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def test_full_mode_ops_compound_nulled_ui_user_and_echo(bench: Callable[..., Bench]) -> None:
    b = bench()
    emu = b.emu
    rid = b.api.create("Account", {"Name": "Acme", "BillingCity": "Oslo", "Phone": "1"})
    b.wait(1)
    b.api.update("Account", rid, {"BillingCity": None, "NumberOfEmployees": 7})
    b.wait(2)
    b.bridge.create("Account", {"Name": "From the bridge"})  # this bridge's echo: dropped
    emu.ui_update("Account", rid, {"Name": "Acme UI"})
    b.wait(3)
    b.api.delete("Account", rid)
    b.wait(4)
    emu.undelete("Account", rid)
    vals = b.wait(5)
    assert [v["op"] for v in vals] == ["c", "u", "u", "d", "c"]
    create, upd, ui, delete, undelete = vals
    # full mode: after is the whole current record (sObject Collections retrieve)
    assert create["after"]["Id"] == rid and create["after"]["Name"] == "Acme"
    assert create["after"]["BillingCity"] == "Oslo" and create["after"]["Phone"] == "1"
    assert upd["after"]["BillingCity"] is None and upd["after"]["NumberOfEmployees"] == 7
    assert upd["after"]["Name"] == "Acme"  # unchanged fields are there too
    assert set(upd["source"]["changed_fields"]) == {
        "LastModifiedDate",
        "NumberOfEmployees",
        "BillingCity",  # BillingAddress.City in the event: flattened as the sink writes it
    }
    src = upd["source"]
    assert src["connector"] == "salesforce" and src["object"] == "Account"
    assert src["replay_id"] and src["transaction_key"] and src["sequence_number"] == 1
    assert src["change_origin"].startswith("com/salesforce/api/rest/")
    assert src["ts_ms"] > 1_600_000_000_000 and src["echo"] is False
    assert ui["source"]["change_origin"] == ""
    assert ui["source"]["commit_user"] != src["commit_user"]
    assert ui["after"]["Name"] == "Acme UI"
    assert delete["before"]["Id"] == rid and delete["after"] is None
    assert undelete["after"]["Name"] == "Acme UI" and undelete["after"]["Id"] == rid
    assert all(k == {"Id": rid} for k, _ in b.reader.records)
    assert [v for _, v in b.reader.records].count(None) == 1  # the tombstone
    assert b.src.source.echo_dropped == 1
    # Date / datetime in Debezium form
    assert create["after"]["CreatedDate"].endswith("Z")
    assert b.src.error is None


def test_changed_fields_mode_makes_no_api_calls(bench: Callable[..., Bench]) -> None:
    b = bench(mode="changed_fields", on_echo="mark")
    emu = b.emu
    rid = b.api.create("Account", {"Name": "Acme", "BillingCity": "Oslo", "Phone": "1"})
    b.wait(1)
    emu.reset_counters()
    b.api.update("Account", rid, {"BillingCity": None, "Phone": "2"})
    b.bridge.update("Account", rid, {"Website": "https://x.example"})
    vals = b.wait(3)
    create, upd, echo = vals
    assert create["op"] == "c" and create["after"]["BillingCity"] == "Oslo"
    assert upd["op"] == "u"
    assert upd["after"]["Id"] == rid and upd["after"]["Phone"] == "2"
    assert upd["after"]["BillingCity"] is None  # nulled
    assert upd["after"]["Name"] is None  # not changed: not carried
    assert "BillingCity" in upd["source"]["changed_fields"]
    assert echo["source"]["echo"] is True and echo["after"]["Website"] == "https://x.example"
    # the source itself made no REST calls (the writers' calls are "data")
    assert emu.calls("query") == 0 and emu.calls("describe") == 0
    assert sum(1 for c in emu.call_log if "/composite/sobjects/Account" in c.path) == 0


def test_several_changes_of_a_record_collapse_into_one_fetch(bench: Callable[..., Bench]) -> None:
    b = bench(max_wait_ms=1500)
    emu = b.emu
    with emu.ui_transaction() as tx:
        obj = emu.store.schema("Account")
        assert obj is not None
        ids = [emu.store.insert(tx, obj, {"Name": f"A{i}"}) for i in range(30)]
    for rid in ids:
        emu.ui_update("Account", rid, {"Phone": "5"})
        emu.ui_update("Account", rid, {"Phone": "6"})
    vals = b.wait(30)
    time.sleep(1.0)
    vals = events(b.reader.records)
    assert len(vals) == 30  # create + two updates of a record in one batch: one event
    assert all(v["op"] == "c" and v["after"]["Phone"] == "6" for v in vals)
    retrieves = [c for c in emu.call_log if c.path.endswith("/composite/sobjects/Account")]
    assert len(retrieves) == 1


def test_platform_events_go_to_their_own_topic(
    emu: SalesforceEmulator, kafka: Any, topic_name: Callable[..., str]
) -> None:
    emu.define_platform_event(
        "Order_Placed__e", {"Order_Number__c": "string", "Amount__c": "double"}
    )
    name = topic_name("sfpe")
    cfg = source_config(emu, name=name, objects=[], platform_events=["/event/Order_Placed__e"])
    src = SourceThread(cfg, kafka.bootstrap).start()
    reader = TopicReader(kafka.bootstrap, f"{name}.Order_Placed__e")
    try:
        time.sleep(1.0)
        u1 = emu.publish_platform_event(
            "Order_Placed__e", {"Order_Number__c": "O-1", "Amount__c": 9.5}
        )
        u2 = emu.publish_platform_event("Order_Placed__e", {"Order_Number__c": "O-2"})
        assert reader.until(lambda r: len(r) >= 2, 30), src.error
        (k1, v1), (k2, v2) = reader.records
        assert k1 == {"EventUuid": u1} and k2 == {"EventUuid": u2}
        assert v1["Order_Number__c"] == "O-1" and v1["Amount__c"] == 9.5
        assert v2["Amount__c"] is None and "schema" not in v1  # plain JSON
    finally:
        src.stop()
        reader.close()
