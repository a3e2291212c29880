"""Config of the SQL database sink (``[[sinks]] kind = "database"``) and its route keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cdc_bridge.config import RouteConfigBase, SinkConfigBase, dsn_with_schemes

__all__ = ["DatabaseRouteConfig", "DatabaseSinkConfig"]


class DatabaseSinkConfig(SinkConfigBase):
    """A SQL database target: PostgreSQL, MySQL/MariaDB or SQLite, through SQLAlchemy 2."""

    kind: Literal["database"] = Field(description="Sink kind.", examples=["database"])
    url: dsn_with_schemes(  # type: ignore[valid-type]
        "postgresql",
        "postgres",
        "mysql",
        "mariadb",
        "sqlite",
        example="postgresql+psycopg://writer@dw:5432/analytics",
    ) = Field(
        description="SQLAlchemy URL of the target database (put the password in ${ENV}; it is never shown).",
        examples=[
            "postgresql+psycopg://writer:${DW_PASSWORD}@dw:5432/analytics",
            "mysql+pymysql://writer:${DW_PASSWORD}@dw:3306/analytics",
            "sqlite:///./target.db",
        ],
    )
    offsets_table: str = Field(
        "cdc_bridge_offsets",
        description="Table in the target holding the routes' consumer offsets (exactly-once).",
        examples=["cdc_bridge_offsets"],
    )
    pool_size: int = Field(2, ge=1, description="Connections kept per route.", examples=[2])
    replication_origin: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_]{1,50}$",
        description="PostgreSQL targets: mark every transaction of this sink with a replication "
        "origin named `<replication_origin>_<n>` (one per connection; created when missing), so "
        'a Postgres source of the same database with `skip_origins = ["<replication_origin>*"]` '
        "skips them: two-way sync without echo. Needs superuser, or EXECUTE on the "
        "pg_replication_origin_* functions.",
        examples=["cdc_bridge"],
    )
    gtid_domain_id: int | None = Field(
        None,
        ge=1,
        le=0xFFFFFFFF,
        description="MariaDB targets: run this sink's transactions in this GTID domain "
        "(`SET SESSION gtid_domain_id`), so a MariaDB source of the same server with "
        "`skip_gtid_domains = [<id>]` skips them: two-way sync without echo. Needs SUPER "
        "(or BINLOG ADMIN); pick a domain no server uses. Not available on MySQL.",
        examples=[77],
    )


class DatabaseRouteConfig(RouteConfigBase):
    """Route keys for a database sink."""

    table: str = Field(
        "{table}",
        description="Target table name template with {source}, {schema}, {database}, {table}, {topic}.",
        examples=["{schema}_{table}", "orders"],
    )
    target_schema: str | None = Field(
        None,
        description="Schema (Postgres) or database (MySQL) of the target tables; the connection's default when omitted.",
        examples=["replica"],
    )
    mode: Literal["upsert", "insert"] = Field(
        "upsert",
        description="upsert: insert or update by key (idempotent); insert: plain inserts.",
        examples=["upsert"],
    )
    deletes: Literal["delete", "ignore", "soft"] = Field(
        "delete",
        description="delete: delete the row; ignore: keep it; soft: set soft_delete_column.",
        examples=["soft"],
    )
    soft_delete_column: str = Field(
        "__deleted",
        description="Boolean column set to true on soft deletes (false on writes).",
        examples=["is_deleted"],
    )
    truncates: Literal["apply", "ignore"] = Field(
        "ignore",
        description="apply: a source TRUNCATE deletes every row of the target table.",
        examples=["apply"],
    )
    schema_evolution: Literal["none", "basic"] = Field(
        "basic",
        description="basic: create missing tables and add missing columns from the event schema (never drops or retypes); none: the tables must exist.",
        examples=["basic"],
    )
    key: list[str] | None = Field(
        None,
        description="Key columns of the target (after mapping); the record key's fields when omitted.",
        examples=[["id"]],
    )

    @model_validator(mode="after")
    def _check_template(self) -> DatabaseRouteConfig:
        try:
            self.table.format(source="s", schema="s", database="d", table="t", topic="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"table: bad template {self.table!r} ({exc}); use {{source}}, {{schema}}, "
                "{database}, {table} or {topic}"
            ) from None
        return self
