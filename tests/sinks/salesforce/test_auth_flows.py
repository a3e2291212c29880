"""Login flows against the emulator: JWT bearer (signed with a real RSA key), client
credentials, and a request that times out and is retried without losing or doubling records."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cdc_bridge.errors import ConfigError
from cdc_bridge.testing.salesforce import AuthConfig, FaultConfig, SalesforceEmulator

from .sf_sink_helpers import CUSTOMERS, accounts, ev, make_sink, to_records


def _keypair(tmp_path: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public.decode()


def test_jwt_bearer_login_and_refresh(tmp_path: Path) -> None:
    key_file, public = _keypair(tmp_path)
    with SalesforceEmulator(auth=AuthConfig(jwt_public_key=public)) as emu:
        jwt = {
            "auth": "jwt",
            "private_key_file": str(key_file),
            "password": None,
            "client_secret": None,
            "security_token": None,
        }
        sink = make_sink(emu, jwt)
        assert sink.apply(
            to_records([ev(CUSTOMERS, "c", {"id": 1, "name": "J", "city": "X", "employees": 1})])
        ).ok
        emu.expire_sessions()
        assert sink.apply(
            to_records([ev(CUSTOMERS, "c", {"id": 2, "name": "K", "city": "X", "employees": 1})])
        ).ok
        assert sorted(accounts(emu)) == ["1", "2"]
        assert sink.client is not None and sink.client.auth.logins == 2
        # A key the connected app does not know is refused with one clear message.
        (tmp_path / "o").mkdir()
        other, _ = _keypair(tmp_path / "o")
        with pytest.raises(ConfigError, match="certificate of private_key_file"):
            make_sink(emu, {**jwt, "private_key_file": str(other), "username": "other@example.com"})


def test_unreadable_private_key_is_a_config_error(tmp_path: Path) -> None:
    with SalesforceEmulator() as emu:
        bad = tmp_path / "bad.pem"
        bad.write_text("not a key")
        with pytest.raises(ConfigError, match="not a usable RSA private key"):
            make_sink(emu, {"auth": "jwt", "private_key_file": str(bad)})
        with pytest.raises(ConfigError, match="cannot read private_key_file"):
            make_sink(emu, {"auth": "jwt", "private_key_file": str(tmp_path / "missing.pem")})


def test_client_credentials_login() -> None:
    with SalesforceEmulator() as emu:
        sink = make_sink(emu, {"auth": "client_credentials", "username": None, "password": None})
        assert sink.apply(
            to_records([ev(CUSTOMERS, "c", {"id": 3, "name": "C", "city": "X", "employees": 1})])
        ).ok
        assert list(accounts(emu)) == ["3"]


def test_timeouts_are_retried_without_loss_or_duplicates() -> None:
    with SalesforceEmulator() as emu:
        sink = make_sink(emu, {"timeout_s": 0.3}, retry_backoff_ms=50, transient_retries=30)
        emu.set_faults(FaultConfig(latency=0.5))  # every call outlives the client's timeout...
        import threading

        threading.Timer(1.0, lambda: emu.set_faults(FaultConfig())).start()  # ...for a while
        recs = to_records(
            [
                ev(CUSTOMERS, "c", {"id": i, "name": f"T{i}", "city": "X", "employees": i})
                for i in range(450)
            ]
        )
        assert sink.apply(recs).ok
        got = accounts(emu)
        assert len(got) == 450 and len(emu.records("Account")) == 450
        assert all(got[str(i)]["Name"] == f"T{i}" for i in range(450))
        assert sink.client is not None and sink.client.retries > 0


def test_jwt_audience() -> None:
    from cdc_bridge.sinks.salesforce.auth import _audience

    assert _audience("https://login.salesforce.com/") == "https://login.salesforce.com"
    assert _audience("https://test.salesforce.com") == "https://test.salesforce.com"
    assert _audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert _audience("https://acme--uat.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert _audience("https://127.0.0.1:8443") == "https://127.0.0.1:8443"
