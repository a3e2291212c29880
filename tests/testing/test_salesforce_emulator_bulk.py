"""Salesforce emulator: Bulk API 2.0 ingest jobs, through simple-salesforce's bulk2 and plain REST."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from simple_salesforce import Salesforce

from cdc_bridge.testing.salesforce import SalesforceEmulator, simple_salesforce_client

from .sf_helpers import api


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(bulk_delay=0.05) as e:
        yield e


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    return simple_salesforce_client(emu)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def wait(emu: SalesforceEmulator, token: str, job_id: str) -> tuple[dict[str, Any], list[str]]:
    """Poll a job to a final state; also returns the states seen on the way."""
    seen: list[str] = []
    for _ in range(200):
        info = api(emu, "GET", f"jobs/ingest/{job_id}", token=token).json()
        if not seen or seen[-1] != info["state"]:
            seen.append(info["state"])
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info, seen
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish: {seen}")


def run_job(
    emu: SalesforceEmulator, token: str, spec: dict[str, Any], data: str
) -> tuple[dict[str, Any], list[str]]:
    created = api(
        emu,
        "POST",
        "jobs/ingest",
        token=token,
        json={"contentType": "CSV", "lineEnding": "LF", **spec},
    )
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["state"] == "Open" and job["id"].startswith("750")
    assert job["contentUrl"] == f"services/data/v{emu.api_version}/jobs/ingest/{job['id']}/batches"
    put = api(
        emu,
        "PUT",
        f"jobs/ingest/{job['id']}/batches",
        token=token,
        data=data.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert put.status_code == 201, put.text
    closed = api(
        emu, "PATCH", f"jobs/ingest/{job['id']}", token=token, json={"state": "UploadComplete"}
    )
    assert closed.json()["state"] == "UploadComplete"
    return wait(emu, token, job["id"])


def test_bulk_lifecycle_upsert_with_results(emu: SalesforceEmulator) -> None:
    token = emu.session_token()
    api(emu, "PATCH", "sobjects/Account/External_Id__c/P", token=token, json={"Name": "parent"})
    api(
        emu,
        "PATCH",
        "sobjects/Contact/External_Id__c/1",
        token=token,
        json={"LastName": "old", "Title": "keep"},
    )
    data = (
        "External_Id__c,LastName,Title,Birthdate,HasOptedOutOfEmail,Account.External_Id__c\n"
        "1,Updated,,1990-05-01,true,P\n"
        "2,New,#N/A,,false,\n"
        "3,,x,,,\n"
        "4,Orphan,,,,nope\n"
        '5,"Quoted, name",,not-a-date,,\n'
    )
    info, seen = run_job(
        emu,
        token,
        {"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c"},
        data,
    )
    assert seen[0] in ("UploadComplete", "InProgress") and seen[-1] == "JobComplete"
    assert info["numberRecordsProcessed"] == 5 and info["numberRecordsFailed"] == 3
    assert (
        info["jobType"] == "V2Ingest"
        and info["object"] == "Contact"
        and info["externalIdFieldName"] == "External_Id__c"
    )
    ok = rows(api(emu, "GET", f"jobs/ingest/{info['id']}/successfulResults", token=token).text)
    assert [(r["sf__Created"], r["External_Id__c"]) for r in ok] == [("false", "1"), ("true", "2")]
    assert all(r["sf__Id"].startswith("003") for r in ok)
    bad = rows(api(emu, "GET", f"jobs/ingest/{info['id']}/failedResults", token=token).text)
    assert [r["External_Id__c"] for r in bad] == ["3", "4", "5"]
    assert bad[0]["sf__Error"].startswith(
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]"
    )
    assert bad[1]["sf__Error"].startswith("INVALID_FIELD:Foreign key external ID: nope not found")
    assert bad[2]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    contacts = {r["External_Id__c"]: r for r in emu.records("Contact")}
    parent = emu.records("Account")[0]["Id"]
    assert (
        contacts["1"]["LastName"] == "Updated" and contacts["1"]["Title"] == "keep"
    )  # empty cell = unchanged
    assert (
        contacts["1"]["Birthdate"] == "1990-05-01" and contacts["1"]["HasOptedOutOfEmail"] is True
    )
    assert contacts["1"]["AccountId"] == parent
    assert contacts["2"]["Title"] is None and contacts["2"]["AccountId"] is None
    unprocessed = api(emu, "GET", f"jobs/ingest/{info['id']}/unprocessedrecords", token=token).text
    assert (
        unprocessed.strip()
        == '"External_Id__c","LastName","Title","Birthdate","HasOptedOutOfEmail","Account.External_Id__c"'
    )
    assert emu.calls("bulk") >= 7


def test_bulk_insert_update_delete(emu: SalesforceEmulator) -> None:
    token = emu.session_token()
    info, _ = run_job(
        emu,
        token,
        {"object": "Account", "operation": "insert"},
        "Name,NumberOfEmployees\nA,1\nB,2\n",
    )
    assert info["numberRecordsFailed"] == 0
    ids = [
        r["sf__Id"]
        for r in rows(
            api(emu, "GET", f"jobs/ingest/{info['id']}/successfulResults", token=token).text
        )
    ]
    info, _ = run_job(
        emu,
        token,
        {"object": "Account", "operation": "update"},
        f"Id,Name\n{ids[0]},A2\n001000000000009AAA,Z\n",
    )
    assert info["numberRecordsFailed"] == 1
    assert sorted(r["Name"] for r in emu.records("Account")) == ["A2", "B"]
    info, _ = run_job(
        emu, token, {"object": "Account", "operation": "delete"}, f"Id\n{ids[1]}\n{ids[1]}\n"
    )
    bad = rows(api(emu, "GET", f"jobs/ingest/{info['id']}/failedResults", token=token).text)
    assert bad[0]["sf__Error"].startswith("ENTITY_IS_DELETED")
    assert [r["Name"] for r in emu.records("Account")] == ["A2"]


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        (
            {"object": "Account", "operation": "insert"},
            "Name,Bogus__c\nx,1\n",
            "InvalidBatch : Field name not found : Bogus__c",
        ),
        (
            {"object": "Account", "operation": "delete"},
            "Id,Name\nx,y\n",
            "InvalidBatch : The 'delete' batch must contain only 'Id'",
        ),
        (
            {"object": "Account", "operation": "insert"},
            "Name\r\nx\r\n",
            "ClientInputError : LineEnding is invalid",
        ),
        (
            {"object": "Account", "operation": "upsert", "externalIdFieldName": "External_Id__c"},
            "Name\nx\n",
            "InvalidBatch : Field name not found : External_Id__c",
        ),
    ],
)
def test_bulk_job_fails_on_bad_data(
    emu: SalesforceEmulator, spec: dict[str, Any], data: str, message: str
) -> None:
    token = emu.session_token()
    info, _ = run_job(emu, token, spec, data)
    assert info["state"] == "Failed" and info["errorMessage"].startswith(message)
    assert emu.records("Account") == []


def test_bulk_job_creation_errors_and_states(emu: SalesforceEmulator) -> None:
    token = emu.session_token()
    r = api(
        emu, "POST", "jobs/ingest", token=token, json={"object": "Account", "operation": "upsert"}
    )
    assert r.status_code == 400 and "External ID was blank" in r.json()[0]["message"]
    r = api(
        emu, "POST", "jobs/ingest", token=token, json={"object": "Nope__c", "operation": "insert"}
    )
    assert r.json()[0]["errorCode"] == "INVALIDENTITY"
    r = api(
        emu, "POST", "jobs/ingest", token=token, json={"object": "Account", "operation": "merge"}
    )
    assert r.status_code == 400
    job = api(
        emu, "POST", "jobs/ingest", token=token, json={"object": "Account", "operation": "insert"}
    ).json()
    api(
        emu,
        "PUT",
        f"jobs/ingest/{job['id']}/batches",
        token=token,
        data=b"Name\nA\n",
        headers={"Content-Type": "text/csv"},
    )
    second = api(
        emu,
        "PUT",
        f"jobs/ingest/{job['id']}/batches",
        token=token,
        data=b"Name\nB\n",
        headers={"Content-Type": "text/csv"},
    )
    assert second.status_code == 409
    aborted = api(
        emu, "PATCH", f"jobs/ingest/{job['id']}", token=token, json={"state": "Aborted"}
    ).json()
    assert aborted["state"] == "Aborted"
    unprocessed = api(emu, "GET", f"jobs/ingest/{job['id']}/unprocessedrecords", token=token)
    assert unprocessed.headers["Content-Type"].startswith("text/csv")
    assert (
        api(
            emu, "PATCH", f"jobs/ingest/{job['id']}", token=token, json={"state": "UploadComplete"}
        ).status_code
        == 409
    )
    listing = api(emu, "GET", "jobs/ingest", token=token).json()
    assert listing["done"] is True and job["id"] in {j["id"] for j in listing["records"]}
    assert api(emu, "DELETE", f"jobs/ingest/{job['id']}", token=token).status_code == 204
    assert api(emu, "GET", f"jobs/ingest/{job['id']}", token=token).status_code == 404
    time.sleep(0.1)
    assert emu.records("Account") == []


def test_simple_salesforce_bulk2(emu: SalesforceEmulator, sf: Salesforce) -> None:
    records = [{"External_Id__c": str(i), "Name": f"Acc {i}"} for i in range(500)]
    res = sf.bulk2.Account.upsert(records=records, external_id_field="External_Id__c", wait=0.05)
    assert res[0]["numberRecordsProcessed"] == 500 and res[0]["numberRecordsFailed"] == 0
    assert len(emu.records("Account")) == 500
    failed = sf.bulk2.Account.get_failed_records(res[0]["job_id"])
    header = failed.strip().split(",")
    assert header[:2] == ['"sf__Id"', '"sf__Error"'] and sorted(header[2:]) == [
        '"External_Id__c"',
        '"Name"',
    ]
    res = sf.bulk2.Account.insert(records=[{"Name": ""}], wait=0.05)
    assert res[0]["numberRecordsFailed"] == 1
    assert "REQUIRED_FIELD_MISSING" in sf.bulk2.Account.get_failed_records(res[0]["job_id"])


def test_bulk_delimiters_line_endings_and_hard_delete(emu: SalesforceEmulator) -> None:
    token = emu.session_token()
    spec = {
        "object": "Account",
        "operation": "insert",
        "columnDelimiter": "PIPE",
        "lineEnding": "CRLF",
    }
    info, _ = run_job(emu, token, spec, 'Name|Description\r\nA|has, comma\r\nB|"multi\r\nline"\r\n')
    assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0
    assert info["columnDelimiter"] == "PIPE" and info["lineEnding"] == "CRLF"
    by_name = {r["Name"]: r for r in emu.records("Account")}
    assert (
        by_name["A"]["Description"] == "has, comma"
        and by_name["B"]["Description"] == "multi\r\nline"
    )
    ok = api(emu, "GET", f"jobs/ingest/{info['id']}/successfulResults", token=token).text
    assert ok.startswith('"sf__Id"|"sf__Created"|"Name"|"Description"\r\n')
    ids = "\n".join(r["Id"] for r in emu.records("Account"))
    info, _ = run_job(emu, token, {"object": "Account", "operation": "hardDelete"}, f"Id\n{ids}\n")
    assert info["numberRecordsFailed"] == 0 and emu.records("Account") == []
