"""Target database URLs for database-sink tests: SQLite, PostgreSQL, MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty target database, one per dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
    elif request.param == "postgres":
        dsn = request.getfixturevalue("pg_database")
        yield dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        db = request.getfixturevalue("mariadb_database")
        yield db.dsn.replace("mysql://", "mysql+pymysql://", 1)
