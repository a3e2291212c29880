"""The ``kind = "mysql"`` source's config model (MySQL 8 / MariaDB 10.6+ row binlog)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator

from cdc_bridge.config import IncrementalSnapshotSettings, SourceConfigBase

__all__ = ["MySqlSourceConfig"]


class MySqlSourceConfig(IncrementalSnapshotSettings, SourceConfigBase):
    """A MySQL or MariaDB server streamed from its row binlog as a replica."""

    renamed_keys: ClassVar[dict[str, tuple[str, float]]] = {
        "snapshot_batch_rows": ("snapshot_batch_size", 1),
        "max_batch_rows": ("stream_batch_size", 1),
        "heartbeat_s": ("heartbeat_interval_ms", 1000),
    }

    kind: Literal["mysql"] = Field(description="Source kind.", examples=["mysql"])
    dsn: SecretStr = Field(
        description="Connection URL `mysql://user:password@host:port/` of a user with "
        "SELECT, RELOAD (MySQL snapshot lock), REPLICATION SLAVE and REPLICATION CLIENT.",
        examples=["mysql://cdc:${MYSQL_PASSWORD}@db1:3306/"],
        json_schema_extra={"secret": True},
    )
    server_id: int = Field(
        5400,
        ge=1,
        le=4294967295,
        description="Replica server id this bridge registers with; unique among the "
        "server's replicas and different from the server's own server_id.",
        examples=[5400],
    )
    gtid: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Resume by GTID (MySQL gtid_mode=ON, MariaDB GTIDs) or by binlog "
        "file+position: auto uses GTIDs when the server has them.",
        examples=["auto"],
    )
    zero_dates: Literal["auto", "null", "epoch"] = Field(
        "auto",
        description="Zero dates ('0000-00-00'): auto = null in nullable columns, else the "
        "epoch (Debezium's rule); null; epoch.",
        examples=["auto"],
    )
    bigint_unsigned_handling: Literal["precise", "long"] = Field(
        "long",
        description="BIGINT UNSIGNED as int64 (long, Debezium's default; values above "
        "2^63-1 wrap to negative numbers) or Connect Decimal (precise, never overflows).",
        examples=["long"],
    )
    skip_gtid_domains: list[int] = Field(
        default_factory=list,
        description="MariaDB: skip transactions in these GTID domains — the writes of a "
        "database sink with `gtid_domain_id` set, so a two-way sync does not echo them back "
        "(MySQL has no GTID domains: not available there).",
        examples=[[77]],
    )
    include_query: bool = Field(
        False,
        description="Fill source.query with the statement, as Debezium's include.query "
        "(off by default: the text can expose data; needs binlog_annotate_row_events on "
        "MariaDB, binlog_rows_query_log_events on MySQL).",
        examples=[False],
    )
    replace_null_with_default: bool = Field(
        False,
        description="Write a column's default value instead of NULL, as Kafka Connect's "
        "JsonConverter does behind Debezium (`replace.null.with.default=true`). Off: a NULL "
        "stays null (the schema still carries the default).",
        examples=[False],
    )
    mariadb_json: Literal["string", "json"] = Field(
        "string",
        description="MariaDB JSON columns (LONGTEXT with a json_valid() check): a plain "
        "string as Debezium emits them (string), or a string named io.debezium.data.Json "
        "as for MySQL's JSON type (json).",
        examples=["string"],
    )
    snapshot_batch_size: int = Field(
        10_000,
        ge=1,
        description="Rows per snapshot chunk. Formerly `snapshot_batch_rows`.",
        examples=[10000],
    )
    heartbeat_interval_ms: int = Field(
        5_000,
        ge=1,
        description="Server heartbeat interval on the binlog connection, in milliseconds. "
        "Formerly `heartbeat_s` (seconds).",
        examples=[5000],
    )
    stream_batch_size: int = Field(
        5_000,
        ge=1,
        description="Rows handed to Kafka per batch while streaming (large transactions are "
        "split and resume at the right row). Formerly `max_batch_rows`.",
        examples=[5000],
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, v: SecretStr) -> SecretStr:
        parts = urlsplit(v.get_secret_value())
        if parts.scheme not in {"mysql", "mariadb", "mysql+pymysql"} or not parts.hostname:
            raise ValueError("must look like mysql://user:password@host:port/")
        return v

    @field_validator("tables")
    @classmethod
    def _check_tables(cls, v: list[str] | None) -> list[str] | None:
        for t in v or []:
            if t.count(".") != 1 or not all(t.split(".")):
                raise ValueError(f"{t!r}: tables are named `database.table`")
        return v

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        parts = urlsplit(self.dsn.get_secret_value())
        return {
            "host": parts.hostname,
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
        }
