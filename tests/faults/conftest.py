"""Fixtures of the fault suite (helpers live in ``tests/faults/support.py``).

Every test under ``tests/faults/`` carries the ``faults`` marker (``pytest -m faults``).
Fault tests break things on purpose (kill a database, freeze or empty the broker), so the
servers they break are private to this suite (``faults_postgres``, ``faults_mariadb``,
``faults_kafka``) and shared by the tests that can share them; tests that break nothing use
the suite-wide ``postgres`` / ``mariadb`` / ``kafka`` of ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cdc_bridge.testing.services import (
    KafkaService,
    MariaDBService,
    PostgresService,
    start_kafka,
    start_mariadb,
    start_postgres,
)
from tests.faults.support import BridgeProcess

FAULTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``faults`` (registered in pyproject.toml)."""
    for item in items:
        if FAULTS_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.faults)


# -- private, breakable servers -------------------------------------------------------------


def _private(service: Any, what: str) -> Any:
    if service.external:
        service.stop()
        pytest.skip(f"{what} fault tests need a private server they may stop (unset the env var)")
    return service


@pytest.fixture(scope="session")
def faults_postgres() -> Iterator[PostgresService]:
    """A private PostgreSQL the fault tests may kill and restart (``.restart(mode=...)``)."""
    with _private(start_postgres(), "Postgres") as service:
        yield service


@pytest.fixture(scope="session")
def faults_mariadb() -> Iterator[MariaDBService]:
    """A private MariaDB the fault tests may kill, shut down and restart."""
    with _private(start_mariadb(), "MariaDB") as service:
        yield service


@pytest.fixture
def faults_kafka() -> Iterator[KafkaService]:
    """A private broker for one test: it may be frozen, restarted empty (``.restart()``)."""
    with _private(start_kafka(), "Kafka") as service:
        yield service


@pytest.fixture
def bridge_process(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    """``bridge_process(conf, name="bridge")`` -> a started :class:`BridgeProcess`; every one
    still running at the end of the test is killed."""
    made: list[BridgeProcess] = []

    def make(
        conf: Mapping[str, Any], name: str = "bridge", start: bool = True, **kw: Any
    ) -> BridgeProcess:
        bp = BridgeProcess(conf, tmp_path, name, **kw)
        made.append(bp)
        return bp.start() if start else bp

    yield make
    for bp in made:
        bp.kill()
