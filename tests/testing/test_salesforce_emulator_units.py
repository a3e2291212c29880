"""Salesforce emulator pieces without a server: ids, schema JSON, SOQL parsing, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from cdc_bridge.testing.salesforce import checksum, objects_from_json, to18
from cdc_bridge.testing.salesforce.errors import ApiError
from cdc_bridge.testing.salesforce.ids import IdFactory, custom_prefix
from cdc_bridge.testing.salesforce.schema import default_objects
from cdc_bridge.testing.salesforce.soql import parse
from cdc_bridge.testing.salesforce.store import Store


def test_checksum_matches_known_salesforce_ids() -> None:
    # published examples of 15 -> 18 character conversion
    assert checksum("001A0000006Vm9r") == "IAC"
    assert to18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert to18("001a0000006vm9rIAC") == "001A0000006Vm9rIAC"  # 18-char ids are case-insensitive
    assert to18("bad id") is None and to18("001A0000006Vm9rXYZ") is not None


def test_id_factory_and_prefixes() -> None:
    ids = IdFactory()
    made = {ids.new("001") for _ in range(1000)}
    assert len(made) == 1000 and all(len(i) == 18 and i.startswith("001") for i in made)
    assert custom_prefix(0) == "a0A" and custom_prefix(1) == "a0B"


def test_schema_json_and_auto_fields() -> None:
    objs = objects_from_json(
        {
            "objects": [
                {
                    "name": "Thing__c",
                    "keyPrefix": "a5Z",
                    "fields": [
                        {"name": "Key__c", "externalId": True, "unique": True},
                        {"name": "Parent__c", "type": "reference", "referenceTo": "Account"},
                        {"name": "Price__c", "type": "currency"},
                    ],
                }
            ]
        }
    )
    thing = objs[0]
    assert thing.key_prefix == "a5Z"
    f = thing.field("parent__c")
    assert f is not None and f.relationship_name == "Parent__r" and f.reference_to == ["Account"]
    assert thing.field("Key__c").length == 255  # type: ignore[union-attr]
    assert thing.field("Price__c").precision == 18  # type: ignore[union-attr]
    assert {"Id", "Name", "CreatedDate", "IsDeleted"} <= {x.name for x in thing.fields}
    with pytest.raises(ValueError):
        objects_from_json([{"fields": []}])


def test_soql_errors() -> None:
    store = Store(default_objects())
    for q in [
        "",
        "DELETE FROM Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account LIMIT x",
        "SELECT Id FROM Account WHERE Name = 'x' GROUP BY Name",
        "SELECT Id FROM Account WITH SECURITY_ENFORCED",
    ]:
        with pytest.raises(ApiError) as exc:
            parse(store, q)
        assert exc.value.code == "MALFORMED_QUERY", q
    assert (
        parse(
            store,
            "select id, name from account where name != 'x' order by name asc nulls last limit 5 offset 1",
        ).limit
        == 5
    )


def test_cli_serves_plain_http(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps([{"name": "Widget__c", "fields": [{"name": "Ext__c", "externalId": True}]}])
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cdc_bridge.testing.salesforce",
            "--port",
            "0",
            "--http",
            "--schema",
            str(schema),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert info["url"].startswith("http://127.0.0.1:") and info["ca_file"] is None
            assert "Widget__c" in info["objects"]
            tok = requests.post(
                info["token_url"],
                timeout=5,
                data={
                    "grant_type": "password",
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                    "username": info["username"],
                    "password": info["password"],
                },
            ).json()
            r = requests.patch(
                f"{tok['instance_url']}/services/data/v61.0/sobjects/Widget__c/Ext__c/w1",
                json={},
                headers={"Authorization": f"Bearer {tok['access_token']}"},
                timeout=5,
            )
            assert r.status_code == 201 and r.json()["id"].startswith("a0A")
        finally:
            proc.terminate()
            assert proc.wait(10) == 0


def test_cli_reports_bad_schema(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-m", "cdc_bridge.testing.salesforce", "--schema", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 2 and "cannot load --schema" in out.stderr


def test_advertised_host_is_used_in_urls_and_certificate() -> None:
    from cdc_bridge.testing.salesforce import SalesforceEmulator, simple_salesforce_client

    with SalesforceEmulator(advertised_host="localhost") as emu:
        assert emu.url == f"https://localhost:{emu.port}"
        sf = simple_salesforce_client(emu)
        assert sf.sf_instance == f"localhost:{emu.port}"
        assert sf.Account.create({"Name": "via localhost"})["success"] is True
