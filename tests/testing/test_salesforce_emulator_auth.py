"""Salesforce emulator: OAuth2 token grants, JWT bearer checks and SOAP login failures."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from cdc_bridge.testing.salesforce import AuthConfig, SalesforceEmulator, emulator_session

from .sf_helpers import api


def _key_and_cert() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


KEY, CERT = _key_and_cert()
OTHER_KEY, _ = _key_and_cert()


@pytest.fixture(scope="module")
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(auth=AuthConfig(jwt_public_key=CERT)) as e:
        yield e


def token(emu: SalesforceEmulator, data: dict[str, str], **kw: object) -> tuple[int, dict]:
    resp = emulator_session(emu).post(emu.token_url, data=data, **kw)  # type: ignore[arg-type]
    return resp.status_code, resp.json()


def usable(emu: SalesforceEmulator, access_token: str) -> bool:
    return api(emu, "GET", "limits", token=access_token).status_code == 200


def test_password_grant(emu: SalesforceEmulator) -> None:
    c = emu.auth_config
    status, body = token(
        emu,
        {
            "grant_type": "password",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "username": c.username,
            "password": c.password + c.security_token,
        },
    )
    assert status == 200
    assert (
        body["instance_url"] == emu.url
        and body["token_type"] == "Bearer"
        and body["id"].startswith("https://")
    )
    assert usable(emu, body["access_token"])
    status, body = token(
        emu,
        {
            "grant_type": "password",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "username": c.username,
            "password": "wrong",
        },
    )
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "authentication failure"},
    )
    status, body = token(
        emu,
        {
            "grant_type": "password",
            "client_id": "nope",
            "client_secret": c.client_secret,
            "username": c.username,
            "password": c.password,
        },
    )
    assert (status, body["error"]) == (400, "invalid_client_id")
    status, body = token(
        emu,
        {
            "grant_type": "password",
            "client_id": c.client_id,
            "client_secret": "bad",
            "username": c.username,
            "password": c.password,
        },
    )
    assert (status, body["error"]) == (400, "invalid_client")


def test_client_credentials_grant_with_basic_auth_and_form(emu: SalesforceEmulator) -> None:
    c = emu.auth_config
    basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
    status, body = token(
        emu, {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert status == 200 and usable(emu, body["access_token"])
    status, body = token(
        emu,
        {
            "grant_type": "client_credentials",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
        },
    )
    assert status == 200
    status, body = token(
        emu, {"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": "x"}
    )
    assert (status, body["error"]) == (400, "invalid_client")


def test_refresh_token_grant(emu: SalesforceEmulator) -> None:
    c = emu.auth_config
    status, body = token(
        emu,
        {"grant_type": "refresh_token", "client_id": c.client_id, "refresh_token": c.refresh_token},
    )
    assert status == 200 and usable(emu, body["access_token"])
    status, body = token(
        emu, {"grant_type": "refresh_token", "client_id": c.client_id, "refresh_token": "stale"}
    )
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )


def test_unsupported_grant(emu: SalesforceEmulator) -> None:
    assert token(emu, {"grant_type": "authorization_code"}) == (
        400,
        {"error": "unsupported_grant_type", "error_description": "grant type not supported"},
    )


def _assertion(emu: SalesforceEmulator, key: bytes = KEY, **claims: object) -> str:
    base: dict[str, object] = {
        "iss": emu.auth_config.client_id,
        "sub": emu.auth_config.username,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    base.update(claims)
    return jwt.encode(base, key, algorithm="RS256")


JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_jwt_bearer_grant_checks_signature_and_claims(emu: SalesforceEmulator) -> None:
    status, body = token(emu, {"grant_type": JWT, "assertion": _assertion(emu)})
    assert status == 200 and usable(emu, body["access_token"])
    assert token(emu, {"grant_type": JWT, "assertion": _assertion(emu, aud=emu.url)})[0] == 200
    cases = [
        (_assertion(emu, key=OTHER_KEY), "invalid_grant", "invalid assertion"),
        (_assertion(emu, iss="someone-else"), "invalid_client_id", "client identifier invalid"),
        (
            _assertion(emu, sub="nobody@example.com"),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (_assertion(emu, aud="https://evil.example.com"), "invalid_grant", "audience is invalid"),
        (_assertion(emu, exp=int(time.time()) - 10), "invalid_grant", "expired authorization code"),
        ("not.a.jwt", "invalid_grant", "invalid assertion"),
    ]
    for assertion, error, description in cases:
        assert token(emu, {"grant_type": JWT, "assertion": assertion}) == (
            400,
            {"error": error, "error_description": description},
        )


def test_simple_salesforce_jwt_and_password_oauth(emu: SalesforceEmulator) -> None:
    c = emu.auth_config
    sf = Salesforce(
        username=c.username,
        consumer_key=c.client_id,
        privatekey=KEY.decode(),
        session=emulator_session(emu),
    )
    assert sf.sf_instance == f"127.0.0.1:{emu.port}"
    assert sf.Account.create({"Name": "via jwt"})["success"] is True
    sf2 = Salesforce(
        username=c.username,
        password=c.password,
        consumer_key=c.client_id,
        consumer_secret=c.client_secret,
        session=emulator_session(emu),
    )
    assert sf2.query("SELECT COUNT() FROM Account")["totalSize"] >= 1


def test_soap_login_failure(emu: SalesforceEmulator) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(
            username=emu.auth_config.username,
            password="wrong",
            security_token="x",
            session=emulator_session(emu),
        )
    assert exc.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in str(exc.value.content)


def test_auth_calls_are_logged_but_not_counted(emu: SalesforceEmulator) -> None:
    before = emu.api_usage
    token(
        emu,
        {
            "grant_type": "refresh_token",
            "client_id": emu.auth_config.client_id,
            "refresh_token": "x",
        },
    )
    assert emu.api_usage == before
    assert emu.call_log[-1].kind == "auth" and emu.call_log[-1].status == 400


def test_verify_survives_requests_ca_bundle(
    emu: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE would override Session.verify; the adapter still pins the emulator CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    assert emulator_session(emu).get(emu.url + "/services/data").status_code == 200
