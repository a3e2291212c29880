"""Configuration model of the ``postgres`` source kind (one ``[[sources]]`` entry)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from cdc_bridge.config import (
    IncrementalSnapshotSettings,
    OpCode,
    SourceConfigBase,
    secret_dsn_with_schemes,
)

__all__ = ["PostgresSourceConfig"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _skip_truncates() -> list[OpCode]:
    return ["t"]


class PostgresSourceConfig(IncrementalSnapshotSettings, SourceConfigBase):
    """A PostgreSQL database captured through logical replication (pgoutput)."""

    renamed_keys: ClassVar[dict[str, tuple[str, float]]] = {
        "snapshot_fetch_size": ("snapshot_batch_size", 1),
        "max_batch_events": ("stream_batch_size", 1),
        "slot_lag_log_interval_s": ("slot_lag_log_interval_ms", 1000),
    }

    kind: Literal["postgres"] = Field("postgres", description="Source kind.", examples=["postgres"])
    dsn: secret_dsn_with_schemes(  # type: ignore[valid-type]
        "postgresql", "postgres", example="postgresql://cdc:***@db1:5432/shop"
    ) = Field(
        description="libpq connection string or URL of the database to capture; the user needs "
        "the REPLICATION attribute and SELECT on the captured tables.",
        examples=["postgresql://cdc:${PG_PASSWORD}@db1:5432/shop"],
    )
    slot_name: str | None = Field(
        None,
        description="Logical replication slot; `cdc_bridge_<name>` when omitted. Created if absent, "
        "never dropped implicitly (`cdc-bridge postgres drop-slot` drops it).",
        examples=["cdc_bridge_orders"],
    )
    publication_name: str | None = Field(
        None,
        description="Publication listing the captured tables; `cdc_bridge_<name>` when omitted. "
        "Created if absent and kept in sync with `tables`.",
        examples=["cdc_bridge_orders"],
    )
    skip_ops: list[OpCode] = Field(
        default_factory=_skip_truncates,
        description="Operations not to publish. Truncates are skipped by default, as Debezium's "
        '`skipped.operations` default `t`; `[]` publishes them (op `"t"`, null key).',
        examples=[[]],
    )
    skip_origins: list[str] = Field(
        default_factory=list,
        description="Skip transactions whose replication origin matches one of these names "
        "(shell-style globs): the writes of a database sink with `replication_origin` set, so "
        "a two-way sync does not echo them back.",
        examples=[["cdc_bridge*"]],
    )
    toast_placeholder: str = Field(
        "__debezium_unavailable_value",
        description="Value written for unchanged TOASTed columns the server did not send.",
        examples=["__debezium_unavailable_value"],
    )
    include_unknown_types: bool = Field(
        False,
        description="Columns of types Debezium does not map (box, circle, line, lseg, path, "
        "polygon, tsquery, pg_lsn, composite types, arrays of interval/money/xml/name...) are "
        "left out of events, as Debezium's `include.unknown.datatypes=false`; true writes them "
        "as their text (strings).",
        examples=[False],
    )
    replace_null_with_default: bool = Field(
        False,
        description="Write a column's default value instead of NULL, as Kafka Connect's "
        "JsonConverter does behind Debezium (`replace.null.with.default=true`). Off: a NULL "
        "stays null (the schema still carries the default).",
        examples=[False],
    )
    heartbeat_interval_ms: int = Field(
        10_000,
        ge=0,
        description="How often an idle stream advances the slot to the server's WAL position "
        "(so WAL does not pile up while captured tables are quiet), in milliseconds; 0 disables.",
        examples=[10000],
    )
    status_interval_ms: int = Field(
        1_000,
        ge=50,
        description="How often the confirmed (Kafka-acknowledged) position is reported to the slot.",
        examples=[1000],
    )
    proto_version: Literal[1, 2] = Field(
        2,
        description="pgoutput protocol version (2 needs PostgreSQL 14+; falls back to 1 on older servers).",
        examples=[2],
    )
    streaming: bool = Field(
        False,
        description="Stream large in-progress transactions from the server (protocol 2); they are "
        "buffered in memory until commit. Off: the server spills them to disk until commit.",
        examples=[False],
    )
    stream_batch_size: int = Field(
        5_000,
        ge=1,
        description="Largest batch handed to Kafka at once; huge transactions are sent in chunks "
        "of this size (the slot only advances at their commit). Formerly `max_batch_events`.",
        examples=[5000],
    )
    max_in_flight_events: int = Field(
        50_000,
        ge=1,
        description="Pause reading while this many records wait for Kafka's acknowledgement "
        "(bounds memory during catch-up and snapshots; the slot holds the backlog meanwhile).",
        examples=[50000],
    )
    snapshot_batch_size: int = Field(
        10_000,
        ge=1,
        description="Rows fetched per snapshot chunk. Formerly `snapshot_fetch_size`.",
        examples=[10000],
    )
    slot_lag_log_interval_ms: int = Field(
        60_000,
        ge=0,
        description="How often slot lag (bytes of WAL the slot holds back) is logged, in "
        "milliseconds; 0 disables. Formerly `slot_lag_log_interval_s` (seconds).",
        examples=[60000],
    )

    @field_validator("slot_name", "publication_name")
    @classmethod
    def _check_ident(cls, v: str | None) -> str | None:
        if v is not None and not _IDENT.match(v):
            raise ValueError(
                "must be a lower-case Postgres identifier (letters, digits, '_'; at most 63 chars)"
            )
        return v

    @field_validator("tables")
    @classmethod
    def _check_tables(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for t in v:
            if t.count(".") != 1 or not all(t.split(".")):
                raise ValueError(f"{t!r} is not `schema.table` (e.g. 'public.orders')")
        return v

    @property
    def slot(self) -> str:
        return self.slot_name or _default_name(self.name)

    @property
    def publication(self) -> str:
        return self.publication_name or _default_name(self.name)


def _default_name(source_name: str) -> str:
    return ("cdc_bridge_" + re.sub(r"[^a-z0-9_]", "_", source_name.lower()))[:63]
