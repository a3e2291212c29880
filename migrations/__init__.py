"""Alembic migrations of the state store, shipped inside the package (run by ``StateStore.migrate``)."""
