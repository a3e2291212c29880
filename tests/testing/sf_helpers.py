"""Shared helpers for the Salesforce emulator tests."""

from __future__ import annotations

from typing import Any

import requests

from cdc_bridge.testing.salesforce import SalesforceEmulator, emulator_session


def api(
    emu: SalesforceEmulator, method: str, path: str, token: str | None = None, **kw: Any
) -> requests.Response:
    """A plain requests call to /services/data/v{version}/{path} with a bearer session."""
    headers = kw.pop("headers", {})
    headers.setdefault("Authorization", f"Bearer {token or emu.session_token()}")
    url = path if path.startswith("/") else f"/services/data/v{emu.api_version}/{path}"
    with emulator_session(emu) as session:
        return session.request(method, emu.url + url, headers=headers, **kw)


def errors(resp: requests.Response) -> list[str]:
    """The errorCode list of a whole-request error body."""
    return [e["errorCode"] for e in resp.json()]
