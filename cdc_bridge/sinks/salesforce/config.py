"""Config models of the Salesforce sink: the `[[sinks]]` entry (auth) and the route keys (mapping)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from cdc_bridge._salesforce.settings import SalesforceAuthSettings
from cdc_bridge.config import RouteConfigBase, SinkConfigBase

__all__ = [
    "EXPRESSION_KEYS",
    "FieldSpec",
    "SalesforceRouteConfig",
    "SalesforceSinkConfig",
]

# Keys of an inline-table field expression (`{ field = "...", format = "date" }`). A nested
# table under `[routes.fields]` whose keys are not these is a relationship (lookup) instead.
EXPRESSION_KEYS = frozenset(
    {"field", "value", "template", "format", "scale", "tz", "default", "true", "false"}
)

FieldSpec = str | int | float | bool | None | dict[str, Any]


class SalesforceSinkConfig(SalesforceAuthSettings, SinkConfigBase):
    """A Salesforce org: how to log in, which API version, which CA to trust."""

    role: ClassVar[str] = "sink"

    timeout_s: float = Field(
        60.0, gt=0, description="Timeout of one HTTP request, in seconds.", examples=[60]
    )

    def http_timeout_s(self) -> float:
        return self.timeout_s

    kind: Literal["salesforce"] = Field(
        "salesforce", description="Sink kind.", examples=["salesforce"]
    )
    call_options_client: str = Field(
        "cdc-bridge",
        pattern=r"^[A-Za-z0-9_./-]{1,64}$",
        description="Sent as `Sforce-Call-Options: client=<this>` on every call; Salesforce copies "
        "it into changeOrigin of the resulting change events, so a Salesforce source with the "
        "same `echo_client` drops this sink's writes (two-way sync without echo).",
        examples=["cdc-bridge"],
    )
    quota_reserve: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Fraction of the org's daily API requests left to other integrations: the sink pauses when usage reaches (1 - quota_reserve) of the limit.",
        examples=[0.1],
    )
    quota_slowdown: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Fraction of the usable daily quota after which the sink spaces its calls out.",
        examples=[0.8],
    )
    quota_pause_s: float = Field(
        300.0,
        gt=0,
        description="How long to wait before probing the quota again while paused, in seconds.",
        examples=[300],
    )

    quota_block_s: float = Field(
        30.0,
        gt=0,
        description="Longest a batch waits on a paused quota before it is handed back to the route engine, which retries it (already applied records are not resent) and can shut down meanwhile.",
        examples=[30],
    )


class SalesforceRouteConfig(RouteConfigBase):
    """Route keys for `kind = "salesforce"` sinks: target SObject, external ID, field mapping."""

    sobject: str = Field(description="Target SObject API name.", examples=["Account"])
    external_id: str = Field(
        description="External-ID field of the SObject that upserts and deletes match on.",
        examples=["External_Id__c"],
    )
    key: str | list[str] | None = Field(
        None,
        description="Source column(s) that fill the external ID; the record key's columns when omitted (several are joined with '|').",
        examples=["id"],
    )
    fields: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description=(
            "SObject field -> source column name, or an expression: a constant "
            '(`{ value = "web" }`, numbers, booleans), a template (`"{first} {last}"`), or a '
            'formatted column (`{ field = "created_at", format = "datetime" }`, formats: '
            "date, datetime, time, decimal (+ scale), string, int, float, bool). Lookups to parent "
            'records by external ID use relationship syntax: `"Account__r.External_Id__c" = "customer_id"`. '
            "When empty, every source column whose name matches an SObject field (case-insensitive) is sent."
        ),
        examples=[
            {
                "Name": "name",
                "Email__c": "email",
                "Source__c": {"value": "shop"},
                "Account__r.External_Id__c": "customer_id",
            }
        ],
    )
    ignore_fields: list[str] = Field(
        default_factory=list,
        description="Source columns never sent (for the automatic mapping when `fields` is empty).",
        examples=[["password_hash"]],
    )
    deletes: Literal["delete", "ignore", "soft"] = Field(
        "delete",
        description="What a delete event does: delete the SObject record by external ID, ignore it, or set `soft_delete_field` to true.",
        examples=["delete"],
    )
    soft_delete_field: str | None = Field(
        None,
        description="Checkbox field set to true on deletes = 'soft' (and to false on upserts).",
        examples=["Is_Deleted__c"],
    )
    mode: Literal["auto", "collections", "bulk"] = Field(
        "auto",
        description="auto: sObject Collections, switching to Bulk API 2.0 while the backlog is large; or force one.",
        examples=["auto"],
    )
    bulk_threshold: int = Field(
        5000,
        ge=1,
        description="Records in one batch (after collapsing) at or above which auto mode uses a Bulk API 2.0 job.",
        examples=[5000],
    )
    bulk_exit_threshold: int = Field(
        1000,
        ge=1,
        description="Once in bulk mode, batches below this size go back to sObject Collections.",
        examples=[1000],
    )
    parallel_calls: int = Field(
        4,
        ge=1,
        le=25,
        description="sObject Collections calls of one batch in flight at once (after collapsing no key is in two calls, so order per key holds).",
        examples=[4],
    )
    bulk_poll_s: float = Field(
        2.0,
        gt=0,
        description="Seconds between Bulk API 2.0 job status polls (grows to 30).",
        examples=[2],
    )
    parent_wait_s: float = Field(
        120.0,
        ge=0,
        description="How long a record whose lookup parent does not exist yet is retried before it is dead-lettered.",
        examples=[120],
    )
    transient_retries: int = Field(
        8,
        ge=0,
        description="Resends of records that failed passingly (UNABLE_TO_LOCK_ROW, 503, timeouts) within one batch before the batch is handed back for a later retry; nothing is dead-lettered for a passing failure.",
        examples=[8],
    )
    batch_size: int = Field(
        10000,
        ge=1,
        description="Records per applied batch. Large, so a backlog fills batches (-> Bulk API 2.0) while a trickle is sent through Collections within linger_ms.",
        examples=[10000],
    )

    @model_validator(mode="after")
    def _check(self) -> SalesforceRouteConfig:
        if self.deletes == "soft" and not self.soft_delete_field:
            raise ValueError("deletes = 'soft' needs soft_delete_field (a checkbox field)")
        if self.bulk_exit_threshold > self.bulk_threshold:
            raise ValueError("bulk_exit_threshold must not exceed bulk_threshold")
        self.fields = flatten_fields(self.fields)
        return self


def flatten_fields(fields: dict[str, Any]) -> dict[str, FieldSpec]:
    """Turn TOML's nested `Account__r.External_Id__c = ...` (a sub-table) into a dotted key."""
    out: dict[str, FieldSpec] = {}
    for name, spec in fields.items():
        if isinstance(spec, dict) and spec and not (set(spec) & EXPRESSION_KEYS):
            for sub, subspec in flatten_fields(spec).items():
                out[f"{name}.{sub}"] = subspec
        else:
            out[name] = spec
    return out
