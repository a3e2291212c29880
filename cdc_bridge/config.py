"""routes.toml -> a typed, validated model (the config contract of DESIGN §5).

This module holds the section models shared by every kind; each source and sink kind
declares its own model next to its code (subclassing the bases here) and is found through
``cdc_bridge.registry``. The loader (TOML parsing, ``${ENV}`` interpolation, secrets from
files, error reporting with key paths) lives here too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "BridgeSection",
    "KafkaSection",
    "RouteConfigBase",
    "SinkConfigBase",
    "SourceConfigBase",
]


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, fields are documented."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BridgeSection(Section):
    name: str = Field(
        "cdc-bridge",
        description="Name of this bridge; prefixes consumer groups and dead-letter topics.",
        examples=["acme"],
        pattern=r"^[A-Za-z0-9._-]+$",
    )
    state: str = Field(
        "sqlite:///./.cdc-bridge/state.db",
        description="SQLAlchemy URL of the bridge's state store (positions, offsets, DLQ index).",
        examples=["sqlite:///./.cdc-bridge/state.db", "postgresql+psycopg://cdc@db/cdc_state"],
    )
    metrics: str = Field(
        "127.0.0.1:9464",
        description='host:port serving /metrics (Prometheus), /healthz and /readyz; loopback by default, ":9464" or "0.0.0.0:9464" for every interface, "" to switch it off.',
        examples=["127.0.0.1:9464", "0.0.0.0:9464"],
    )

    @field_validator("metrics")
    @classmethod
    def _check_metrics(cls, v: str) -> str:
        if v:
            from cdc_bridge.metrics import parse_address

            parse_address(v)
        return v


class KafkaSection(Section):
    bootstrap_servers: str = Field(
        description="Kafka bootstrap servers, comma-separated host:port.",
        examples=["localhost:9092"],
    )
    topic_partitions: int = Field(
        6, ge=1, description="Partitions of topics the bridge creates.", examples=[6]
    )
    topic_replication_factor: int = Field(
        -1,
        description="Replication factor of created topics; -1 takes the broker default.",
        examples=[3],
    )
    topic_config: dict[str, str] = Field(
        default_factory=dict,
        description="Topic-level configs for created topics (e.g. cleanup.policy, retention.ms).",
        examples=[{"cleanup.policy": "compact,delete"}],
    )
    producer: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka producer properties passed through (TLS, SASL, tuning).",
        examples=[{"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}],
    )
    consumer: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka consumer properties passed through (TLS, SASL, tuning).",
        examples=[{"session.timeout.ms": 10000}],
    )


SnapshotMode = Literal["initial", "never", "initial_only", "when_needed"]
OpCode = Literal["c", "u", "d", "r", "t"]
ALL_OPS: list[OpCode] = ["c", "u", "d", "r", "t"]


class SourceConfigBase(Section):
    """Keys every source kind has; kinds subclass this and set ``kind`` to a Literal."""

    name: str = Field(
        description="Source name; the topic prefix (`<name>.<schema>.<table>`).",
        examples=["orders"],
        pattern=r"^[A-Za-z0-9_-]+$",
    )
    kind: str = Field(description="Source kind.", examples=["postgres"])
    tables: list[str] | None = Field(
        None,
        description="Tables to capture as `schema.table` (Postgres) or `database.table`; all when omitted.",
        examples=[["public.orders", "public.customers"]],
    )
    snapshot: SnapshotMode = Field(
        "initial",
        description="initial: snapshot once, then stream; never: stream only; initial_only: snapshot and stop; when_needed: snapshot whenever no usable position exists.",
        examples=["initial"],
    )
    schemas: bool = Field(
        True,
        description="Write key and value with the Connect schema wrapper (JsonConverter schemas.enable).",
        examples=[True],
    )
    tombstones: bool = Field(
        True, description="Follow each delete with a tombstone (null value).", examples=[True]
    )
    skip_ops: list[OpCode] = Field(
        default_factory=list,
        description="Operations not to publish (e.g. truncates).",
        examples=[["t"]],
    )
    decimal_handling: Literal["precise", "string", "double"] = Field(
        "precise",
        description="Decimals as Connect Decimal bytes (precise), strings or doubles.",
        examples=["string"],
    )
    binary_handling: Literal["bytes", "base64", "hex"] = Field(
        "bytes",
        description="Binary columns as Connect bytes (base64 in JSON), base64 or hex strings.",
        examples=["bytes"],
    )


class SinkConfigBase(Section):
    """Keys every sink kind has."""

    name: str = Field(description="Sink name, referenced by routes' `to`.", examples=["crm"])
    kind: str = Field(description="Sink kind.", examples=["database"])


class RouteConfigBase(Section):
    """Keys every route has; each sink kind subclasses this with its own keys."""

    name: str | None = Field(
        None,
        description="Route name (consumer group and DLQ topic suffix); derived from from/to when omitted.",
        examples=["customers-to-crm"],
    )
    from_: str | list[str] = Field(
        alias="from",
        description="Topic name or glob (`shop.public.*`), or a list of them.",
        examples=["orders.public.customers"],
    )
    to: str = Field(description="Name of the sink.", examples=["crm"])
    ops: list[OpCode] = Field(
        default_factory=lambda: list(ALL_OPS),
        description="Operations to apply.",
        examples=[["c", "u", "r"]],
    )
    filter: str | None = Field(
        None,
        description="Expression over before/after/op/source; only matching records are applied.",
        examples=['after.country == "US" and op != "d"'],
    )
    group_id: str | None = Field(
        None,
        description="Kafka consumer group; `<bridge>.<route>` when omitted.",
        examples=["acme.customers-to-crm"],
    )
    batch_size: int = Field(500, ge=1, description="Records per applied batch.", examples=[500])
    linger_ms: int = Field(
        200, ge=0, description="Longest wait to fill a batch, in milliseconds.", examples=[200]
    )
