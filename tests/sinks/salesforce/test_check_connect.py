"""`cdc-bridge check --connect` with a Salesforce sink: login with secrets from env and files,
every mapping problem of every route reported at once, secrets never printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cdc_bridge.checks import run_checks
from cdc_bridge.cli import app
from cdc_bridge.config import load_config
from cdc_bridge.testing.salesforce import SalesforceEmulator

CONFIG = """\
[bridge]
name = "acme"
state = "sqlite:///{state}"

[kafka]
bootstrap_servers = "{bootstrap}"

[[sinks]]
name = "crm"
kind = "salesforce"
auth = "password"
login_url = "{url}"
ca_bundle = "{ca}"
client_id = "{client_id}"
client_secret_file = "secret.txt"
username = "{username}"
password = "${{SF_PASSWORD}}"
security_token = "${{SF_TOKEN}}"

[[routes]]
name = "accounts"
from = "shop.public.customers"
to = "crm"
sobject = "Account"
external_id = "External_Id__c"
[routes.fields]
Name = "name"
BillingCity = "city"

[[routes]]
name = "contacts"
from = "shop.public.contacts"
to = "crm"
sobject = "Contact"
external_id = "Email"
[routes.fields]
LastName = "last_name"
Favourite_Colour__c = "colour"
Birthdate = {{ field = "born", format = "bool" }}
"Account.Name" = "customer"
"""


def write(tmp_path: Path, emu: SalesforceEmulator, bootstrap: str) -> Path:
    c = emu.auth_config
    (tmp_path / "secret.txt").write_text(c.client_secret + "\n")
    path = tmp_path / "routes.toml"
    path.write_text(
        CONFIG.format(
            state=tmp_path / "state.db",
            bootstrap=bootstrap,
            url=emu.url,
            ca=emu.ca_file,
            client_id=c.client_id,
            username=c.username,
        )
    )
    return path


def run(path: Path, emu: SalesforceEmulator, *args: str) -> tuple[int, str]:
    env = {
        "COLUMNS": "400",
        "SF_PASSWORD": emu.auth_config.password,
        "SF_TOKEN": emu.auth_config.security_token,
    }
    result = CliRunner().invoke(app, ["check", "--config", str(path), *args], env=env)
    return result.exit_code, result.output


def test_check_connect_reports_every_mapping_problem(
    tmp_path: Path, kafka: Any, salesforce_emulator: SalesforceEmulator
) -> None:
    emu = salesforce_emulator
    path = write(tmp_path, emu, kafka.bootstrap)
    code, out = run(path, emu, "--connect")
    assert code == 1, out
    assert "sink crm (route accounts)" in out and "sink crm (route contacts)" in out
    assert out.count("FAILED") == 1  # only the contacts route
    # The same checks through the API, for the full (unwrapped) messages.
    env = {"SF_PASSWORD": emu.auth_config.password, "SF_TOKEN": emu.auth_config.security_token}
    results = {r.component: r for r in run_checks(load_config(path, env=env))}
    assert results["sink crm (route accounts)"].ok
    contacts = results["sink crm (route contacts)"]
    assert not contacts.ok
    for problem in (
        "routes.external_id: Contact.Email is not marked External ID",
        "routes.fields.Favourite_Colour__c: Contact has no field",
        "routes.fields.Birthdate: format 'bool' does not fit Contact.Birthdate, a date field",
        "routes.fields.Account.Name: Account.Name is not an External ID field",
    ):
        assert problem in contacts.message, contacts.message
    assert contacts.message.count("routes.") == 4
    assert emu.calls("data") == 0  # nothing written
    code, out = run(path, emu, "--show-config")
    assert code == 0, out
    for secret in (emu.auth_config.client_secret, emu.auth_config.security_token):
        assert secret not in out
    for key in ("client_secret", "password", "security_token"):
        assert f'{key} = "***"' in out


def test_check_connect_wrong_password_is_one_clear_line(
    tmp_path: Path, kafka: Any, salesforce_emulator: SalesforceEmulator
) -> None:
    emu = salesforce_emulator
    path = write(tmp_path, emu, kafka.bootstrap)
    env = {"COLUMNS": "400", "SF_PASSWORD": "wrong", "SF_TOKEN": "x"}
    result = CliRunner().invoke(app, ["check", "--config", str(path), "--connect"], env=env)
    assert result.exit_code == 1
    assert "login (auth = 'password')" in result.output and "invalid_grant" in result.output
    assert "wrong" not in result.output.replace("wrong_", "")
