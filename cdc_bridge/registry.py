"""The registry of source and sink kinds: kind name -> config model and implementation.

Entries are "module:attribute" strings, imported on first use, so validating a config does
not import every database driver. The config loader, ``check`` and the docs generator walk
these tables; ``status`` and ``cli`` walk them for per-kind probes, sub-commands and the
``resnapshot`` hook. To add a kind, add one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SINK_KINDS", "SOURCE_KINDS", "Kind", "ResnapshotHook", "load"]


def load(ref: str) -> Any:
    """Import ``"package.module:Attribute"``."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ResnapshotHook:
    """What ``cdc-bridge resnapshot`` does for a source kind besides forgetting the saved
    position (e.g. Postgres drops its replication slot and publication).

    ``confirm``: the words added to the confirmation question ("Forget the position of source
    'x' and <confirm>?"). ``run``: ``(source config) -> one line for the user``; it raises a
    :class:`~cdc_bridge.errors.BridgeError` when it cannot, before the position is forgotten.
    """

    confirm: str
    run: Callable[[Any], str]


@dataclass(frozen=True)
class Kind:
    """One kind of source or sink.

    ``config``: its pydantic model (``[[sources]]`` / ``[[sinks]]`` entry).
    ``impl``: the class that runs it.
    ``route_config``: for sinks, the model of the sink-specific keys of a ``[[routes]]`` entry.
    ``status``: for sources, the ``cdc-bridge status`` probe ``(config, saved offset dict,
    warn_bytes) -> SourceStatus``, next to the connector's code.
    ``cli``: a typer app mounted as ``cdc-bridge <kind> ...`` (maintenance commands).
    ``resnapshot``: for sources, a :class:`ResnapshotHook` run by ``cdc-bridge resnapshot``.
    """

    name: str
    config: str
    impl: str
    route_config: str | None = None
    summary: str = ""
    status: str | None = None
    cli: str | None = None
    resnapshot: str | None = None

    def config_model(self) -> Any:
        return load(self.config)

    def implementation(self) -> Any:
        return load(self.impl)

    def route_model(self) -> Any:
        return load(self.route_config) if self.route_config else None

    def status_probe(self) -> Any:
        return load(self.status) if self.status else None

    def cli_app(self) -> Any:
        return load(self.cli) if self.cli else None

    def resnapshot_hook(self) -> ResnapshotHook | None:
        return load(self.resnapshot) if self.resnapshot else None


SOURCE_KINDS: dict[str, Kind] = {
    "postgres": Kind(
        "postgres",
        "cdc_bridge.sources.postgres.config:PostgresSourceConfig",
        "cdc_bridge.sources.postgres.source:PostgresSource",
        summary="PostgreSQL logical replication (pgoutput)",
        status="cdc_bridge.sources.postgres.status:probe",
        cli="cdc_bridge.sources.postgres.cli:app",
        resnapshot="cdc_bridge.sources.postgres.cli:resnapshot",
    ),
    "mysql": Kind(
        "mysql",
        "cdc_bridge.sources.mysql.config:MySqlSourceConfig",
        "cdc_bridge.sources.mysql.source:MySqlSource",
        summary="MySQL / MariaDB row binlog",
        status="cdc_bridge.sources.mysql.status:probe",
    ),
    "mongodb": Kind(
        "mongodb",
        "cdc_bridge.sources.mongodb.config:MongoSourceConfig",
        "cdc_bridge.sources.mongodb.source:MongoSource",
        summary="MongoDB change streams",
        status="cdc_bridge.sources.mongodb.status:probe",
    ),
    "salesforce": Kind(
        "salesforce",
        "cdc_bridge.sources.salesforce.config:SalesforceSourceConfig",
        "cdc_bridge.sources.salesforce.source:SalesforceSource",
        summary="Salesforce Change Data Capture and platform events (Pub/Sub API)",
        status="cdc_bridge.sources.salesforce.status:probe",
    ),
}

SINK_KINDS: dict[str, Kind] = {
    "database": Kind(
        "database",
        "cdc_bridge.sinks.database.config:DatabaseSinkConfig",
        "cdc_bridge.sinks.database.sink:DatabaseSink",
        route_config="cdc_bridge.sinks.database.config:DatabaseRouteConfig",
        summary="SQL database via SQLAlchemy (PostgreSQL, MySQL/MariaDB, SQLite)",
    ),
    "salesforce": Kind(
        "salesforce",
        "cdc_bridge.sinks.salesforce.config:SalesforceSinkConfig",
        "cdc_bridge.sinks.salesforce.sink:SalesforceSink",
        route_config="cdc_bridge.sinks.salesforce.config:SalesforceRouteConfig",
        summary="Salesforce SObjects via REST (sObject Collections, Bulk API 2.0)",
    ),
    "kafka": Kind(
        "kafka",
        "cdc_bridge.sinks.kafka_topic:KafkaTopicSinkConfig",
        "cdc_bridge.sinks.kafka_topic:KafkaTopicSink",
        route_config="cdc_bridge.sinks.kafka_topic:KafkaTopicRouteConfig",
        summary="Derived Kafka topics (filtered, mapped rows for other consumers)",
    ),
}
