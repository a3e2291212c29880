"""The Salesforce sink against the emulator: upserts, deletes, lookups, faults, quota, API economy."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from cdc_bridge.errors import ConfigError, FatalError
from cdc_bridge.testing.salesforce import FaultConfig, SalesforceEmulator

from .sf_sink_helpers import CONTACTS, CUSTOMERS, accounts, ev, make_sink, to_records


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(bulk_delay=0.01) as e:
        yield e


def customer(
    i: int, name: str | None = None, city: str = "Utrecht", employees: int | None = 10
) -> dict[str, object]:
    return {"id": i, "name": name or f"Customer {i}", "city": city, "employees": employees}


def test_inserts_updates_deletes_land(emu: SalesforceEmulator) -> None:
    sink = make_sink(emu)
    events = [ev(CUSTOMERS, "c", customer(i)) for i in range(1, 6)]
    events += [
        ev(CUSTOMERS, "u", customer(2, "Renamed", "Delft"), customer(2)),
        ev(CUSTOMERS, "d", None, {"id": 3, "name": None, "city": None, "employees": None}),
        ev(CUSTOMERS, "u", customer(4, employees=None), customer(4)),
    ]
    result = sink.apply(to_records(events))
    assert result.ok
    got = accounts(emu)
    assert sorted(got) == ["1", "2", "4", "5"]
    assert got["2"]["Name"] == "Renamed" and got["2"]["BillingCity"] == "Delft"
    assert got["4"]["NumberOfEmployees"] is None
    # A later batch deletes by external ID (with tombstones) and re-creates one key.
    events = [
        ev(CUSTOMERS, "d", None, {"id": 5, "name": None, "city": None, "employees": None}),
        ev(CUSTOMERS, "d", None, {"id": 1, "name": None, "city": None, "employees": None}),
        ev(CUSTOMERS, "c", customer(1, "Back")),
    ]
    assert sink.apply(to_records(events)).ok
    got = accounts(emu)
    assert sorted(got) == ["1", "2", "4"] and got["1"]["Name"] == "Back"
    # Replaying the same batches converges to the same state (idempotent).
    assert sink.apply(to_records(events)).ok
    assert accounts(emu).keys() == got.keys()
    sink.close()


def test_schemaless_topics_and_soft_deletes(emu: SalesforceEmulator) -> None:
    sink = make_sink(emu, fields={"Name": "name", "Description": "{name} from {city}"})
    assert sink.apply(to_records([ev(CUSTOMERS, "c", customer(7))], schemas=False)).ok
    assert accounts(emu)["7"]["Description"] == "Customer 7 from Utrecht"


def test_parent_child_lookup_waits_for_the_parent(emu: SalesforceEmulator) -> None:
    parents = make_sink(emu)
    children = make_sink(
        emu,
        sobject="Contact",
        fields={
            "LastName": "last_name",
            "Birthdate": "birthdate",
            "Account.External_Id__c": "customer_id",
        },
        parent_wait_s=20,
    )
    kids = to_records(
        [
            ev(
                CONTACTS,
                "c",
                {"id": 100 + i, "last_name": f"L{i}", "customer_id": i, "birthdate": 19000 + i},
            )
            for i in range(1, 4)
        ]
    )
    done: list[object] = []
    t = threading.Thread(target=lambda: done.append(children.apply(kids)))
    t.start()
    time.sleep(0.5)  # the child route runs ahead of the parent route
    assert parents.apply(to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(1, 4)])).ok
    t.join(30)
    assert done and done[0].ok  # type: ignore[attr-defined]
    acc_ids = {r["External_Id__c"]: r["Id"] for r in emu.records("Account")}
    contacts = {r["External_Id__c"]: r for r in emu.records("Contact")}
    for i in range(1, 4):
        c = contacts[str(100 + i)]
        assert c["AccountId"] == acc_ids[str(i)]
        assert c["Birthdate"] == f"2022-01-{8 + i:02d}"
    assert children.stats["parent_waits"] >= 1


def test_missing_parent_is_dead_lettered_after_the_wait(emu: SalesforceEmulator) -> None:
    children = make_sink(
        emu,
        sobject="Contact",
        fields={"LastName": "last_name", "Account.External_Id__c": "customer_id"},
        parent_wait_s=0.3,
    )
    recs = to_records(
        [ev(CONTACTS, "c", {"id": 1, "last_name": "Orphan", "customer_id": 999, "birthdate": None})]
    )
    result = children.apply(recs)
    assert list(result.failed) == [0]
    assert "999" in str(result.failed[0]) and "not found" in str(result.failed[0])


def test_bad_records_go_to_the_dead_letter_with_salesforces_reason(emu: SalesforceEmulator) -> None:
    sink = make_sink(emu, sobject="Contact", fields={"LastName": "last_name", "Email": "email"})
    from cdc_bridge.events import Column, TableSchema

    people = TableSchema(
        "postgresql",
        "shop",
        "shop",
        "public",
        "people",
        (
            Column("id", {"type": "int32", "optional": False}),
            Column("last_name", {"type": "string", "optional": True}),
            Column("email", {"type": "string", "optional": True}),
        ),
        ("id",),
    )
    rows = [
        {"id": 1, "last_name": "Good", "email": "good@example.com"},
        {"id": 2, "last_name": None, "email": "x@example.com"},  # required field missing
        {"id": 3, "last_name": "Bad", "email": "not-an-email"},  # invalid email
        {"id": 4, "last_name": "Fine", "email": None},
    ]
    recs = to_records([ev(people, "c", r) for r in rows])
    result = sink.apply(recs)
    assert sorted(result.failed) == [1, 2]
    assert "REQUIRED_FIELD_MISSING" in str(result.failed[1])
    assert "INVALID_EMAIL_ADDRESS" in str(result.failed[2])
    assert sorted(r["External_Id__c"] for r in emu.records("Contact")) == ["1", "4"]


def test_a_value_that_breaks_the_whole_call_only_fails_its_record(emu: SalesforceEmulator) -> None:
    sink = make_sink(
        emu, fields={"Name": "name", "NumberOfEmployees": "city"}
    )  # a string into an int
    recs = to_records(
        [ev(CUSTOMERS, "c", customer(i, city="12" if i != 3 else "twelve")) for i in range(1, 6)]
    )
    result = sink.apply(recs)
    assert list(result.failed) == [2]
    assert "JSON_PARSER_ERROR" in str(result.failed[2]) or "INVALID_TYPE" in str(result.failed[2])
    assert sorted(accounts(emu)) == ["1", "2", "4", "5"]


def test_fault_run_locks_503s_and_session_expiry(emu: SalesforceEmulator) -> None:
    emu.set_faults(
        FaultConfig(
            lock_row_probability=0.2,
            unavailable_every=7,
            unavailable_burst=2,
            session_expire_after=5,
            seed=3,
        )
    )
    sink = make_sink(emu, {"timeout_s": 10}, transient_retries=20, retry_backoff_ms=20)
    expected: dict[str, str] = {}
    events = []
    for i in range(1, 1201):
        events.append(ev(CUSTOMERS, "c", customer(i)))
        expected[str(i)] = f"Customer {i}"
    for i in range(1, 1201, 3):
        events.append(ev(CUSTOMERS, "u", customer(i, f"Updated {i}"), customer(i)))
        expected[str(i)] = f"Updated {i}"
    for i in range(2, 1201, 10):
        events.append(
            ev(CUSTOMERS, "d", None, {"id": i, "name": None, "city": None, "employees": None})
        )
        expected.pop(str(i))
    recs = to_records(events)
    for start in range(0, len(recs), 400):
        result = sink.apply(recs[start : start + 400])
        assert result.ok, result.failed
    got = {k: v["Name"] for k, v in accounts(emu).items()}
    assert got == expected
    client = sink.client
    assert client is not None
    assert sink.stats["record_retries"] > 0  # UNABLE_TO_LOCK_ROW was retried...
    assert client.retries > 0  # ...503s were retried...
    assert client.refreshes > 0 and client.auth.logins > 1  # ...and the session was renewed


def test_quota_exhausted_pauses_then_resumes(
    emu: SalesforceEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    sink = make_sink(emu, {"quota_reserve": 0.0, "quota_slowdown": 1.0})
    emu.reset_quota(daily_limit=emu.api_usage + 3)
    recs = to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(1, 1001)])
    timer = threading.Timer(1.0, lambda: emu.reset_quota(daily_limit=100_000))
    timer.start()
    try:
        with caplog.at_level("WARNING"):
            assert sink.apply(recs).ok
    finally:
        timer.cancel()
    assert len(accounts(emu)) == 1000
    assert sink.client is not None and sink.client.quota.pauses >= 1
    assert "PAUSED" in caplog.text and "RESUMED" in caplog.text


def test_collections_api_economy_10k_rows(emu: SalesforceEmulator) -> None:
    sink = make_sink(emu, mode="collections")
    recs = to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(10_000)])
    recs += to_records(
        [ev(CUSTOMERS, "u", customer(i, "again"), customer(i)) for i in range(0, 10_000, 7)]
    )
    emu.reset_counters()
    assert sink.apply(recs).ok
    assert emu.calls("data") <= 55
    assert len(accounts(emu)) == 10_000


@pytest.mark.slow
def test_bulk_backlog_goes_through_bulk_jobs(emu: SalesforceEmulator) -> None:
    # two batches above bulk_threshold (5,000); the 100k-row backlog through Kafka is in
    # test_kafka_to_salesforce.py
    sink = make_sink(emu, bulk_poll_s=0.2)
    recs = to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(20_000)])
    emu.reset_counters()
    for start in range(0, len(recs), 10_000):
        assert sink.apply(recs[start : start + 10_000]).ok
    assert sink.mode.bulk
    bulk = emu.calls("bulk")
    assert sink.stats["bulk_jobs"] == 2
    # create, upload, close, failedResults per job, plus polling
    assert bulk <= 2 * 4 + 2 * 20
    assert emu.calls("data") == 0
    assert len(accounts(emu)) == 20_000
    # Caught up: a small batch goes back to Collections.
    assert sink.apply(to_records([ev(CUSTOMERS, "u", customer(1, "small"), customer(1))])).ok
    assert not sink.mode.bulk and emu.calls("data") == 1


def test_bulk_failed_rows_and_lock_retries(emu: SalesforceEmulator) -> None:
    emu.set_faults(FaultConfig(lock_row_probability=0.2, seed=5))
    sink = make_sink(emu, mode="bulk", bulk_poll_s=0.05)
    rows = [customer(i) for i in range(1, 1001)]
    rows[10] = customer(11, name="")  # Name is required: empty -> null
    rows[10]["name"] = None
    result = sink.apply(to_records([ev(CUSTOMERS, "c", r) for r in rows]))
    assert list(result.failed) == [10]
    assert "REQUIRED_FIELD_MISSING" in str(result.failed[10])
    assert len(accounts(emu)) == 999


def test_preflight_reports_every_problem_at_once(emu: SalesforceEmulator) -> None:
    from cdc_bridge.sinks.base import SinkContext
    from cdc_bridge.sinks.salesforce.sink import SalesforceSink

    from .sf_sink_helpers import route_config, sink_config

    route = route_config(
        sobject="Contact",
        external_id="Email",
        fields={
            "LastName": "last_name",
            "Nope__c": "x",
            "Name": "full_name",
            "Birthdate": {"field": "b", "format": "bool"},
            "Account.BillingCity": "customer",
            "Foo__r.Bar__c": "y",
        },
        deletes="soft",
        soft_delete_field="Title",
    )
    sink = SalesforceSink(sink_config(emu), route, SinkContext("t", "r", "g"))
    problems = sink.check()
    text = "\n".join(problems)
    assert "routes.external_id" in text and "not marked External ID" in text
    assert "routes.fields.Nope__c" in text
    assert "routes.fields.Name" in text and "not createable" in text
    assert "routes.fields.Birthdate" in text and "bool" in text
    assert "routes.fields.Account.BillingCity" in text and "External ID" in text
    assert "routes.fields.Foo__r.Bar__c" in text
    assert "routes.soft_delete_field" in text and "checkbox" in text
    assert len(problems) == 7
    with pytest.raises(ConfigError) as info:
        sink.open()
    assert len(info.value.problems) == 7
    assert emu.calls("data") == 0  # nothing was written
    bad = SalesforceSink(
        sink_config(emu), route_config(sobject="Nothing__c"), SinkContext("t", "r", "g")
    )
    assert any("does not exist" in p for p in bad.check())


def test_session_auth_cannot_refresh(emu: SalesforceEmulator) -> None:
    sink = make_sink(
        emu,
        {"auth": "session", "instance_url": emu.instance_url, "session_id": emu.session_token()},
    )
    assert sink.apply(to_records([ev(CUSTOMERS, "c", customer(1))])).ok
    emu.expire_sessions()
    with pytest.raises(FatalError, match="cannot be refreshed"):
        sink.apply(to_records([ev(CUSTOMERS, "c", customer(2))]))


def test_wrong_password_is_one_clear_message(emu: SalesforceEmulator) -> None:
    with pytest.raises(ConfigError, match=r"login .* failed: invalid_grant.*security_token"):
        make_sink(emu, {"password": "wrong"})


def test_sink_level_check_without_a_route(emu: SalesforceEmulator) -> None:
    from cdc_bridge.sinks.salesforce.sink import SalesforceSink

    from .sf_sink_helpers import sink_config

    assert SalesforceSink(sink_config(emu)).check() == []
    problems = SalesforceSink(sink_config(emu, client_secret="nope")).check()
    assert len(problems) == 1 and "invalid_client" in problems[0]


def test_bulk_mode_deletes_through_a_bulk_delete_job(emu: SalesforceEmulator) -> None:
    sink = make_sink(emu, mode="bulk", bulk_poll_s=0.05)
    assert sink.apply(to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(1500)])).ok
    gone = {"id": 0, "name": None, "city": None, "employees": None}
    deletes = [ev(CUSTOMERS, "d", None, {**gone, "id": i}) for i in range(0, 1500, 2)]
    deletes.append(ev(CUSTOMERS, "d", None, {**gone, "id": 99_999}))  # never existed
    emu.reset_counters()
    assert sink.apply(to_records(deletes)).ok
    assert sorted(accounts(emu), key=int) == [str(i) for i in range(1, 1500, 2)]
    assert emu.calls("data") == 0 and sink.stats["bulk_jobs"] == 2
    assert emu.calls("query") == 3  # 751 keys resolved 300 a query


def test_an_interrupted_batch_is_not_sent_twice(emu: SalesforceEmulator) -> None:
    from cdc_bridge.errors import RetriableError

    sink = make_sink(emu, transient_retries=0)
    recs = to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(1000)])
    emu.set_faults(FaultConfig(lock_row_probability=0.3, seed=2))
    with pytest.raises(RetriableError):
        sink.apply(recs)  # some records kept failing: the engine will retry the batch
    landed = len(accounts(emu))
    assert 0 < landed < 1000
    emu.set_faults(FaultConfig())
    emu.reset_counters()
    assert sink.apply(recs).ok
    assert len(accounts(emu)) == 1000
    assert sink.stats["skipped_as_applied"] == landed
    assert emu.calls("data") == -(-(1000 - landed) // 200)  # only the rest was sent


def test_a_long_quota_pause_hands_the_batch_back(emu: SalesforceEmulator) -> None:
    from cdc_bridge.errors import RetriableError

    sink = make_sink(emu, {"quota_reserve": 0.0, "quota_pause_s": 0.1, "quota_block_s": 0.5})
    emu.reset_quota(daily_limit=emu.api_usage + 2)
    recs = to_records([ev(CUSTOMERS, "c", customer(i)) for i in range(1000)])
    with pytest.raises(RetriableError, match="paused by the daily API quota"):
        sink.apply(recs)
    emu.reset_quota(daily_limit=100_000)
    assert sink.apply(recs).ok
    assert len(accounts(emu)) == 1000
    assert sink.stats["skipped_as_applied"] > 0
