"""Salesforce emulator: fault injection (lock rows, 503 bursts, session expiry, latency) and quota."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from cdc_bridge.testing.salesforce import FaultConfig, SalesforceEmulator, simple_salesforce_client

from .sf_helpers import api, errors


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(daily_limit=50) as e:
        yield e


def _batch(n: int, prefix: str = "A") -> dict:
    return {
        "records": [{"attributes": {"type": "Account"}, "Name": f"{prefix}{i}"} for i in range(n)]
    }


def _lock_pattern(emu: SalesforceEmulator, seed: int) -> list[bool]:
    emu.set_faults(FaultConfig(lock_row_probability=0.3, seed=seed))
    res = api(emu, "POST", "composite/sobjects", json=_batch(50, f"s{seed}-")).json()
    return [r["success"] for r in res]


def test_lock_row_per_record_and_reproducible(emu: SalesforceEmulator) -> None:
    first = _lock_pattern(emu, 7)
    emu.reset_quota()
    again = _lock_pattern(emu, 7)
    other = _lock_pattern(emu, 8)
    assert first == again and first != other
    assert 0 < first.count(False) < 50
    emu.set_faults(FaultConfig(lock_row_probability=1.0))
    res = api(emu, "POST", "composite/sobjects", json=_batch(1, "x")).json()
    assert res[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    sf = simple_salesforce_client(emu)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "single"})
    assert exc.value.status == 400 and exc.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_lock_row_in_all_or_none_rolls_back(emu: SalesforceEmulator) -> None:
    emu.set_faults(FaultConfig(lock_row_probability=0.5, seed=1))
    res = api(emu, "POST", "composite/sobjects", json={"allOrNone": True, **_batch(20)}).json()
    codes = {r["errors"][0]["statusCode"] for r in res}
    assert codes == {"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK"}
    assert emu.records("Account") == []


def test_unavailable_bursts(emu: SalesforceEmulator) -> None:
    emu.set_faults(FaultConfig(unavailable_every=5, unavailable_burst=2))
    token = emu.session_token()
    statuses = [api(emu, "GET", "limits", token=token).status_code for _ in range(12)]
    assert statuses == [200, 200, 200, 200, 503, 503, 200, 200, 200, 503, 503, 200]
    resp = api(emu, "GET", "limits", token=token)
    assert resp.status_code == 200
    emu.set_faults(FaultConfig(unavailable_probability=0.5, seed=3))
    statuses = [api(emu, "GET", "limits", token=token).status_code for _ in range(20)]
    assert set(statuses) == {200, 503}


def test_session_expires_after_n_calls(emu: SalesforceEmulator) -> None:
    emu.set_faults(FaultConfig(session_expire_after=3))
    token = emu.session_token()
    statuses = [api(emu, "GET", "limits", token=token).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 401, 401]
    sf = simple_salesforce_client(emu)  # logs in again on 401, as a client should
    for _ in range(5):
        sf.limits()
    assert [c.status for c in emu.call_log if c.kind == "auth"].count(200) == 2


def test_latency(emu: SalesforceEmulator) -> None:
    emu.set_faults(FaultConfig(latency=0.2))
    token = emu.session_token()
    started = time.monotonic()
    api(emu, "GET", "limits", token=token)
    assert time.monotonic() - started >= 0.2  # a lower bound on injected delay, not a speed check


def test_daily_quota_and_reset(emu: SalesforceEmulator) -> None:
    token = emu.session_token()
    for i in range(50):
        resp = api(emu, "GET", "limits", token=token)
        assert resp.status_code == 200
        assert resp.headers["Sforce-Limit-Info"] == f"api-usage={i + 1}/50"
    over = api(emu, "POST", "sobjects/Account", token=token, json={"Name": "late"})
    assert over.status_code == 403 and errors(over) == ["REQUEST_LIMIT_EXCEEDED"]
    assert over.headers["Sforce-Limit-Info"] == "api-usage=50/50"
    assert emu.records("Account") == []
    emu.reset_quota()
    resp = api(emu, "GET", "limits", token=token)
    assert resp.json()["DailyApiRequests"] == {"Max": 50, "Remaining": 49}
    emu.reset_quota(daily_limit=1000)
    assert api(emu, "GET", "limits", token=token).json()["DailyApiRequests"]["Max"] == 1000


def test_call_log_classifies_and_resets(emu: SalesforceEmulator) -> None:
    sf = simple_salesforce_client(emu)
    sf.Account.create({"Name": "a"})
    sf.Account.describe()
    sf.query("SELECT Id FROM Account")
    sf.limits()
    kinds = [c.kind for c in emu.call_log]
    assert kinds == ["auth", "data", "describe", "query", "limits"]
    assert emu.calls("data") == 1
    emu.reset_counters()
    assert emu.call_log == []


def test_lock_row_in_bulk_jobs(emu: SalesforceEmulator) -> None:
    emu.reset_quota(daily_limit=10**6)  # polling must not run into the fixture's small quota
    emu.set_faults(FaultConfig(lock_row_probability=0.5, seed=11))
    token = emu.session_token()
    job = api(
        emu, "POST", "jobs/ingest", token=token, json={"object": "Account", "operation": "insert"}
    ).json()
    data = "Name\n" + "\n".join(f"A{i}" for i in range(40)) + "\n"
    api(
        emu,
        "PUT",
        f"jobs/ingest/{job['id']}/batches",
        token=token,
        data=data.encode(),
        headers={"Content-Type": "text/csv"},
    )
    api(emu, "PATCH", f"jobs/ingest/{job['id']}", token=token, json={"state": "UploadComplete"})
    for _ in range(300):
        info = api(emu, "GET", f"jobs/ingest/{job['id']}", token=token).json()
        if info["state"] == "JobComplete":
            break
        time.sleep(0.01)
    assert info["state"] == "JobComplete"
    failed = api(
        emu, "GET", f"jobs/ingest/{job['id']}/failedResults", token=token
    ).text.splitlines()[1:]
    assert 0 < len(failed) < 40 and all("UNABLE_TO_LOCK_ROW" in line for line in failed)
    assert len(emu.records("Account")) == 40 - len(failed) == 40 - info["numberRecordsFailed"]


def test_daily_limit_from_fault_config(emu: SalesforceEmulator) -> None:
    token = emu.session_token()
    api(emu, "GET", "limits", token=token)
    emu.set_faults(FaultConfig(daily_limit=2))
    assert api(emu, "GET", "limits", token=token).status_code == 200
    assert errors(api(emu, "GET", "limits", token=token)) == ["REQUEST_LIMIT_EXCEEDED"]
    with SalesforceEmulator(faults=FaultConfig(daily_limit=7)) as other:
        assert other.daily_limit == 7
