"""Shared pytest fixtures: private Kafka / Postgres / MariaDB servers, MongoDB when available.

Servers start once per session (see cdc_bridge/testing/services.py for the environment
variables that point the suite at external services instead). Append new fixtures below.
"""

from __future__ import annotations

import gc
import itertools
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from cdc_bridge.testing.services import (
    KafkaService,
    MariaDBService,
    MySQLDatabase,
    PostgresService,
    ServiceUnavailable,
    start_kafka,
    start_mariadb,
    start_mongodb,
    start_postgres,
)

_counter = itertools.count(1)


def _unique(prefix: str) -> str:
    """A short name unique across this run and parallel runs against shared servers."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaService]:
    """A Kafka-protocol broker for the whole session (`.bootstrap`, `.pause()`, `.resume()`)."""
    with start_kafka() as service:
        yield service
        gc.collect()  # close clients that tests left behind while the broker still answers


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresService]:
    """A PostgreSQL server with wal_level=logical (`.dsn` is a superuser DSN)."""
    with start_postgres() as service:
        yield service


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBService]:
    """A MariaDB server with a full-row binlog and GTIDs (`.dsn`, `.connect()`)."""
    with start_mariadb() as service:
        yield service


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    """URI of a MongoDB replica set; skips the test (with the reason) when there is none."""
    try:
        service = start_mongodb()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    with service:
        yield service.uri


@pytest.fixture
def pg_database(postgres: PostgresService) -> Iterator[str]:
    """A fresh database for one test; returns its superuser DSN. Dropped with its slots after."""
    name = _unique("t")
    dsn = postgres.create_database(name)
    yield dsn
    postgres.drop_database(name)


@pytest.fixture
def mariadb_database(mariadb: MariaDBService) -> Iterator[MySQLDatabase]:
    """A fresh database for one test (`.name`, `.dsn`, `.connect_kwargs()`); dropped after."""
    db = mariadb.create_database(_unique("t"))
    yield db
    mariadb.drop_database(db.name)


@pytest.fixture
def topic_name() -> Callable[..., str]:
    """Call it for unique Kafka topic names: `topic_name()` or `topic_name("orders")`."""

    def make(prefix: str = "test") -> str:
        return _unique(prefix).replace("_", "-")

    return make


@pytest.fixture
def salesforce_emulator() -> Iterator[object]:
    """A private Salesforce REST API emulator (HTTPS; see cdc_bridge/testing/salesforce).

    Reach it with `emulator_session(emu)` / `simple_salesforce_client(emu)`; tune it per test
    with `emu.set_faults(FaultConfig(...))`, `emu.reset_quota(...)`, `emu.expire_sessions()`.
    """
    from cdc_bridge.testing.salesforce import SalesforceEmulator

    with SalesforceEmulator(bulk_delay=0.02) as emu:
        yield emu
