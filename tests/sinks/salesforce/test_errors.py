"""Classification of Salesforce errors: retry, dead-letter, stop, fix the config, log in again."""

from __future__ import annotations

import pytest

from cdc_bridge.errors import ConfigError, FatalError, RecordError, RetriableError
from cdc_bridge.sinks.salesforce.errors import (
    Action,
    RecordFailure,
    SalesforceApiError,
    classify_code,
    classify_http,
    parse_bulk_error,
    raise_for_response,
)


@pytest.mark.parametrize(
    ("code", "action"),
    [
        ("UNABLE_TO_LOCK_ROW", Action.RETRY),
        ("REQUEST_LIMIT_EXCEEDED", Action.RETRY),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", Action.RECORD),
        ("REQUIRED_FIELD_MISSING", Action.RECORD),
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", Action.RECORD),
        ("INVALID_FIELD", Action.RECORD),
        ("STORAGE_LIMIT_EXCEEDED", Action.FATAL),
        ("INVALID_SESSION_ID", Action.AUTH),
        ("SOMETHING_NEW", Action.RECORD),
    ],
)
def test_record_codes(code: str, action: Action) -> None:
    assert classify_code(code) is action


def test_http_statuses() -> None:
    assert classify_http(503, "SERVER_UNAVAILABLE") is Action.RETRY
    assert classify_http(502, None) is Action.RETRY
    assert classify_http(401, None) is Action.AUTH
    assert classify_http(403, "REQUEST_LIMIT_EXCEEDED") is Action.RETRY
    assert classify_http(400, "JSON_PARSER_ERROR") is Action.RECORD
    assert classify_http(403, "API_DISABLED_FOR_ORG") is Action.FATAL
    assert classify_http(418, "WHATEVER") is Action.FATAL


def test_raise_for_response_and_bridge_errors() -> None:
    with pytest.raises(SalesforceApiError) as info:
        raise_for_response(
            503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "later"}], "PATCH", "/x"
        )
    assert info.value.action is Action.RETRY and isinstance(
        info.value.to_bridge_error(), RetriableError
    )
    with pytest.raises(SalesforceApiError) as info:
        raise_for_response(
            400, {"error": "invalid_grant", "error_description": "bad"}, "POST", "/t"
        )
    assert info.value.message == "bad"
    assert isinstance(
        SalesforceApiError(400, "INVALID_FIELD", "x", "G", "/").to_bridge_error(), RecordError
    )
    assert isinstance(SalesforceApiError(404, None, "x", "G", "/").to_bridge_error(), ConfigError)
    assert isinstance(
        SalesforceApiError(403, "INSUFFICIENT_ACCESS", "x", "G", "/").to_bridge_error(), FatalError
    )
    raise_for_response(204, None, "DELETE", "/x")


def test_record_failure_from_results_and_missing_parent() -> None:
    f = RecordFailure.from_result(
        [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Name]",
                "fields": ["Name"],
            }
        ]
    )
    assert f.action is Action.RECORD and "Name" in f.reason()
    err = f.to_error()
    assert err.code == "REQUIRED_FIELD_MISSING" and "Required fields are missing" in str(err)
    p = RecordFailure(
        "INVALID_FIELD", "Foreign key external ID: 42 not found for field Ext__c in entity Account"
    )
    assert p.missing_parent
    assert not f.missing_parent


def test_bulk_error_text() -> None:
    f = parse_bulk_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --")
    assert (f.code, f.message, f.fields) == (
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [Name]",
        ("Name",),
    )
    f = parse_bulk_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record: --")
    assert f.code == "UNABLE_TO_LOCK_ROW" and f.action is Action.RETRY
    assert parse_bulk_error("something odd").code == "UNKNOWN_EXCEPTION"
