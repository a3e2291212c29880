"""Salesforce `statusCode` / `errorCode` -> what to do about it (retry, dead-letter, stop).

Two kinds of failure reach the sink: a whole request fails (HTTP status + ``[{"errorCode",
"message"}]``), or one record inside a 200-record Collections call / a Bulk API 2.0 job fails
(``{"statusCode", "message", "fields"}`` / ``sf__Error``). Both are classified here with one
table, so the sink never guesses from message text except where Salesforce leaves no choice
(the missing-parent lookup error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cdc_bridge._salesforce.auth import tls_verification_failed
from cdc_bridge.errors import ConfigError, FatalError, RecordError, RetriableError

__all__ = [
    "Action",
    "RecordFailure",
    "SalesforceApiError",
    "classify_code",
    "classify_http",
    "is_missing_parent",
    "parse_bulk_error",
    "raise_for_response",
    "tls_verification_failed",
]


class Action(Enum):
    """What the sink does with a failure."""

    RETRY = "retry"  # passing: back off and send again
    RECORD = "record"  # this record is bad: dead-letter it with Salesforce's message
    FATAL = "fatal"  # cannot go on (permissions, org state): stop the route
    CONFIG = "config"  # the mapping or sink config is wrong: stop and say how to fix it
    AUTH = "auth"  # the session expired: log in again and repeat the request


# Record- and request-level codes. Anything not listed is a record error when it comes with
# a record, and fatal when a whole request fails with it (a bug or an unknown org state: stop
# rather than dead-letter everything).
_TABLE: dict[str, Action] = {
    # passing conditions
    "UNABLE_TO_LOCK_ROW": Action.RETRY,
    "REQUEST_LIMIT_EXCEEDED": Action.RETRY,
    "SERVER_UNAVAILABLE": Action.RETRY,
    "REQUEST_RUNNING_TOO_LONG": Action.RETRY,
    "QUERY_TIMEOUT": Action.RETRY,
    "TXN_SECURITY_METERING_ERROR": Action.RETRY,
    "CONCURRENT_REQUEST_LIMIT_EXCEEDED": Action.RETRY,
    "UNKNOWN_EXCEPTION": Action.RETRY,
    "ALL_OR_NONE_OPERATION_ROLLED_BACK": Action.RETRY,
    "PROCESSING_HALTED": Action.RETRY,
    "API_CURRENTLY_DISABLED": Action.RETRY,
    # the session
    "INVALID_SESSION_ID": Action.AUTH,
    "INVALID_AUTH_HEADER": Action.AUTH,
    # bad records
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": Action.RECORD,
    "REQUIRED_FIELD_MISSING": Action.RECORD,
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": Action.RECORD,
    "INVALID_FIELD": Action.RECORD,
    "INVALID_FIELD_FOR_INSERT_UPDATE": Action.RECORD,
    "INVALID_TYPE_ON_FIELD_IN_RECORD": Action.RECORD,
    "STRING_TOO_LONG": Action.RECORD,
    "NUMBER_OUTSIDE_VALID_RANGE": Action.RECORD,
    "INVALID_EMAIL_ADDRESS": Action.RECORD,
    "DUPLICATE_VALUE": Action.RECORD,
    "DUPLICATE_EXTERNAL_ID": Action.RECORD,
    "DUPLICATES_DETECTED": Action.RECORD,
    "INVALID_CROSS_REFERENCE_KEY": Action.RECORD,
    "MALFORMED_ID": Action.RECORD,
    "ENTITY_IS_DELETED": Action.RECORD,
    "ENTITY_IS_LOCKED": Action.RECORD,
    "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY": Action.RECORD,
    "FIELD_INTEGRITY_EXCEPTION": Action.RECORD,
    "FIELD_FILTER_VALIDATION_EXCEPTION": Action.RECORD,
    "DELETE_FAILED": Action.RECORD,
    "INVALID_ID_FIELD": Action.RECORD,
    "JSON_PARSER_ERROR": Action.RECORD,
    "NOT_FOUND": Action.RECORD,
    "STORAGE_LIMIT_EXCEEDED": Action.FATAL,
    # setup problems
    "INVALID_TYPE": Action.CONFIG,
    "NOT_FOUND_SOBJECT": Action.CONFIG,
    "INSUFFICIENT_ACCESS": Action.FATAL,
    "INSUFFICIENT_ACCESS_OR_READONLY": Action.RECORD,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": Action.RECORD,
    "API_DISABLED_FOR_ORG": Action.FATAL,
    "FUNCTIONALITY_NOT_ENABLED": Action.FATAL,
    "INVALID_LOGIN": Action.CONFIG,
    "LOGIN_MUST_USE_SECURITY_TOKEN": Action.CONFIG,
}

_RETRY_STATUS = frozenset({408, 420, 429, 500, 502, 503, 504})

# "Foreign key external ID: 42 not found for field External_Id__c in entity Account"
_MISSING_PARENT = re.compile(r"foreign key external id: .* not found", re.IGNORECASE)


def classify_code(code: str | None, *, request_level: bool = False) -> Action:
    """The action for one Salesforce error code."""
    if code is None:
        return Action.RETRY if request_level else Action.RECORD
    action = _TABLE.get(code.upper())
    if action is None:
        return Action.FATAL if request_level else Action.RECORD
    return action


def classify_http(status: int, code: str | None) -> Action:
    """The action for a failed request: the error code decides, else the HTTP status."""
    if code is not None and code.upper() in _TABLE:
        return _TABLE[code.upper()]
    if status in _RETRY_STATUS:
        return Action.RETRY
    if status == 401:
        return Action.AUTH
    if status == 404:
        return Action.CONFIG
    return Action.FATAL


def is_missing_parent(code: str | None, message: str) -> bool:
    """A lookup by external ID whose parent record does not exist (yet)."""
    return bool(_MISSING_PARENT.search(message or "")) or (
        code == "INVALID_FIELD" and "foreign key" in (message or "").lower()
    )


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """One record's failure as Salesforce reported it."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    @property
    def action(self) -> Action:
        return classify_code(self.code)

    @property
    def missing_parent(self) -> bool:
        return is_missing_parent(self.code, self.message)

    def reason(self) -> str:
        where = f" (fields: {', '.join(self.fields)})" if self.fields else ""
        return f"{self.code}: {self.message}{where}"

    def to_error(self) -> RecordError:
        return RecordError(f"Salesforce refused the record: {self.reason()}", code=self.code)

    @classmethod
    def from_result(cls, errors: list[dict[str, Any]]) -> RecordFailure:
        """From the ``errors`` list of a Collections result (first error decides)."""
        if not errors:
            return cls("UNKNOWN_EXCEPTION", "Salesforce reported a failure without a reason")
        first = errors[0]
        msgs = "; ".join(str(e.get("message", "")) for e in errors)
        return cls(
            str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN_EXCEPTION"),
            msgs,
            tuple(first.get("fields") or ()),
        )


def parse_bulk_error(text: str) -> RecordFailure:
    """``sf__Error`` of Bulk API 2.0 failed results: ``CODE:message:fields --``."""
    text = (text or "").strip().removesuffix("--").strip()
    code, sep, rest = text.partition(":")
    if not sep or not code.replace("_", "").isalnum() or code.upper() != code:
        return RecordFailure("UNKNOWN_EXCEPTION", text)
    message, _, fields = rest.rpartition(":")
    if not message:  # no field list
        message, fields = rest, ""
    return RecordFailure(code, message.strip(), tuple(f for f in fields.strip().split(",") if f))


class SalesforceApiError(Exception):
    """A failed request: HTTP status, Salesforce's error code and message, and the action."""

    def __init__(self, status: int, code: str | None, message: str, method: str, path: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.action = classify_http(status, code)
        super().__init__(f"{method} {path} -> {status} {code or ''}: {message}".strip())

    def to_bridge_error(self) -> Exception:
        """The cdc-bridge error class for callers that do not handle the action themselves."""
        text = f"Salesforce {self.status} {self.code or ''}: {self.message}"
        if self.action in (Action.RETRY, Action.AUTH):
            return RetriableError(text)
        if self.action is Action.CONFIG:
            return ConfigError(text)
        if self.action is Action.RECORD:
            return RecordError(text, code=self.code)
        return FatalError(text)


def raise_for_response(status: int, body: Any, method: str, path: str) -> None:
    """Raise :class:`SalesforceApiError` for a non-2xx response."""
    if status < 300:
        return
    code: str | None = None
    message = ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        code = body[0].get("errorCode")
        message = str(body[0].get("message", ""))
    elif isinstance(body, dict):
        code = body.get("errorCode") or body.get("error")
        message = str(body.get("message") or body.get("error_description") or "")
    elif body:
        message = str(body)[:500]
    raise SalesforceApiError(status, code, message or f"HTTP {status}", method, path)
