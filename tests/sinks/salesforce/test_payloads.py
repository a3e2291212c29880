"""Request bodies: Collections JSON records, Bulk API 2.0 CSV, SOQL literals."""

from __future__ import annotations

import csv
import io

from cdc_bridge.sinks.salesforce.sink import csv_payload, json_record, soql_literal


def test_json_record_nests_relationships() -> None:
    assert json_record({"Name": "x", "Account__r.Ext__c": "9", "AccountId": None}) == {
        "Name": "x",
        "Account__r": {"Ext__c": "9"},
        "AccountId": None,
    }


def test_csv_nulls_missing_quotes_and_booleans() -> None:
    data, cols = csv_payload(
        [
            {"Ext__c": "1", "Name": 'He said "hi", then\nleft', "Flag__c": True},
            {"Ext__c": "2", "Name": None, "Account__r.Ext__c": "7"},
        ]
    )
    assert cols == ["Ext__c", "Name", "Flag__c", "Account__r.Ext__c"]
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[1] == ["1", 'He said "hi", then\nleft', "true", ""]
    assert rows[2] == ["2", "#N/A", "", "7"]


def test_soql_literals() -> None:
    assert soql_literal("O'Brien\\x") == "'O\\'Brien\\\\x'"
    assert soql_literal("42", numeric=True) == "42"
    assert soql_literal("4x", numeric=True) == "'4x'"
