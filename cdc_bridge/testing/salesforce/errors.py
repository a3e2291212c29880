"""Salesforce-shaped errors raised inside the emulator and turned into API responses."""

from __future__ import annotations

from typing import Any


class SfError(Exception):
    """A per-record error (`{"statusCode","message","fields"}` in results)."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = fields or []

    def result(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def bulk_text(self) -> str:
        """The `sf__Error` column of Bulk API 2.0 failed results."""
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class ApiError(Exception):
    """A whole-request error: HTTP status plus `[{"message","errorCode"}]`."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    @classmethod
    def from_record(cls, err: SfError, status: int = 400) -> ApiError:
        return cls(status, err.code, err.message, err.fields)


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")
