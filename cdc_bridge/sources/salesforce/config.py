"""Configuration model of the ``salesforce`` source kind (one ``[[sources]]`` entry).

The login keys (``auth``, ``login_url``, ``client_id``, …, ``ca_bundle``) are the Salesforce
sink's, shared through :mod:`cdc_bridge._salesforce.settings`.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from cdc_bridge._salesforce.settings import SalesforceAuthSettings
from cdc_bridge.config import SourceConfigBase

__all__ = ["SalesforceSourceConfig"]

_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_EVENT = re.compile(r"^/event/[A-Za-z][A-Za-z0-9_]*__e$")


class SalesforceSourceConfig(SalesforceAuthSettings, SourceConfigBase):
    """A Salesforce org captured through Change Data Capture (Pub/Sub API)."""

    role: ClassVar[str] = "source"

    timeout_ms: int = Field(
        60_000, gt=0, description="Timeout of one HTTP request, in milliseconds.", examples=[60000]
    )

    def http_timeout_s(self) -> float:
        return self.timeout_ms / 1000

    kind: Literal["salesforce"] = Field(
        "salesforce", description="Source kind.", examples=["salesforce"]
    )
    objects: list[str] = Field(
        default_factory=list,
        description="Objects to capture (standard or custom API names); each must be selected "
        "for Change Data Capture in Setup. One topic per object: `<name>.<Object>`.",
        examples=[["Account", "Case", "Invoice__c"]],
    )
    fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per object, the fields to publish (Id is always included); all fields "
        "of the object when an object is not listed.",
        examples=[{"Account": ["Name", "Phone", "BillingCity"]}],
    )
    platform_events: list[str] = Field(
        default_factory=list,
        description="Platform event channels to publish, each to topic `<name>.<Event__e>` as "
        "plain JSON keyed by EventUuid.",
        examples=[["/event/Order_Placed__e"]],
    )
    mode: Literal["full", "changed_fields"] = Field(
        "full",
        description="full: `after` holds the whole record, read in batches through sObject "
        "Collections (one call per up to 2,000 changed records); changed_fields: only the "
        "changed fields (nulled ones as nulls, others null too), no extra API calls.",
        examples=["full"],
    )
    pubsub_endpoint: str = Field(
        "api.pubsub.salesforce.com:7443",
        description="host:port of the Pub/Sub API (gRPC over TLS).",
        examples=["api.pubsub.salesforce.com:7443"],
    )
    echo_client: str = Field(
        "cdc-bridge",
        description="The `client` this bridge's Salesforce sink sends in Sforce-Call-Options; "
        "change events whose changeOrigin carries it are this bridge's own writes.",
        examples=["cdc-bridge"],
    )
    on_echo: Literal["drop", "mark"] = Field(
        "drop",
        description="drop: do not publish changes made by this bridge (two-way sync without "
        "ping-pong); mark: publish them with `source.echo = true`.",
        examples=["drop"],
    )
    batch_size: int = Field(
        100,
        ge=1,
        le=100,
        description="Events requested per Pub/Sub fetch (num_requested; at most 100).",
        examples=[100],
    )
    retrieve_batch: int = Field(
        2000,
        ge=1,
        le=2000,
        description="Largest number of ids per sObject Collections retrieve call (mode full).",
        examples=[2000],
    )
    max_wait_ms: int = Field(
        200,
        ge=0,
        description="How long to gather change events into one batch before fetching records "
        "and producing (mode full); larger batches use fewer API calls.",
        examples=[200],
    )
    snapshot_page_size: int = Field(
        50_000,
        ge=100,
        description="Records per result page of the snapshot's Bulk API 2.0 query job.",
        examples=[50000],
    )

    @field_validator("objects")
    @classmethod
    def _objects(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not _OBJECT.match(o)]
        if bad:
            raise ValueError(f"not object API names: {bad} (expected e.g. Account, Invoice__c)")
        return v

    @field_validator("platform_events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if not _EVENT.match(e)]
        if bad:
            raise ValueError(f"not platform event channels: {bad} (expected /event/Name__e)")
        return v

    @model_validator(mode="after")
    def _something(self) -> SalesforceSourceConfig:
        if self.tables is not None:
            raise ValueError("a salesforce source lists `objects`, not `tables`")
        if not self.objects and not self.platform_events:
            raise ValueError("set objects (and/or platform_events): there is nothing to capture")
        unknown = sorted(set(self.fields) - set(self.objects))
        if unknown:
            raise ValueError(f"fields lists objects that are not in objects: {unknown}")
        return self
