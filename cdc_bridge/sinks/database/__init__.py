"""The SQL database sink: Kafka change events into PostgreSQL, MySQL/MariaDB or SQLite tables."""

from cdc_bridge.sinks.database._psycopg_noise import install as _quiet_psycopg_pipelines

_quiet_psycopg_pipelines()
