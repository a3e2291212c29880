"""requests/simple-salesforce helpers that reach the emulator and trust its CA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from .emulator import SalesforceEmulator

LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com")


class EmulatorAdapter(HTTPAdapter):
    """Sends to the emulator and verifies against its CA, whatever REQUESTS_CA_BUNDLE says.

    `requests` lets REQUESTS_CA_BUNDLE override `Session.verify`; an adapter sees the final
    `verify` argument, so it is the one place where the emulator's CA can be forced.
    Requests for login.salesforce.com / test.salesforce.com are rewritten to the emulator,
    which is how simple-salesforce's SOAP/OAuth login (hard-coded hosts) reaches it.
    """

    def __init__(self, base_url: str, ca_file: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._base = urlsplit(base_url)
        self._ca = ca_file

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        request.url = urlunsplit(
            (self._base.scheme, self._base.netloc, url.path, url.query, url.fragment)
        )
        if self._ca:
            kwargs["verify"] = self._ca
        return super().send(request, *args, **kwargs)


def emulator_session(emu: SalesforceEmulator) -> requests.Session:
    """A requests.Session wired to the emulator (its own URL and the Salesforce login hosts)."""
    session = requests.Session()
    adapter = EmulatorAdapter(emu.url, emu.ca_file)
    for prefix in (emu.url, *LOGIN_HOSTS, emu.url.replace("127.0.0.1", "localhost")):
        session.mount(prefix, adapter)
    return session


def simple_salesforce_client(emu: SalesforceEmulator, **kwargs: Any) -> Any:
    """A simple_salesforce.Salesforce logged in through the emulator's SOAP login."""
    from simple_salesforce import Salesforce

    c = emu.auth_config
    return Salesforce(
        username=c.username,
        password=c.password,
        security_token=c.security_token,
        session=emulator_session(emu),
        version=kwargs.pop("version", emu.api_version),
        **kwargs,
    )
