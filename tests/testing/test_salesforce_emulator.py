"""Salesforce emulator: sObject REST resources driven through the real simple-salesforce client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from cdc_bridge.testing.salesforce import SalesforceEmulator, simple_salesforce_client, to18
from cdc_bridge.testing.salesforce.ids import checksum, is_id

from .sf_helpers import api, errors

CUSTOM = {
    "name": "Invoice__c",
    "fields": [
        {
            "name": "External_Id__c",
            "type": "string",
            "length": 40,
            "externalId": True,
            "unique": True,
        },
        {"name": "Legacy_Key__c", "type": "string", "length": 40, "externalId": True},
        {"name": "Amount__c", "type": "currency", "precision": 10, "scale": 2, "nillable": False},
        {
            "name": "Paid__c",
            "type": "boolean",
            "nillable": False,
            "defaultedOnCreate": True,
            "defaultValue": False,
        },
        {"name": "Due__c", "type": "date"},
        {"name": "Sent_At__c", "type": "datetime"},
        {
            "name": "Status__c",
            "type": "picklist",
            "picklistValues": ["Draft", "Sent"],
            "restrictedPicklist": True,
        },
        {"name": "Account__c", "type": "reference", "referenceTo": ["Account"]},
        {"name": "Count__c", "type": "int"},
    ],
}


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(objects=[CUSTOM], bulk_delay=0.01) as e:
        yield e


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    return simple_salesforce_client(emu)


def test_soap_login_gives_session_and_instance(emu: SalesforceEmulator, sf: Salesforce) -> None:
    assert sf.sf_instance == f"127.0.0.1:{emu.port}"
    assert sf.session_id.startswith("00D")
    assert (
        emu.call_log[0].kind == "auth"
        and emu.call_log[0].path == f"/services/Soap/u/{emu.api_version}"
    )


def test_ids_are_18_chars_with_prefix_and_checksum(sf: Salesforce) -> None:
    acc = sf.Account.create({"Name": "Acme"})["id"]
    con = sf.Contact.create({"LastName": "Doe", "AccountId": acc})["id"]
    opp = sf.Opportunity.create(
        {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2025-01-31"}
    )["id"]
    inv = sf.Invoice__c.create({"Amount__c": 1})["id"]
    assert (acc[:3], con[:3], opp[:3]) == ("001", "003", "006")
    assert inv.startswith("a0")
    for rid in (acc, con, opp, inv):
        assert len(rid) == 18 and checksum(rid[:15]) == rid[15:] and is_id(rid)
    # 15-char ids are accepted and normalised
    assert sf.Account.get(acc[:15])["Id"] == acc
    assert to18(acc[:15]) == acc
    # the case-insensitive 18-char form resolves to the same record
    assert to18(acc.lower()[:15] + acc[15:]) == acc


def test_create_get_update_delete(emu: SalesforceEmulator, sf: Salesforce) -> None:
    res = sf.Account.create({"Name": "Acme", "NumberOfEmployees": 12, "AnnualRevenue": "1000.5"})
    assert res["success"] is True and res["errors"] == []
    rec = sf.Account.get(res["id"])
    assert rec["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v{emu.api_version}/sobjects/Account/{res['id']}",
    }
    assert (rec["Name"], rec["NumberOfEmployees"], rec["AnnualRevenue"], rec["IsDeleted"]) == (
        "Acme",
        12,
        1000.5,
        False,
    )
    assert sf.Account.update(res["id"], {"Name": "Acme 2"}) == 204
    assert emu.records("Account")[0]["Name"] == "Acme 2"
    assert sf.Account.delete(res["id"]) == 204
    assert emu.records("Account") == []
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Account.get(res["id"])
    assert exc.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Account.get("001000000000000AAA")
    assert exc.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get("not-an-id")


def test_upsert_by_external_id_statuses_and_get_delete(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    assert sf.Account.upsert("External_Id__c/42", {"Name": "A"}) == 201
    assert sf.Account.upsert("External_Id__c/42", {"Name": "B"}) == 200
    resp = api(emu, "PATCH", "sobjects/Account/External_Id__c/43", json={"Name": "C"})
    assert (
        resp.status_code == 201
        and resp.json()["created"] is True
        and resp.json()["success"] is True
    )
    resp = api(emu, "PATCH", "sobjects/Account/External_Id__c/43", json={"Name": "D"})
    assert (
        resp.status_code == 200
        and resp.json()["created"] is False
        and resp.json()["id"].startswith("001")
    )
    # before API v46 an update by upsert answered 204 with no body
    old = api(
        emu, "PATCH", "/services/data/v45.0/sobjects/Account/External_Id__c/43", json={"Name": "E"}
    )
    assert old.status_code == 204 and old.content == b""
    assert sorted(r["Name"] for r in emu.records("Account")) == ["B", "E"]
    assert sf.Account.get_by_custom_id("External_Id__c", "42")["Name"] == "B"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get_by_custom_id("External_Id__c", "nope")
    assert api(emu, "DELETE", "sobjects/Account/External_Id__c/42").status_code == 204
    assert [r["External_Id__c"] for r in emu.records("Account")] == ["43"]
    assert api(emu, "DELETE", "sobjects/Account/External_Id__c/42").status_code == 404
    # a field that is not an external id cannot address records
    assert api(emu, "PATCH", "sobjects/Account/Phone/1", json={"Name": "x"}).status_code == 404
    # external ids match case-insensitively (default for text external ids)
    assert sf.Account.upsert("External_Id__c/abc", {"Name": "lower"}) == 201
    assert sf.Account.upsert("External_Id__c/ABC", {"Name": "upper"}) == 200


def test_upsert_multiple_matches_answers_300(emu: SalesforceEmulator, sf: Salesforce) -> None:
    sf.Invoice__c.create({"Amount__c": 1, "Legacy_Key__c": "L1"})
    sf.Invoice__c.create({"Amount__c": 2, "Legacy_Key__c": "L1"})
    with pytest.raises(SalesforceMoreThanOneRecord) as exc:
        sf.Invoice__c.upsert("Legacy_Key__c/L1", {"Amount__c": 3})
    assert len(exc.value.content) == 2 and all(
        "/sobjects/Invoice__c/a0" in u for u in exc.value.content
    )
    assert api(emu, "GET", "sobjects/Invoice__c/Legacy_Key__c/L1").status_code == 300


def test_describe_and_global_describe(emu: SalesforceEmulator, sf: Salesforce) -> None:
    d = sf.Opportunity.describe()
    assert d["name"] == "Opportunity" and d["keyPrefix"] == "006"
    fields = {f["name"]: f for f in d["fields"]}
    stage = fields["StageName"]
    assert (
        stage["type"] == "picklist"
        and stage["restrictedPicklist"] is True
        and stage["nillable"] is False
    )
    assert {
        "value": "Closed Won",
        "label": "Closed Won",
        "active": True,
        "defaultValue": False,
        "validFor": None,
    } in stage["picklistValues"]
    acc = fields["AccountId"]
    assert (acc["type"], acc["referenceTo"], acc["relationshipName"]) == (
        "reference",
        ["Account"],
        "Account",
    )
    ext = fields["External_Id__c"]
    assert ext["externalId"] and ext["idLookup"] and ext["unique"] and ext["length"] == 255
    assert fields["Id"]["createable"] is False and fields["IsClosed"]["defaultedOnCreate"] is True
    for key in (
        "name",
        "type",
        "length",
        "nillable",
        "createable",
        "updateable",
        "externalId",
        "idLookup",
        "unique",
        "picklistValues",
        "referenceTo",
        "relationshipName",
        "defaultedOnCreate",
    ):
        assert key in ext
    inv = {f["name"]: f for f in sf.Invoice__c.describe()["fields"]}
    assert inv["Account__c"]["relationshipName"] == "Account__r"
    assert inv["Name"]["autoNumber"] is True
    g = sf.describe()
    assert g["maxBatchSize"] == 200
    names = {o["name"]: o for o in g["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "Invoice__c"} <= set(names)
    assert names["Invoice__c"]["custom"] is True
    kinds = [c.kind for c in emu.call_log]
    assert kinds.count("describe") == 3


@pytest.mark.parametrize(
    ("sobject", "body", "code", "fields"),
    [
        ("Account", {"Phone": "1"}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ("Opportunity", {"Name": "x"}, "REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"]),
        ("Account", {"Name": "x", "Bogus__c": 1}, "INVALID_FIELD", None),
        ("Account", {"Name": "x" * 256}, "STRING_TOO_LONG", ["Name"]),
        (
            "Opportunity",
            {"Name": "x", "StageName": "Dreaming", "CloseDate": "2025-01-01"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["StageName"],
        ),
        ("Contact", {"LastName": "x", "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
        ("Contact", {"LastName": "x", "AccountId": "garbage"}, "MALFORMED_ID", ["AccountId"]),
        (
            "Contact",
            {"LastName": "x", "AccountId": "001000000000001AAA"},
            "INVALID_CROSS_REFERENCE_KEY",
            ["AccountId"],
        ),
        ("Contact", {"LastName": "x", "Name": "y"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Name"]),
        ("Account", {"Name": "x", "Id": "001000000000001AAA"}, "INVALID_FIELD", None),
        (
            "Contact",
            {"LastName": "x", "AccountId": "003000000000001AAA"},
            "FIELD_INTEGRITY_EXCEPTION",
            ["AccountId"],
        ),
        ("Invoice__c", {"Amount__c": 123456789}, "NUMBER_OUTSIDE_VALID_RANGE", ["Amount__c"]),
        (
            "Contact",
            {"LastName": "x", "Account": {"External_Id__c": "missing"}},
            "INVALID_FIELD",
            None,
        ),
    ],
)
def test_single_record_validation_errors(
    sf: Salesforce, sobject: str, body: dict, code: str, fields: list[str] | None
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        getattr(sf, sobject).create(body)
    err = exc.value.content[0]
    assert exc.value.status == 400 and err["errorCode"] == code
    if fields is not None:
        assert err["fields"] == fields


@pytest.mark.parametrize(
    "body",
    [
        {"Amount__c": "lots"},
        {"Amount__c": 1, "Paid__c": 3},
        {"Amount__c": 1, "Due__c": "2025-13-45"},
        {"Amount__c": 1, "Sent_At__c": "yesterday"},
        {"Amount__c": 1, "Count__c": 1.5},
    ],
)
def test_type_errors_are_json_parser_errors(sf: Salesforce, body: dict) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Invoice__c.create(body)
    assert exc.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_type_conversions_are_stored_like_salesforce(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    rid = sf.Invoice__c.create(
        {
            "Amount__c": "12.50",
            "Paid__c": "true",
            "Due__c": "2025-02-28",
            "Sent_At__c": "2025-02-01T10:20:30+02:00",
            "Count__c": 3,
        }
    )["id"]
    rec = sf.Invoice__c.get(rid)
    assert rec["Amount__c"] == 12.5 and rec["Paid__c"] is True and rec["Due__c"] == "2025-02-28"
    assert rec["Sent_At__c"] == "2025-02-01T08:20:30.000+0000" and rec["Count__c"] == 3
    assert rec["Name"].startswith("INV-")


def test_duplicates_deleted_references_and_relationship_syntax(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    acc = sf.Account.create({"Name": "Parent", "External_Id__c": "P1"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "Other", "External_Id__c": "p1"})
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    assert acc in exc.value.content[0]["message"]
    con = sf.Contact.create({"LastName": "Kid", "Account": {"External_Id__c": "P1"}})["id"]
    assert sf.Contact.get(con)["AccountId"] == acc
    inv = sf.Invoice__c.create({"Amount__c": 5, "Account__r": {"External_Id__c": "P1"}})["id"]
    assert sf.Invoice__c.get(inv)["Account__c"] == acc
    sf.Account.delete(acc)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.create({"LastName": "Late", "AccountId": acc})
    assert exc.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as nf:
        sf.Account.update(acc, {"Name": "ghost"})
    assert nf.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_update_rules(sf: Salesforce) -> None:
    rid = sf.Opportunity.create(
        {"Name": "D", "StageName": "Prospecting", "CloseDate": "2025-01-01"}
    )["id"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.update(rid, {"IsClosed": True})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.update(rid, {"Name": None})
    assert exc.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    sf.Opportunity.update(rid, {"StageName": "Closed Won"})
    assert sf.Opportunity.get(rid)["IsClosed"] is True


def test_query_subset(emu: SalesforceEmulator, sf: Salesforce) -> None:
    for i in range(5):
        sf.Account.create({"Name": f"N{i}", "External_Id__c": str(i), "NumberOfEmployees": i})
    r = sf.query("SELECT Id, Name FROM Account WHERE External_Id__c IN ('1', '3', '9')")
    assert r["totalSize"] == 2 and r["done"] is True
    assert sorted(x["Name"] for x in r["records"]) == ["N1", "N3"]
    assert set(r["records"][0]) == {"attributes", "Id", "Name"}
    assert r["records"][0]["attributes"]["type"] == "Account"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 5
    assert sf.query("SELECT COUNT() FROM Account WHERE NumberOfEmployees >= 3")["totalSize"] == 2
    r = sf.query(
        "SELECT Name FROM Account WHERE Name LIKE 'n%' ORDER BY NumberOfEmployees DESC LIMIT 2"
    )
    assert [x["Name"] for x in r["records"]] == ["N4", "N3"]
    acc = r["records"][0]["attributes"]["url"].rsplit("/", 1)[1]
    sf.Contact.create({"LastName": "C", "AccountId": acc})
    r = sf.query("SELECT LastName, Account.Name FROM Contact WHERE Account.External_Id__c = '4'")
    assert r["records"][0]["Account"]["Name"] == "N4"
    assert (
        sf.query(
            "SELECT Id FROM Account WHERE Name = 'n0' AND (NumberOfEmployees = 0 OR Name = null)"
        )["totalSize"]
        == 1
    )
    for bad, code in [
        ("SELECT Name FROM Account GROUP BY Name", "MALFORMED_QUERY"),
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Name, COUNT(Id) FROM Account", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
    ]:
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.query(bad)
        assert exc.value.content[0]["errorCode"] == code, bad
    assert emu.calls("query") >= 8


def test_query_pagination_and_query_all(emu: SalesforceEmulator, sf: Salesforce) -> None:
    resp = api(
        emu,
        "POST",
        "composite/sobjects",
        json={
            "records": [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(200)]
        },
    )
    assert all(r["success"] for r in resp.json())
    resp = api(
        emu,
        "POST",
        "composite/sobjects",
        json={
            "records": [{"attributes": {"type": "Account"}, "Name": f"B{i}"} for i in range(200)]
        },
    )
    first = api(
        emu,
        "GET",
        "query",
        params={"q": "SELECT Id FROM Account"},
        headers={"Sforce-Query-Options": "batchSize=300"},
    ).json()
    assert first["done"] is False and len(first["records"]) == 300 and first["totalSize"] == 400
    second = api(emu, "GET", first["nextRecordsUrl"]).json()
    assert second["done"] is True and len(second["records"]) == 100
    allr = sf.query_all("SELECT Id FROM Account")
    assert allr["totalSize"] == 400 and len({r["Id"] for r in allr["records"]}) == 400
    rid = allr["records"][0]["Id"]
    sf.Account.delete(rid)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 399
    assert (
        sf.query_all("SELECT Id FROM Account WHERE IsDeleted = true", include_deleted=True)[
            "totalSize"
        ]
        == 1
    )


def test_limits_and_usage_header(emu: SalesforceEmulator, sf: Salesforce) -> None:
    sf.Account.create({"Name": "x"})
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - 2
    resp = api(emu, "GET", "limits")
    assert resp.headers["Sforce-Limit-Info"] == "api-usage=3/15000"
    assert emu.calls("limits") == 2


def test_session_errors(emu: SalesforceEmulator, sf: Salesforce) -> None:
    resp = api(emu, "GET", "sobjects", token="bogus")
    assert resp.status_code == 401
    assert resp.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert api(emu, "GET", "sobjects", headers={"Authorization": ""}).status_code == 401
    emu.expire_sessions()
    emu.reset_counters()
    # simple-salesforce answers a 401 by logging in again and retrying the call
    sf.Account.create({"Name": "late"})
    assert [(c.kind, c.status) for c in emu.call_log] == [
        ("data", 401),
        ("auth", 200),
        ("data", 201),
    ]
    direct = Salesforce(session_id=emu.session_token(), instance_url=emu.url, session=sf.session)
    emu.expire_sessions()
    with pytest.raises(SalesforceExpiredSession):
        direct.Account.create({"Name": "later"})


def test_unknown_sobject_and_version(emu: SalesforceEmulator) -> None:
    assert errors(api(emu, "GET", "sobjects/Nope__c/describe")) == ["NOT_FOUND"]
    assert api(emu, "GET", "/services/data/v99.0/sobjects").status_code == 404
    versions = api(emu, "GET", "/services/data").json()
    assert versions[-1]["version"] == emu.api_version


def test_malformed_json_body(emu: SalesforceEmulator) -> None:
    resp = api(
        emu, "POST", "sobjects/Account", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and errors(resp) == ["JSON_PARSER_ERROR"]


def test_general_error_type_for_simple_salesforce(emu: SalesforceEmulator, sf: Salesforce) -> None:
    """simple-salesforce maps 5xx to SalesforceGeneralError; the emulator never 500s on a bad path."""
    resp = api(emu, "GET", "sobjects/Account/describe/extra/segment")
    assert resp.status_code == 404
    assert SalesforceGeneralError is not None
