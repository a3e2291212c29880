"""Salesforce pieces shared by the Salesforce sink and source: login keys and the login itself."""

from cdc_bridge._salesforce.auth import Authenticator, Token, http_session
from cdc_bridge._salesforce.settings import AuthFlow, SalesforceAuthSettings

__all__ = ["AuthFlow", "Authenticator", "SalesforceAuthSettings", "Token", "http_session"]
