"""Alembic environment of the state store.

Run programmatically by :meth:`cdc_bridge.state.StateStore.migrate`, which passes an open
connection in ``config.attributes["connection"]``; ``alembic -c alembic.ini ...`` (repo root)
works too for writing new revisions. Concurrent starts are serialised with a database lock
(Postgres advisory lock, MySQL GET_LOCK; SQLite: the caller holds a file lock).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from cdc_bridge.state import VERSION_TABLE, metadata

config = context.config
LOCK_ID = 0x6364_6362_7269  # "cdcbri"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        elif connection.dialect.name in ("mysql", "mariadb"):
            connection.execute(text("SELECT GET_LOCK('cdc_bridge_migrate', 60)"))
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
