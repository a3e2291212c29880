"""``[[sources]] kind = "mongodb"``: the MongoDB source's config model (its spec and docs)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from cdc_bridge.config import IncrementalSnapshotSettings, SourceConfigBase, secret_dsn_with_schemes

__all__ = ["CAPTURE_MODES", "MongoSourceConfig"]

FullDocument = Literal["updateLookup", "whenAvailable", "required", "default"]
FullDocumentBeforeChange = Literal["off", "whenAvailable", "required"]
CaptureMode = Literal[
    "change_streams",
    "change_streams_update_full",
    "change_streams_with_pre_image",
    "change_streams_update_full_with_pre_image",
]

# Debezium's capture.mode names -> (full_document, full_document_before_change).
CAPTURE_MODES: dict[str, tuple[str, str]] = {
    "change_streams": ("default", "off"),
    "change_streams_update_full": ("updateLookup", "off"),
    "change_streams_with_pre_image": ("default", "whenAvailable"),
    "change_streams_update_full_with_pre_image": ("updateLookup", "whenAvailable"),
}

SYSTEM_DATABASES = frozenset({"admin", "config", "local"})


class MongoSourceConfig(IncrementalSnapshotSettings, SourceConfigBase):
    """A MongoDB replica set or sharded cluster captured with change streams."""

    renamed_keys: ClassVar[dict[str, tuple[str, float]]] = {
        "uri": ("dsn", 1),
        "max_await_time_ms": ("heartbeat_interval_ms", 1),
    }

    kind: Literal["mongodb"] = Field(description="Source kind.", examples=["mongodb"])
    dsn: secret_dsn_with_schemes(  # type: ignore[valid-type]
        "mongodb", "mongodb+srv", example="mongodb://cdc:***@db1:27017/?replicaSet=rs0"
    ) = Field(
        description="MongoDB connection string of a replica set or mongos; may hold a password, never logged. Formerly `uri`.",
        examples=["mongodb://cdc:${MONGO_PASSWORD}@db1:27017,db2:27017/?replicaSet=rs0"],
        json_schema_extra={"secret": True},
    )
    tables: list[str] | None = Field(
        None,
        description="Same as `collections` (`database.collection` names), for symmetry with the SQL sources.",
        examples=[["shop.orders"]],
    )
    decimal_handling: Literal["precise", "string", "double"] = Field(
        "precise",
        description="Not used by MongoDB: documents are Extended JSON strings (Decimal128 as `$numberDecimal`).",
        examples=["precise"],
    )
    binary_handling: Literal["bytes", "base64", "hex"] = Field(
        "bytes",
        description="Not used by MongoDB: binary values are Extended JSON `$binary` (base64).",
        examples=["bytes"],
    )
    databases: list[str] | None = Field(
        None,
        description="Databases to capture (every collection in them); all non-system databases when neither this nor `collections` is set.",
        examples=[["shop"]],
    )
    collections: list[str] | None = Field(
        None,
        description="Collections to capture as `database.collection` (in addition to `databases`).",
        examples=[["shop.orders", "shop.customers"]],
    )
    exclude_databases: list[str] = Field(
        default_factory=list, description="Databases never captured.", examples=[["scratch"]]
    )
    exclude_collections: list[str] = Field(
        default_factory=list,
        description="Collections never captured, as `database.collection`.",
        examples=[["shop.sessions"]],
    )
    capture_mode: CaptureMode = Field(
        "change_streams_update_full",
        description="Debezium's capture.mode: whether updates carry the full document (`after`) and/or the pre-image (`before`, MongoDB 6+ with changeStreamPreAndPostImages).",
        examples=["change_streams_update_full_with_pre_image"],
    )
    full_document: FullDocument | None = Field(
        None,
        description="Change stream fullDocument option; overrides the one implied by capture_mode (updateLookup by default).",
        examples=["updateLookup"],
    )
    full_document_before_change: FullDocumentBeforeChange | None = Field(
        None,
        description="Change stream fullDocumentBeforeChange option (pre-images, MongoDB 6+); overrides capture_mode.",
        examples=["whenAvailable"],
    )
    json_output: Literal["strict", "relaxed"] = Field(
        "strict",
        description="Extended JSON flavour of `before`/`after`: strict (Debezium's, `$numberLong`, `$date` millis) or relaxed (Extended JSON v2).",
        examples=["strict"],
    )
    snapshot_batch_size: int = Field(
        2000,
        ge=1,
        description="Documents per snapshot chunk (one Kafka hand-off each).",
        examples=[2000],
    )
    stream_batch_size: int = Field(
        2000,
        ge=1,
        description="Most change events handed to Kafka in one batch while streaming.",
        examples=[2000],
    )
    heartbeat_interval_ms: int = Field(
        500,
        ge=10,
        le=60000,
        description="How long one change-stream getMore waits for new events, in milliseconds: an idle stream moves its resume token on this often (and stops within it). Formerly `max_await_time_ms`.",
        examples=[500],
    )
    server_selection_timeout_ms: int = Field(
        10000,
        ge=100,
        description="How long to look for a usable server before failing.",
        examples=[10000],
    )

    @model_validator(mode="after")
    def _check_names(self) -> MongoSourceConfig:
        if self.tables:
            self.collections = [*(self.collections or []), *self.tables]
            self.tables = None
        for key, names in (
            ("collections", self.collections or []),
            ("exclude_collections", self.exclude_collections),
        ):
            bad = [n for n in names if "." not in n.strip(".")]
            if bad:
                raise ValueError(f"{key}: {bad} must be written as `database.collection`")
        return self

    @property
    def full_document_mode(self) -> str:
        return self.full_document or CAPTURE_MODES[self.capture_mode][0]

    @property
    def pre_image_mode(self) -> str:
        return self.full_document_before_change or CAPTURE_MODES[self.capture_mode][1]

    def includes(self, database: str, collection: str) -> bool:
        """Is ``database.collection`` captured by this source?"""
        ns = f"{database}.{collection}"
        if database in self.exclude_databases or ns in self.exclude_collections:
            return False
        if collection.startswith("system."):
            return False
        if self.databases is None and self.collections is None:
            return database not in SYSTEM_DATABASES
        return database in (self.databases or ()) or ns in (self.collections or ())
