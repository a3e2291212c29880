"""Emulated Salesforce authentication: OAuth2 token grants, SOAP login, bearer sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

ORG_ID = "00D8d000000EMUL"
USER_ID = "0058d000000EMUL"


@dataclass
class AuthConfig:
    """The one org user and connected app the emulator knows.

    jwt_public_key: PEM certificate or public key that JWT bearer assertions must be signed
    with; when None, the signature is not checked (claims still are).
    refresh_token: a refresh token "issued earlier" (e.g. by a web-server flow) that the
    refresh_token grant accepts.
    """

    username: str = "emulator@example.com"
    password: str = "password"
    security_token: str = "TOKEN"
    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"
    jwt_public_key: str | None = None
    refresh_token: str = "emulator-refresh-token"
    audiences: tuple[str, ...] = ("https://login.salesforce.com", "https://test.salesforce.com")


class OAuthError(Exception):
    """`{"error","error_description"}` with HTTP 400 (or 401 for invalid_client)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def bad_auth() -> OAuthError:
    return OAuthError("invalid_grant", "authentication failure")


@dataclass
class Session:
    token: str
    username: str
    calls: int = 0
    expired: bool = False


@dataclass
class Sessions:
    """Issued access tokens and how many calls each has served."""

    expire_after: int | None = None
    _by_token: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, username: str) -> str:
        token = f"{ORG_ID}!AQ{secrets.token_urlsafe(48)}"
        with self._lock:
            self._by_token[token] = Session(token, username)
        return token

    def valid(self, token: str | None) -> Session | None:
        """The live session of this token (not counted as a call), or None."""
        with self._lock:
            s = self._by_token.get(token or "")
            return None if s is None or s.expired else s

    def use(self, token: str | None) -> bool:
        """Count a call on this session; False if it is unknown or expired."""
        if not token:
            return False
        with self._lock:
            s = self._by_token.get(token)
            if s is None or s.expired:
                return False
            if self.expire_after is not None and s.calls >= self.expire_after:
                s.expired = True
                return False
            s.calls += 1
            return True

    def expire_all(self) -> None:
        with self._lock:
            for s in self._by_token.values():
                s.expired = True


class Authenticator:
    """Checks credentials for the token endpoint and the SOAP login."""

    def __init__(self, config: AuthConfig, sessions: Sessions) -> None:
        self.config = config
        self.sessions = sessions
        self._jwt_key = _load_public_key(config.jwt_public_key) if config.jwt_public_key else None

    def token_response(self, instance_url: str, username: str) -> dict[str, Any]:
        token = self.sessions.issue(username)
        issued = str(int(time.time() * 1000))
        ident = f"https://login.salesforce.com/id/{ORG_ID}AAA/{USER_ID}AAA"
        sig = base64.b64encode(
            hmac.new(
                self.config.client_secret.encode(), (ident + issued).encode(), hashlib.sha256
            ).digest()
        ).decode()
        return {
            "access_token": token,
            "instance_url": instance_url,
            "id": ident,
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": sig,
            "scope": "api",
        }

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None, instance_url: str
    ) -> dict[str, Any]:
        """Handle POST /services/oauth2/token; raises OAuthError."""
        c = self.config
        grant = form.get("grant_type", "")
        if grant == "password":
            self._client(form.get("client_id"), form.get("client_secret"), required_secret=True)
            if form.get("username") != c.username or form.get("password") not in (
                c.password,
                c.password + c.security_token,
            ):
                raise bad_auth()
            return self.token_response(instance_url, c.username)
        if grant == "client_credentials":
            cid, secret = basic if basic else (form.get("client_id"), form.get("client_secret"))
            self._client(cid, secret, required_secret=True)
            return self.token_response(instance_url, c.username)
        if grant == "refresh_token":
            self._client(form.get("client_id"), form.get("client_secret"), required_secret=False)
            if form.get("refresh_token") != c.refresh_token:
                raise OAuthError("invalid_grant", "expired access/refresh token")
            return self.token_response(instance_url, c.username)
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = self._jwt(form.get("assertion", ""), instance_url)
            return self.token_response(instance_url, str(claims["sub"]))
        if not grant:
            raise OAuthError("invalid_request", "grant type not specified")
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def _client(self, cid: str | None, secret: str | None, *, required_secret: bool) -> None:
        if cid != self.config.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (required_secret or secret is not None) and secret != self.config.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")

    def _jwt(self, assertion: str, instance_url: str) -> dict[str, Any]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError("invalid_grant", "invalid assertion")
        try:
            header = orjson.loads(_b64d(parts[0]))
            claims = orjson.loads(_b64d(parts[1]))
            signature = _b64d(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if not isinstance(claims, dict) or not isinstance(header, dict):
            raise OAuthError("invalid_grant", "invalid assertion")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "invalid assertion")
        if self._jwt_key is not None:
            try:
                _verify(self._jwt_key, f"{parts[0]}.{parts[1]}".encode(), signature)
            except (InvalidSignature, ValueError):
                raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.config.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        allowed = {*self.config.audiences, instance_url}
        if not any(isinstance(a, str) and a.rstrip("/") in allowed for a in auds):
            raise OAuthError("invalid_grant", "audience is invalid")
        try:
            exp = float(claims.get("exp", ""))  # simple-salesforce sends it as a string
        except (TypeError, ValueError):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if exp < time.time():
            raise OAuthError("invalid_grant", "expired authorization code")
        if claims.get("sub") != self.config.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return claims

    def soap_login(self, body: bytes, server_base: str, version: str) -> tuple[int, str]:
        """Answer the partner-API SOAP login: (status, XML envelope)."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 500, _soap_fault(
                "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."
            )
        values = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
        c = self.config
        if (
            values.get("username") != c.username
            or values.get("password") != c.password + c.security_token
        ):
            return 500, _soap_fault(
                "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."
            )
        token = self.sessions.issue(c.username)
        server_url = f"{server_base}/services/Soap/u/{version}/{ORG_ID}"
        meta_url = f"{server_base}/services/Soap/m/{version}/{ORG_ID}"
        return 200, (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>{escape(meta_url)}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{escape(server_url)}</serverUrl>"
            f"<sessionId>{escape(token)}</sessionId>"
            f"<userId>{USER_ID}AAA</userId>"
            "<userInfo>"
            f"<organizationId>{ORG_ID}AAA</organizationId><organizationName>cdc-bridge emulator</organizationName>"
            f"<userEmail>{escape(c.username)}</userEmail><userName>{escape(c.username)}</userName>"
            f"<sessionSecondsValid>7200</sessionSecondsValid><userId>{USER_ID}AAA</userId>"
            "</userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )


def _soap_fault(code: str, message: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _load_public_key(pem: str) -> Any:
    data = pem.encode()
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


def _verify(key: Any, message: bytes, signature: bytes) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidSignature("RS256 assertion checked against an EC key")
    else:
        raise ValueError("unsupported JWT public key type")
