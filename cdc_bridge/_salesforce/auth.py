"""Salesforce login: JWT bearer, client credentials, username-password, or a given session.

Shared by the Salesforce sink and source (keys in :mod:`cdc_bridge._salesforce.settings`).
One :class:`Authenticator` per sink or source holds the current access token. When a call answers
INVALID_SESSION_ID the client asks :meth:`Authenticator.refresh` for a new token with the
token it used, so concurrent failures cause one login, not many, and then repeats the call.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from cdc_bridge._salesforce.settings import SalesforceAuthSettings
from cdc_bridge.errors import ConfigError, FatalError, RetriableError

__all__ = ["Authenticator", "Token", "http_session", "tls_verification_failed"]

log = logging.getLogger(__name__)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class _VerifyAdapter(HTTPAdapter):
    """Verifies TLS against ``ca_bundle`` whatever REQUESTS_CA_BUNDLE says.

    ``requests`` merges REQUESTS_CA_BUNDLE over ``Session.verify``; the adapter sees the
    final ``verify`` argument, so forcing it here is the one reliable place.
    """

    def __init__(self, ca_bundle: str) -> None:
        super().__init__(pool_connections=4, pool_maxsize=8)
        self._ca = ca_bundle

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs["verify"] = self._ca
        return super().send(request, *args, **kwargs)


def http_session(ca_bundle: str | None) -> requests.Session:
    """A ``requests.Session`` that trusts ``ca_bundle`` (when given) for every https URL."""
    session = requests.Session()
    if ca_bundle:
        session.mount("https://", _VerifyAdapter(ca_bundle))
    session.headers["User-Agent"] = "cdc-bridge"
    return session


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the instance it is valid for."""

    access_token: str
    instance_url: str
    issued_at: float
    org_id: str = ""  # the org (tenant) id, needed by the Pub/Sub API


def _org_id(body: dict[str, Any], access_token: str) -> str:
    """The org id from the token response's identity URL (``…/id/<org>/<user>``).

    Falls back to the access token itself, whose first part (before ``!``) is the org id.
    """
    ident = str(body.get("id") or "")
    parts = [p for p in urlsplit(ident).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "id":
        return parts[-2]
    head, sep, _ = access_token.partition("!")
    return head if sep else ""


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


class Authenticator:
    """Logs in with the configured flow and hands out the current token."""

    def __init__(
        self, config: SalesforceAuthSettings, http: requests.Session | None = None
    ) -> None:
        self.config = config
        self.http = http or http_session(config.ca_bundle)
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.logins = 0

    # -- public ----------------------------------------------------------------------------

    def token(self) -> Token:
        """The current token; logs in on first use."""
        with self._lock:
            if self._token is None:
                self._token = self._login()
            return self._token

    def refresh(self, stale: Token | None) -> Token:
        """A new token after ``stale`` was refused (no second login if another thread did it)."""
        with self._lock:
            if self._token is not None and stale is not None and self._token != stale:
                return self._token
            if self.config.auth == "session":
                raise FatalError(
                    f"{self.config.label()}: the Salesforce session (auth = 'session') expired "
                    "and cannot be refreshed; supply a new session_id or use auth = 'jwt' / "
                    "'client_credentials' / 'password'"
                )
            log.info("salesforce %s: session expired, logging in again", self.config.label())
            self._token = self._login()
            return self._token

    # -- flows -----------------------------------------------------------------------------

    def _login(self) -> Token:
        c = self.config
        if c.auth == "session":
            assert c.instance_url is not None
            sid = _secret(c.session_id)
            return Token(sid, c.instance_url.rstrip("/"), time.time(), _org_id({}, sid))
        form: dict[str, str]
        if c.auth == "password":
            form = {
                "grant_type": "password",
                "client_id": c.client_id or "",
                "client_secret": _secret(c.client_secret),
                "username": c.username or "",
                "password": _secret(c.password) + _secret(c.security_token),
            }
        elif c.auth == "client_credentials":
            form = {
                "grant_type": "client_credentials",
                "client_id": c.client_id or "",
                "client_secret": _secret(c.client_secret),
            }
        else:
            form = {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        url = c.login_url.rstrip("/") + "/services/oauth2/token"
        try:
            resp = self.http.post(url, data=form, timeout=c.http_timeout_s())
        except requests.exceptions.SSLError as exc:
            if not tls_verification_failed(exc):  # reset or EOF mid-handshake: passing
                raise RetriableError(
                    f"TLS handshake with Salesforce login {c.login_url} was cut: {exc}"
                ) from exc
            raise ConfigError(
                f"{c.label()}: TLS verification of {c.login_url} failed ({exc}); "
                "set ca_bundle to the CA file that signed its certificate"
            ) from exc
        except requests.RequestException as exc:
            raise RetriableError(f"cannot reach Salesforce login {c.login_url}: {exc}") from exc
        if resp.status_code >= 500:
            raise RetriableError(f"Salesforce login {url} answered {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200 or "access_token" not in body:
            err = body.get("error", resp.status_code)
            desc = body.get("error_description", resp.text[:200])
            raise ConfigError(
                f"{c.label()}: Salesforce login (auth = {c.auth!r}) at {c.login_url} failed: "
                f"{err}: {desc}. {_HINTS.get(c.auth, '')}".strip()
            )
        self.logins += 1
        instance = (c.instance_url or body.get("instance_url") or "").rstrip("/")
        if not instance:
            raise ConfigError(
                f"{c.label()}: the token response has no instance_url; set instance_url"
            )
        return Token(
            body["access_token"], instance, time.time(), _org_id(body, body["access_token"])
        )

    def _assertion(self) -> str:
        import jwt  # PyJWT (a simple-salesforce dependency)

        c = self.config
        assert c.private_key_file is not None
        try:
            with open(c.private_key_file, "rb") as fh:
                key = fh.read()
        except OSError as exc:
            raise ConfigError(
                f"{c.label()}: cannot read private_key_file {c.private_key_file!r}: {exc.strerror}"
            ) from exc
        claims = {
            "iss": c.client_id,
            "sub": c.username,
            "aud": _audience(c.login_url),
            "exp": int(time.time()) + 180,
        }
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.exceptions.PyJWTError) as exc:
            raise ConfigError(
                f"{c.label()}: private_key_file {c.private_key_file!r} is not a usable RSA "
                f"private key in PEM format ({exc})"
            ) from exc


def _audience(login_url: str) -> str:
    """JWT ``aud``: Salesforce wants its login server, not the My Domain host.

    ``*.sandbox.my.salesforce.com`` -> test.salesforce.com, ``*.my.salesforce.com`` ->
    login.salesforce.com; login/test hosts, Experience Cloud sites and private endpoints (the
    emulator) are used as given.
    """
    url = login_url.rstrip("/")
    host = urlsplit(url).hostname or ""
    if host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host.endswith(".my.salesforce.com"):
        return "https://login.salesforce.com"
    return url


_HINTS = {
    "jwt": "Check client_id (consumer key), username, that the certificate of private_key_file "
    "is uploaded to the connected app and the user is pre-authorized.",
    "client_credentials": "Check client_id / client_secret, that the client credentials flow "
    "is enabled with a run-as user, and that login_url is your My Domain URL.",
    "password": "Check client_id / client_secret, username, password and security_token "
    "(appended to the password unless the IP range is trusted).",
}


def tls_verification_failed(exc: BaseException) -> bool:
    """Whether a TLS error (as ``requests`` raises it) is a real certificate verification
    failure -- a configuration problem (``ca_bundle``) -- rather than the connection being
    reset or closed during the handshake, which is a passing network failure to retry."""
    import ssl

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
        todo += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text
