"""The Salesforce login keys shared by the Salesforce sink and the Salesforce source.

Both kinds log in to an org the same way (same keys, same validation), so the keys live in
one model that both config models inherit; neither sinks nor sources import each other.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

__all__ = ["AuthFlow", "SalesforceAuthSettings"]

AuthFlow = Literal["jwt", "client_credentials", "password", "session"]


class SalesforceAuthSettings(BaseModel):
    """How to log in to a Salesforce org, which API version, which CA to trust."""

    role: ClassVar[str] = "salesforce"

    auth: AuthFlow = Field(
        "jwt",
        description="OAuth flow: jwt (JWT bearer, connected app + certificate), client_credentials, password (username-password flow), session (an existing session id).",
        examples=["jwt"],
    )
    login_url: str = Field(
        "https://login.salesforce.com",
        description="Token endpoint host (https://test.salesforce.com for sandboxes, or your My Domain URL for client_credentials).",
        examples=["https://login.salesforce.com"],
    )
    instance_url: str | None = Field(
        None,
        description="Instance URL; required for auth = session, otherwise taken from the token response.",
        examples=["https://acme.my.salesforce.com"],
    )
    client_id: str | None = Field(
        None,
        description="Connected app consumer key (jwt, client_credentials, password).",
        examples=["${SF_CLIENT_ID}"],
    )
    client_secret: SecretStr | None = Field(
        None,
        description="Connected app consumer secret (client_credentials, password); from ${ENV} or a file.",
        examples=["${SF_CLIENT_SECRET}"],
    )
    username: str | None = Field(
        None,
        description="Integration user (jwt: the subject; password flow).",
        examples=["integration@acme.com"],
    )
    password: SecretStr | None = Field(
        None,
        description="Password of the integration user (password flow); from ${ENV}.",
        examples=["${SF_PASSWORD}"],
    )
    security_token: SecretStr | None = Field(
        None,
        description="Security token appended to the password (password flow, when the IP is not trusted); from ${ENV}.",
        examples=["${SF_SECURITY_TOKEN}"],
    )
    private_key_file: str | None = Field(
        None,
        description="PEM file with the RSA private key whose certificate is on the connected app (jwt).",
        examples=["/run/secrets/sf_jwt_key.pem"],
    )
    session_id: SecretStr | None = Field(
        None,
        description="An existing session id / access token (auth = session); cannot be refreshed.",
        examples=["${SF_SESSION_ID}"],
    )
    api_version: str = Field("61.0", description="REST API version.", examples=["61.0"])
    ca_bundle: str | None = Field(
        None,
        description="PEM file of CAs to trust for the login and instance hosts (private proxies, emulators).",
        examples=["/etc/ssl/certs/corp-ca.pem"],
    )

    def http_timeout_s(self) -> float:
        """Timeout of one HTTP request in seconds (each kind names the key in its own unit)."""
        raise NotImplementedError

    def label(self) -> str:
        """How messages name this config: ``sink 'crm'`` / ``source 'sf'``."""
        return f"{self.role} {getattr(self, 'name', '?')!r}"

    @field_validator("api_version")
    @classmethod
    def _version(cls, v: str) -> str:
        v = v.removeprefix("v")
        parts = v.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"expected a version like '61.0', got {v!r}")
        return v

    @model_validator(mode="after")
    def _auth_keys(self) -> SalesforceAuthSettings:
        needed = {
            "jwt": ("client_id", "username", "private_key_file"),
            "client_credentials": ("client_id", "client_secret"),
            "password": ("client_id", "client_secret", "username", "password"),
            "session": ("instance_url", "session_id"),
        }[self.auth]
        missing = [k for k in needed if getattr(self, k) in (None, "")]
        if missing:
            raise ValueError(
                f"auth = {self.auth!r} needs {', '.join(needed[:-1])} and {needed[-1]}; "
                f"missing: {', '.join(missing)} (set them on this {self.role}, secrets as "
                "${ENV_VAR})"
            )
        return self
