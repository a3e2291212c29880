"""The emulator's Pub/Sub API through a plain gRPC client: auth, topics, flow control, replay
presets, retention errors, keep-alives, change events of every write path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests

from cdc_bridge.sources.salesforce.pubsub import (
    EventDecoder,
    PubSubClient,
    PubSubError,
    ReplayPreset,
    Session,
)
from cdc_bridge.testing.salesforce import SalesforceEmulator

ORG = "00D8d000000EMUL"


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(bulk_delay=0.02, pubsub_keepalive_s=0.3) as e:
        yield e


def _client(emu: SalesforceEmulator, token: str | None = None, org: str = ORG) -> PubSubClient:
    tok = token or emu.session_token()
    assert emu.ca_file is not None
    with open(emu.ca_file, "rb") as fh:
        roots = fh.read()
    return PubSubClient(
        emu.pubsub_endpoint, lambda: Session(tok, emu.url, org), root_certificates=roots
    )


def _take(sub: Any, n: int, timeout: float = 10) -> list[Any]:
    """The first n events (skipping keep-alives)."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    for resp in sub:
        out.extend(resp.events)
        if len(out) >= n or time.monotonic() > deadline:
            break
    return out


def test_auth_topics_and_schemas(emu: SalesforceEmulator) -> None:
    c = _client(emu)
    info = c.get_topic("/data/AccountChangeEvent")
    assert info.can_subscribe and not info.can_publish and info.schema_id
    schema = json.loads(c.get_schema(info.schema_id))
    names = [f["name"] for f in schema["fields"]]
    assert names[0] == "ChangeEventHeader" and "Id" not in names and "IsDeleted" not in names
    assert "BillingAddress" in names and "BillingCity" not in names  # compound address
    contact = json.loads(c.get_schema(c.get_topic("/data/ContactChangeEvent").schema_id))
    name = next(f for f in contact["fields"] if f["name"] == "Name")
    assert [p["name"] for p in name["type"][1]["fields"]] == ["FirstName", "LastName"]
    with pytest.raises(PubSubError) as nf:
        c.get_topic("/data/NopeChangeEvent")
    assert nf.value.code == grpc.StatusCode.NOT_FOUND and nf.value.error_code.endswith("notfound")
    c.close()
    bad = _client(emu, token="00D8d000000EMUL!forged")
    with pytest.raises(PubSubError) as refused:
        bad.get_topic("/data/AccountChangeEvent")
    assert refused.value.auth_failed
    bad.close()
    other_org = _client(emu, org="00D000000000001")
    with pytest.raises(PubSubError) as wrong:
        other_org.get_topic("/data/AccountChangeEvent")
    assert wrong.value.code == grpc.StatusCode.UNAUTHENTICATED
    other_org.close()


def test_every_write_path_publishes_change_events_with_origin(emu: SalesforceEmulator) -> None:
    tok = emu.session_token()
    http = requests.Session()
    http.headers.update({"Authorization": f"Bearer {tok}", "Sforce-Call-Options": "client=tagged"})
    base = f"{emu.url}/services/data/v61.0"
    r = http.post(f"{base}/sobjects/Account", json={"Name": "rest"}, verify=emu.ca_file)
    rid = r.json()["id"]
    body = {"records": [{"attributes": {"type": "Account"}, "Name": f"c{i}"} for i in range(3)]}
    http.post(f"{base}/composite/sobjects", json=body, verify=emu.ca_file)
    job = http.post(
        f"{base}/jobs/ingest",
        json={"object": "Account", "operation": "insert", "lineEnding": "LF"},
        verify=emu.ca_file,
    ).json()
    http.put(
        f"{base}/jobs/ingest/{job['id']}/batches",
        data=b"Name\nbulk1\nbulk2\n",
        headers={"Content-Type": "text/csv"},
        verify=emu.ca_file,
    )
    http.patch(
        f"{base}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"}, verify=emu.ca_file
    )
    deadline = time.monotonic() + 10
    while len(emu.records("Account")) < 6:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    emu.ui_update("Account", rid, {"Phone": "1"})
    c = _client(emu)
    dec = EventDecoder(c.get_schema)
    sub = c.subscribe("/data/AccountChangeEvent", preset=ReplayPreset.EARLIEST, batch_size=50)
    events = [
        dec.decode(e.event.schema_id, e.event.payload, e.replay_id, e.event.id)
        for e in _take(sub, 7)
    ]
    sub.close()
    c.close()
    origins = [e.header.change_origin for e in events if e.header]
    assert origins[:4] == ["com/salesforce/api/rest/61.0;client=tagged"] * 4
    assert origins[4:6] == ["com/salesforce/api/bulk/61.0;client=tagged"] * 2
    assert origins[6] == ""  # the UI
    assert [e.header.change_type for e in events if e.header] == ["CREATE"] * 6 + ["UPDATE"]
    last = events[6].header
    assert last is not None and last.changed_fields == ("LastModifiedDate", "Phone")
    assert last.commit_user == "0058d000000UIUSAAA"


def test_flow_control_presets_and_replay_errors(emu: SalesforceEmulator) -> None:
    obj = emu.store.schema("Account")
    assert obj is not None
    for i in range(25):
        emu.ui_create("Account", {"Name": f"r{i}"})
    c = _client(emu)
    sub = c.subscribe("/data/AccountChangeEvent", preset=ReplayPreset.EARLIEST, batch_size=10)
    first = next(iter(sub))
    assert len(first.events) == 10 and first.pending_num_requested == 0
    sub.close()
    # CUSTOM: after the 20th event
    replay20 = (emu.bus.latest_replay - 5).to_bytes(8, "big")
    sub = c.subscribe(
        "/data/AccountChangeEvent", preset=ReplayPreset.CUSTOM, replay_id=replay20, batch_size=100
    )
    got = _take(sub, 5)
    assert [int.from_bytes(e.replay_id, "big") for e in got] == list(
        range(emu.bus.latest_replay - 4, emu.bus.latest_replay + 1)
    )
    sub.close()
    # LATEST: nothing old, then a keep-alive with the latest replay id
    sub = c.subscribe("/data/AccountChangeEvent", preset=ReplayPreset.LATEST, batch_size=100)
    keepalive = next(iter(sub))
    assert not keepalive.events
    assert int.from_bytes(keepalive.latest_replay_id, "big") == emu.bus.latest_replay
    sub.close()
    # retention: the replay id is gone
    emu.bus.expire(emu.bus.latest_replay - 2)
    sub = c.subscribe(
        "/data/AccountChangeEvent", preset=ReplayPreset.CUSTOM, replay_id=replay20, batch_size=10
    )
    with pytest.raises(PubSubError) as lost:
        _take(sub, 1)
    assert lost.value.replay_lost and lost.value.code == grpc.StatusCode.INVALID_ARGUMENT
    sub.close()
    c.close()


def test_gap_overflow_and_platform_events(emu: SalesforceEmulator) -> None:
    rid = emu.ui_create("Account", {"Name": "g"})
    emu.bus.inject_gap("Account", [rid], "UPDATE")
    emu.bus.inject_overflow("Account")
    emu.define_platform_event("Order_Placed__e", {"Amount__c": "double"})
    uuid_ = emu.publish_platform_event("Order_Placed__e", {"Amount__c": 2.5})
    c = _client(emu)
    dec = EventDecoder(c.get_schema)
    sub = c.subscribe("/data/AccountChangeEvent", preset=ReplayPreset.EARLIEST, batch_size=10)
    evs = [
        dec.decode(e.event.schema_id, e.event.payload, e.replay_id, e.event.id)
        for e in _take(sub, 3)
    ]
    sub.close()
    types = [e.header.change_type for e in evs if e.header]
    assert types == ["CREATE", "GAP_UPDATE", "GAP_OVERFLOW"]
    assert evs[1].header and evs[1].header.record_ids == (rid,) and evs[1].header.is_gap
    assert evs[2].header and evs[2].header.record_ids == ()
    sub = c.subscribe("/event/Order_Placed__e", preset=ReplayPreset.EARLIEST, batch_size=10)
    (pe,) = _take(sub, 1)
    sub.close()
    rec = dec.decode(pe.event.schema_id, pe.event.payload, pe.replay_id, pe.event.id)
    assert (
        rec.header is None and rec.record["EventUuid"] == uuid_ and rec.record["Amount__c"] == 2.5
    )
    c.close()
