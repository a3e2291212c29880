"""Salesforce emulator: sObject Collections (create, update, upsert, delete, retrieve)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from cdc_bridge.testing.salesforce import SalesforceEmulator, simple_salesforce_client

from .sf_helpers import api, errors


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as e:
        yield e


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    return simple_salesforce_client(emu)


def acc(name: str, **kw: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Account"}, "Name": name, **kw}


def codes(result: dict[str, Any]) -> list[str]:
    return [e["statusCode"] for e in result["errors"]]


def test_create_partial_success_in_request_order(emu: SalesforceEmulator, sf: Salesforce) -> None:
    body = {
        "allOrNone": False,
        "records": [
            acc("A"),
            {"attributes": {"type": "Account"}, "Phone": "1"},
            acc("C", Bogus__c=1),
            {"attributes": {"type": "Contact"}, "LastName": "L"},
        ],
    }
    res = sf.restful("composite/sobjects", method="POST", json=body)
    assert [r["success"] for r in res] == [True, False, False, True]
    assert (
        res[0]["id"].startswith("001") and res[3]["id"].startswith("003") and res[0]["errors"] == []
    )
    assert codes(res[1]) == ["REQUIRED_FIELD_MISSING"] and res[1]["errors"][0]["fields"] == ["Name"]
    assert "id" not in res[1]
    assert codes(res[2]) == ["INVALID_FIELD"]
    assert [r["Name"] for r in emu.records("Account")] == ["A"]
    assert emu.calls("data") == 1


def test_create_all_or_none_rolls_back(emu: SalesforceEmulator, sf: Salesforce) -> None:
    body = {
        "allOrNone": True,
        "records": [
            acc("A"),
            acc("B", External_Id__c="x"),
            acc("C" * 300),
            acc("D"),
            {"attributes": {"type": "Account"}},
        ],
    }
    res = sf.restful("composite/sobjects", method="POST", json=body)
    assert [codes(r) for r in res] == [
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK"],
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK"],
        ["STRING_TOO_LONG"],
        ["ALL_OR_NONE_OPERATION_ROLLED_BACK"],
        ["REQUIRED_FIELD_MISSING"],  # every record is validated, each reports its own error
    ]
    assert all(r["success"] is False for r in res)
    assert emu.records("Account") == []
    # the rolled-back external id is free again
    ok = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": True, "records": [acc("B", External_Id__c="x")]},
    )
    assert ok[0]["success"] is True


def test_update_collection(emu: SalesforceEmulator, sf: Salesforce) -> None:
    ids = [
        r["id"]
        for r in sf.restful(
            "composite/sobjects", method="POST", json={"records": [acc("A"), acc("B")]}
        )
    ]
    sf.Account.delete(ids[1])
    res = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "Id": ids[0], "Name": "A2"},
                {"attributes": {"type": "Account"}, "Id": ids[1], "Name": "B2"},
                {"attributes": {"type": "Account"}, "Name": "no id"},
                {"attributes": {"type": "Account"}, "Id": "001000000000009AAA", "Name": "?"},
                {"attributes": {"type": "Account"}, "Id": "bad", "Name": "?"},
                {"attributes": {"type": "Account"}, "Id": ids[0], "IsDeleted": True},
            ]
        },
    )
    assert res[0] == {"id": ids[0], "success": True, "errors": []}
    assert [codes(r) for r in res[1:]] == [
        ["ENTITY_IS_DELETED"],
        ["MISSING_ARGUMENT"],
        ["INVALID_CROSS_REFERENCE_KEY"],
        ["MALFORMED_ID"],
        ["INVALID_FIELD_FOR_INSERT_UPDATE"],
    ]
    assert emu.records("Account")[0]["Name"] == "A2"


def test_upsert_collection_created_flags_and_duplicates(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    sf.Account.upsert("External_Id__c/1", {"Name": "old"})
    res = sf.restful(
        "composite/sobjects/Account/External_Id__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                acc("one", External_Id__c="1"),
                acc("two", External_Id__c="2"),
                acc("three", External_Id__c="3"),
                acc("three again", External_Id__c="3"),
                acc("no key"),
                acc("bad", External_Id__c="4", Website="x" * 300),
            ],
        },
    )
    assert [(r["success"], r.get("created")) for r in res[:2]] == [(True, False), (True, True)]
    assert codes(res[2]) == codes(res[3]) == ["DUPLICATE_EXTERNAL_ID"]
    assert codes(res[4]) == ["MISSING_ARGUMENT"]
    assert codes(res[5]) == ["STRING_TOO_LONG"]
    assert sorted(r["Name"] for r in emu.records("Account")) == ["one", "two"]


def test_upsert_collection_relationship_and_all_or_none(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    sf.Account.upsert("External_Id__c/P", {"Name": "parent"})
    contact = {
        "attributes": {"type": "Contact"},
        "LastName": "kid",
        "External_Id__c": "c1",
        "Account": {"External_Id__c": "P"},
    }
    orphan = {
        "attributes": {"type": "Contact"},
        "LastName": "lost",
        "External_Id__c": "c2",
        "Account": {"External_Id__c": "nope"},
    }
    res = sf.restful(
        "composite/sobjects/Contact/External_Id__c",
        method="PATCH",
        json={"allOrNone": True, "records": [contact, orphan]},
    )
    assert codes(res[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"] and codes(res[1]) == [
        "INVALID_FIELD"
    ]
    assert emu.records("Contact") == []
    res = sf.restful(
        "composite/sobjects/Contact/External_Id__c",
        method="PATCH",
        json={"allOrNone": True, "records": [contact]},
    )
    assert res[0]["created"] is True
    assert emu.records("Contact")[0]["AccountId"] == emu.records("Account")[0]["Id"]


def test_delete_collection(emu: SalesforceEmulator, sf: Salesforce) -> None:
    ids = [
        r["id"]
        for r in sf.restful(
            "composite/sobjects", method="POST", json={"records": [acc("A"), acc("B"), acc("C")]}
        )
    ]
    res = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": f"{ids[0]},{ids[1]},001000000000009AAA", "allOrNone": "true"},
    )
    assert codes(res[2]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert [codes(r) for r in res[:2]] == [["ALL_OR_NONE_OPERATION_ROLLED_BACK"]] * 2
    assert len(emu.records("Account")) == 3
    res = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": f"{ids[0]},{ids[1]}", "allOrNone": "false"},
    )
    assert res == [
        {"id": ids[0], "success": True, "errors": []},
        {"id": ids[1], "success": True, "errors": []},
    ]
    res = sf.restful("composite/sobjects", method="DELETE", params={"ids": ids[0]})
    assert codes(res[0]) == ["ENTITY_IS_DELETED"]
    assert [r["Name"] for r in emu.records("Account")] == ["C"]
    assert len(emu.deleted_records("Account")) == 2


def test_retrieve_collection(emu: SalesforceEmulator, sf: Salesforce) -> None:
    ids = [
        r["id"]
        for r in sf.restful(
            "composite/sobjects", method="POST", json={"records": [acc("A"), acc("B")]}
        )
    ]
    res = sf.restful(
        "composite/sobjects/Account",
        method="GET",
        params={"ids": f"{ids[1]},001000000000009AAA", "fields": "Id,Name"},
    )
    assert res[0]["Name"] == "B" and res[1] is None


def test_more_than_200_records_is_rejected(emu: SalesforceEmulator) -> None:
    resp = api(
        emu, "POST", "composite/sobjects", json={"records": [acc(f"A{i}") for i in range(201)]}
    )
    assert resp.status_code == 400 and errors(resp) == ["EXCEEDED_ID_LIMIT"]
    ids = ",".join(["001000000000009AAA"] * 201)
    resp = api(emu, "DELETE", "composite/sobjects", params={"ids": ids})
    assert errors(resp) == ["EXCEEDED_ID_LIMIT"]
    assert emu.records("Account") == []


def test_type_error_fails_whole_collection(emu: SalesforceEmulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful(
            "composite/sobjects",
            method="POST",
            json={"records": [acc("ok"), acc("bad", NumberOfEmployees="many")]},
        )
    assert exc.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert emu.records("Account") == []


def test_missing_type_attribute(emu: SalesforceEmulator, sf: Salesforce) -> None:
    res = sf.restful("composite/sobjects", method="POST", json={"records": [{"Name": "x"}]})
    assert codes(res[0]) == ["INVALID_TYPE"]


def test_upsert_collection_multiple_matches(emu: SalesforceEmulator) -> None:
    inv = {"name": "Ledger__c", "fields": [{"name": "Key__c", "externalId": True}]}
    with SalesforceEmulator(objects=[inv]) as e:
        for _ in range(2):
            api(e, "POST", "sobjects/Ledger__c", json={"Key__c": "k"})
        res = api(
            e,
            "PATCH",
            "composite/sobjects/Ledger__c/Key__c",
            json={"records": [{"attributes": {"type": "Ledger__c"}, "Key__c": "k"}]},
        ).json()
        assert codes(res[0]) == ["DUPLICATE_EXTERNAL_ID"] and res[0]["errors"][0]["fields"] == [
            "Key__c"
        ]
        assert len(e.records("Ledger__c")) == 2
