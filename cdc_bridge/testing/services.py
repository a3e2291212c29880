"""Private, throw-away Kafka / Postgres / MariaDB servers for tests, benchmarks and the demo.

Each `start_*` function returns a small handle with `.stop()` (also a context manager):

1. if an environment variable names an external service (`CDC_TEST_KAFKA_BOOTSTRAP`,
   `CDC_TEST_POSTGRES_DSN`, `CDC_TEST_MYSQL_DSN`, `CDC_TEST_MONGODB_URI`) that one is used and
   `stop()` leaves it alone;
2. else, with `CDC_TEST_USE_TESTCONTAINERS=1` and a reachable Docker engine, a container;
3. else a private server process on a free loopback port in a temp dir (removed on stop).

Nothing here imports pytest. Startup prints nothing; failures raise `ServiceError` carrying
the tail of the server log.
"""

from __future__ import annotations

from cdc_bridge.testing._common import (
    ENV_KAFKA,
    ENV_MONGODB,
    ENV_MYSQL,
    ENV_POSTGRES,
    ENV_TESTCONTAINERS,
    ServiceUnavailable,
    use_testcontainers,
)
from cdc_bridge.testing._kafka import KafkaService, start_kafka, tansu_binary
from cdc_bridge.testing._mongodb import MongoDBService, mongodb_uri_from_env, start_mongodb
from cdc_bridge.testing._mysql import (
    MARIADB_BINLOG_OPTIONS,
    MariaDBService,
    MySQLDatabase,
    mariadb_binaries,
    start_mariadb,
)
from cdc_bridge.testing._postgres import PostgresService, postgres_bindir, start_postgres
from cdc_bridge.testing._process import ServiceError

__all__ = [
    "ENV_KAFKA",
    "ENV_MONGODB",
    "ENV_MYSQL",
    "ENV_POSTGRES",
    "ENV_TESTCONTAINERS",
    "MARIADB_BINLOG_OPTIONS",
    "KafkaService",
    "MariaDBService",
    "MongoDBService",
    "MySQLDatabase",
    "PostgresService",
    "ServiceError",
    "ServiceUnavailable",
    "mariadb_binaries",
    "mongodb_uri_from_env",
    "postgres_bindir",
    "start_kafka",
    "start_mariadb",
    "start_mongodb",
    "start_postgres",
    "tansu_binary",
    "use_testcontainers",
]
