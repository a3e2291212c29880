"""The sink's login: the shared implementation lives in :mod:`cdc_bridge._salesforce.auth`."""

from cdc_bridge._salesforce.auth import JWT_GRANT, Authenticator, Token, _audience, http_session

__all__ = ["JWT_GRANT", "Authenticator", "Token", "_audience", "http_session"]
