"""Config validation, ``check --connect`` and the status probe of the salesforce source kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cdc_bridge.checks import check_source
from cdc_bridge.config import load_config
from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig
from cdc_bridge.sources.salesforce.status import probe
from cdc_bridge.status import AT_RISK, INACTIVE, LOST, OK
from cdc_bridge.testing.salesforce import SalesforceEmulator
from tests.sources.salesforce.sf_harness import source_config

BASE = {"name": "sf", "kind": "salesforce", "auth": "session", "instance_url": "https://x",
        "session_id": "00Dx!tok"}  # fmt: skip


@pytest.fixture(scope="module")
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(bulk_delay=0.02) as e:
        e.define_platform_event("Order_Placed__e", {"Order_Number__c": "string"})
        yield e


def test_config_validation_names_the_problem() -> None:
    cfg = SalesforceSourceConfig.model_validate({**BASE, "objects": ["Account", "Invoice__c"]})
    assert cfg.mode == "full" and cfg.on_echo == "drop" and cfg.echo_client == "cdc-bridge"
    with pytest.raises(ValidationError, match="nothing to capture"):
        SalesforceSourceConfig.model_validate(BASE)
    with pytest.raises(ValidationError, match="not object API names"):
        SalesforceSourceConfig.model_validate({**BASE, "objects": ["Account; DROP"]})
    with pytest.raises(ValidationError, match="not platform event channels"):
        SalesforceSourceConfig.model_validate({**BASE, "platform_events": ["Order_Placed__e"]})
    with pytest.raises(ValidationError, match="not in objects"):
        SalesforceSourceConfig.model_validate(
            {**BASE, "objects": ["Account"], "fields": {"Contact": ["Email"]}}
        )
    with pytest.raises(ValidationError, match="not `tables`"):
        SalesforceSourceConfig.model_validate({**BASE, "tables": ["Account"]})
    with pytest.raises(ValidationError, match="session_id"):
        SalesforceSourceConfig.model_validate(
            {"name": "sf", "kind": "salesforce", "auth": "session", "objects": ["Account"]}
        )


def test_routes_toml_with_a_salesforce_source_loads(tmp_path: Any) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        """
[bridge]
name = "b"
[kafka]
bootstrap_servers = "localhost:9092"
[[sources]]
name = "crm"
kind = "salesforce"
auth = "client_credentials"
login_url = "https://acme.my.salesforce.com"
client_id = "id"
client_secret = "${SF_SECRET}"
objects = ["Account", "Case"]
fields = { Account = ["Name", "BillingCity"] }
platform_events = ["/event/Order_Placed__e"]
mode = "changed_fields"
"""
    )
    cfg = load_config(path, env={"SF_SECRET": "s3cret"})
    src = cfg.sources[0]
    assert isinstance(src, SalesforceSourceConfig)
    assert src.objects == ["Account", "Case"] and src.fields == {"Account": ["Name", "BillingCity"]}
    assert "s3cret" not in repr(src)


def test_check_connect_logs_in_describes_and_checks_channels(emu: SalesforceEmulator) -> None:
    ok = check_source(source_config(emu, objects=["Account", "Contact"],
                                    platform_events=["/event/Order_Placed__e"]))  # fmt: skip
    assert ok.ok, ok.message
    bad_object = check_source(source_config(emu, objects=["Nope__c"]))
    assert not bad_object.ok and "Nope__c" in bad_object.message
    bad_event = check_source(
        source_config(emu, objects=["Account"], platform_events=["/event/Missing__e"])
    )
    assert not bad_event.ok and "/event/Missing__e" in bad_event.message
    bad_field = check_source(source_config(emu, objects=["Account"], fields={"Account": ["Nope"]}))
    assert not bad_field.ok and "fields.Account" in bad_field.message
    wrong_password = check_source(source_config(emu, password="wrong"))
    assert not wrong_password.ok and "login" in wrong_password.message.lower()


def test_status_probe_judges_retention_from_the_saved_offset() -> None:
    cfg = SalesforceSourceConfig.model_validate({**BASE, "objects": ["Account"]})
    assert probe(cfg, None, 0).state == INACTIVE
    now = int(time.time() * 1000)
    fresh = probe(
        cfg, {"replay": {"/data/AccountChangeEvent": "00"}, "commit_ms": {"Account": now}}, 0
    )
    assert fresh.state == OK and "/data/AccountChangeEvent@00" in (fresh.position or "")
    old = probe(cfg, {"replay": {}, "commit_ms": {"Account": now - 65 * 3600 * 1000}}, 0)
    assert old.state == AT_RISK
    lost = probe(cfg, {"replay": {}, "commit_ms": {"Account": now - 73 * 3600 * 1000}}, 0)
    assert lost.state == LOST and "on_position_lost" in (lost.risk or "")


def test_check_connect_reports_the_replay_position_and_asks_the_pubsub_api(
    tmp_path: Path,
) -> None:
    """check --connect with a stored position: per channel the replay id, the retention as
    far as the saved commit times tell, and the Pub/Sub API's answer to resuming there."""
    from cdc_bridge.checks import _stored_offsets
    from cdc_bridge.config import BridgeConfig
    from cdc_bridge.state import StateStore

    channel = "/data/AccountChangeEvent"
    with SalesforceEmulator(bulk_delay=0.02) as e:
        e.ui_create("Account", {"Name": "First"})
        first = e.bus.latest_replay
        e.ui_create("Account", {"Name": "Second"})
        now = int(time.time() * 1000)

        def stored(replay: int, commit_ms: int) -> dict[str, Any]:
            hex_id = replay.to_bytes(8, "big").hex()
            return {"replay": {channel: hex_id}, "commit_ms": {"Account": commit_ms}}

        fresh = check_source(source_config(e), stored(first, now))
        assert fresh.ok, fresh.message
        assert f"replay id {first.to_bytes(8, 'big').hex()}" in fresh.message
        assert "within the 72-hour retention" in fresh.message
        assert "newer events waiting" in fresh.message
        at_tip = check_source(source_config(e), stored(e.bus.latest_replay, now))
        assert at_tip.ok and "accepts it (no newer events)" in at_tip.message, at_tip.message
        none = check_source(source_config(e), None)
        assert none.ok and "no stored replay id (subscribes at LATEST)" in none.message
        old = check_source(source_config(e), stored(first, now - 80 * 3600 * 1000))
        assert "outside the 72-hour retention" in old.message, old.message
        # the events are gone from the replay log: Salesforce refuses the replay id
        e.bus.expire()
        lost = check_source(source_config(e), stored(first, now))
        assert not lost.ok and "Salesforce refuses it" in lost.message, lost.message
        assert "on_position_lost = fail" in lost.message
        tolerated = check_source(
            source_config(e, on_position_lost="resnapshot", snapshot="when_needed"),
            stored(first, now),
        )
        assert tolerated.ok and "on_position_lost = resnapshot" in tolerated.message
    # run_checks reads the positions from the state store
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(store_url, migrate=True)
    store.save_offset("sf", stored(first, now))
    store.close()
    cfg = BridgeConfig.model_validate(
        {"bridge": {"name": "b", "state": store_url}, "kafka": {"bootstrap_servers": "x:1"}}
    )
    assert _stored_offsets(cfg) == {"sf": stored(first, now)}
