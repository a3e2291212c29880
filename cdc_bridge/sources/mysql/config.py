"""The ``kind = "mysql"`` source's config model (MySQL 8 / MariaDB 10.6+ row binlog)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator

from cdc_bridge.config import SourceConfigBase

__all__ = ["MySqlSourceConfig"]


class MySqlSourceConfig(SourceConfigBase):
    """A MySQL or MariaDB server streamed from its row binlog as a replica."""

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
        "precise",
        description="BIGINT UNSIGNED as Connect Decimal (precise, never overflows) or int64 "
        "(long; values above 2^63-1 wrap, as in Debezium's long mode).",
        examples=["precise"],
    )
    skip_gtid_domains: list[int] = Field(
        default_factory=list,
        description="MariaDB: skip transactions in these GTID domains — the writes of a "
        "database sink with `gtid_domain_id` set, so a two-way sync does not echo them back "
        "(MySQL has no GTID domains: not available there).",
        examples=[[77]],
    )
    include_query: bool = Field(
        True,
        description="Fill source.query with the statement (needs binlog_annotate_row_events "
        "on MariaDB, binlog_rows_query_log_events on MySQL).",
        examples=[True],
    )
    snapshot_batch_rows: int = Field(
        10_000, ge=1, description="Rows per snapshot batch.", examples=[10000]
    )
    heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="Server heartbeat interval on the binlog connection (seconds).",
        examples=[5.0],
    )
    max_batch_rows: int = Field(
        5_000,
        ge=1,
        description="Rows handed to Kafka per batch while streaming (large transactions are "
        "split and resume at the right row).",
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
