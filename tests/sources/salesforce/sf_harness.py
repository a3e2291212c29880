"""Helpers for the Salesforce source tests: configs for the emulator, a topic reader, REST
writes as a bridge or another API client (sources run on ``cdc_bridge.testing.sources``)."""

from __future__ import annotations

from typing import Any

import requests

from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig
from cdc_bridge.testing.salesforce import SalesforceEmulator
from tests.sources.mongodb_harness import TopicReader, events

__all__ = ["TopicReader", "Writer", "events", "source_config", "source_settings"]


def source_settings(emu: SalesforceEmulator, **kw: Any) -> dict[str, Any]:
    """A password-flow ``[[sources]]`` entry that logs in to the emulator and trusts its CA."""
    return {
        "name": "sf",
        "kind": "salesforce",
        **emu.login_settings(),
        "pubsub_endpoint": emu.pubsub_endpoint,
        "objects": ["Account"],
        "snapshot": "never",
        "max_wait_ms": 50,
        **kw,
    }


def source_config(emu: SalesforceEmulator, **kw: Any) -> SalesforceSourceConfig:
    """:func:`source_settings`, validated."""
    return SalesforceSourceConfig.model_validate(source_settings(emu, **kw))


class Writer:
    """REST writes to the emulator, optionally tagged with Sforce-Call-Options: client=..."""

    def __init__(self, emu: SalesforceEmulator, client: str | None = None) -> None:
        self.emu = emu
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {emu.session_token()}"
        if client:
            self.http.headers["Sforce-Call-Options"] = f"client={client}"
        self.base = f"{emu.url}/services/data/v61.0"

    def _ok(self, resp: requests.Response) -> requests.Response:
        assert resp.status_code < 300, resp.text
        return resp

    def create(self, sobject: str, values: dict[str, Any]) -> str:
        r = self.http.post(f"{self.base}/sobjects/{sobject}", json=values, verify=self.emu.ca_file)
        return str(self._ok(r).json()["id"])

    def update(self, sobject: str, rid: str, values: dict[str, Any]) -> None:
        self._ok(
            self.http.patch(
                f"{self.base}/sobjects/{sobject}/{rid}", json=values, verify=self.emu.ca_file
            )
        )

    def delete(self, sobject: str, rid: str) -> None:
        self._ok(self.http.delete(f"{self.base}/sobjects/{sobject}/{rid}", verify=self.emu.ca_file))

    def update_many(self, sobject: str, records: list[dict[str, Any]]) -> None:
        """sObject Collections update (200 per call)."""
        for i in range(0, len(records), 200):
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **r} for r in records[i : i + 200]],
            }
            r = self.http.patch(
                f"{self.base}/composite/sobjects", json=body, verify=self.emu.ca_file
            )
            self._ok(r)
            assert all(x["success"] for x in r.json()), r.text

    def create_many(self, sobject: str, records: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(records), 200):
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **r} for r in records[i : i + 200]],
            }
            r = self._ok(
                self.http.post(
                    f"{self.base}/composite/sobjects", json=body, verify=self.emu.ca_file
                )
            )
            ids.extend(x["id"] for x in r.json())
        return ids

    def close(self) -> None:
        self.http.close()
