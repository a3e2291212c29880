"""The Salesforce login keys are one model serving the sink and the source: the same defaults,
the same validation and messages, each naming its own kind and timeout unit."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cdc_bridge._salesforce.settings import SalesforceAuthSettings
from cdc_bridge.sinks.salesforce.config import SalesforceSinkConfig
from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig

LOGIN = {
    "auth": "password",
    "client_id": "id",
    "client_secret": "secret",
    "username": "u@example.com",
    "password": "pw",
}
KINDS: list[tuple[type[SalesforceAuthSettings], dict[str, Any]]] = [
    (SalesforceSinkConfig, {"name": "crm", "kind": "salesforce"}),
    (SalesforceSourceConfig, {"name": "sf", "kind": "salesforce", "objects": ["Account"]}),
]
IDS = ["sink", "source"]


@pytest.mark.parametrize(("model", "own"), KINDS, ids=IDS)
def test_login_keys_validate_alike(
    model: type[SalesforceAuthSettings], own: dict[str, Any]
) -> None:
    cfg = model.model_validate({**own, **LOGIN, "api_version": "v62.0"})
    assert cfg.api_version == "62.0" and cfg.login_url == "https://login.salesforce.com"
    assert cfg.label() == f"{model.role} {own['name']!r}"
    assert cfg.http_timeout_s() == 60.0
    with pytest.raises(ValidationError, match=r"expected a version like '61\.0', got '62'"):
        model.model_validate({**own, **LOGIN, "api_version": "62"})


@pytest.mark.parametrize(("model", "own"), KINDS, ids=IDS)
def test_missing_login_keys_are_named_for_the_kind(
    model: type[SalesforceAuthSettings], own: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate({**own, "auth": "jwt", "client_id": "id"})
    message = str(info.value)
    assert (
        "auth = 'jwt' needs client_id, username and private_key_file; "
        f"missing: username, private_key_file (set them on this {model.role}, "
        "secrets as ${ENV_VAR})"
    ) in message, message
