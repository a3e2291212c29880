"""The state store: Alembic migrations on SQLite and Postgres (upgrades from older revisions
too), atomic upserts, concurrent writers, dead-letter index, sink offsets."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cdc_bridge.errors import ConfigError
from cdc_bridge.state import VERSION_TABLE, StateStore, metadata, normalize_url


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sub' / 'state.db'}"


def assert_schema_matches_models(store: StateStore) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, metadata)
    assert diff == [], diff


def migrate_to(store: StateStore, revision: str, *, down: bool = False) -> None:
    """Up- (or down-) grade ``store`` to ``revision``: the schema a past release left."""
    with store.engine.connect() as conn:
        cfg = store._alembic_config(conn)
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()


def upgrade_from_0002_with_snapshot_progress(store: StateStore) -> None:
    """A store left by a release at 0002, holding a snapshot_progress row and a position,
    upgrades to head: the table is gone, the position and the dead letters stay."""
    migrate_to(store, "0002")
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                'INSERT INTO snapshot_progress (source, "table", last_key, rows, done, updated_at) '
                "VALUES ('orders', 'public.orders', '[10]', 1000, false, :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    store.save_offset("orders", {"lsn": 5})
    letter = store.add_dead_letter("to-db", "t", 0, 1, None, "e")
    assert "snapshot_progress" in sa.inspect(store.engine).get_table_names()
    assert store.migrate() == ("0002", store.head_revision())
    assert "snapshot_progress" not in sa.inspect(store.engine).get_table_names()
    assert_schema_matches_models(store)
    assert store.load_offset("orders") == {"lsn": 5}
    assert [d.id for d in store.dead_letters("to-db")] == [letter]


def test_migrate_creates_tables_and_is_idempotent(tmp_path: Path) -> None:
    store = StateStore(sqlite_url(tmp_path))
    assert store.current_revision() is None
    before, after = store.migrate()
    assert before is None
    assert after == store.head_revision() is not None
    assert store.migrate() == (after, after)
    assert set(sa.inspect(store.engine).get_table_names()) >= {
        "source_offsets",
        "sink_offsets",
        "dead_letters",
        VERSION_TABLE,
    }
    assert "snapshot_progress" not in sa.inspect(store.engine).get_table_names()
    assert_schema_matches_models(store)
    store.close()


def test_upgrade_from_0002_drops_snapshot_progress_and_downgrade_restores_it(
    tmp_path: Path,
) -> None:
    store = StateStore(sqlite_url(tmp_path))
    upgrade_from_0002_with_snapshot_progress(store)
    migrate_to(store, "0002", down=True)  # the downgrade re-creates the table as 0001 made it
    columns = {c["name"]: c for c in sa.inspect(store.engine).get_columns("snapshot_progress")}
    assert list(columns) == ["source", "table", "last_key", "rows", "done", "updated_at"]
    assert [c for c in columns if columns[c]["nullable"]] == ["last_key"]
    assert store.current_revision() == "0002"
    assert store.migrate() == ("0002", store.head_revision())
    store.close()


def test_default_url_creates_directory_and_uses_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = StateStore(migrate=True)
    store.save_offset("orders", {"lsn": 1})
    db = tmp_path / ".cdc-bridge" / "state.db"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_offsets_upsert_and_survive_reopen(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = StateStore(url, migrate=True)
    assert store.load_offset("orders") is None
    store.save_offset("orders", {"lsn": "0/16B3748", "txid": 7})
    store.save_offset("orders", {"lsn": "0/16B3750", "txid": 8})
    store.save_offset("users", {"gtid": "0-1-5"})
    store.close()
    again = StateStore(url, migrate=True)
    assert again.load_offset("orders") == {"lsn": "0/16B3750", "txid": 8}
    assert again.load_offset("users") == {"gtid": "0-1-5"}
    assert set(again.offsets()) == {"orders", "users"}
    assert again.delete_offset("users") is True
    assert again.load_offset("users") is None
    again.close()


def test_failed_save_keeps_previous_offset(tmp_path: Path) -> None:
    store = StateStore(sqlite_url(tmp_path), migrate=True)
    store.save_offset("orders", {"lsn": 1})
    with pytest.raises(sa.exc.StatementError, match="not JSON serializable"):
        store.save_offset("orders", {"lsn": object()})
    assert store.load_offset("orders") == {"lsn": 1}
    store.close()


def _writer(url: str, worker: int, rounds: int) -> None:
    store = StateStore(url)
    for i in range(rounds):
        store.save_offset(f"own-{worker}", {"i": i})
        store.save_offset("shared", {"worker": worker, "i": i})
    store.close()


def test_concurrent_writers_processes_sqlite(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    StateStore(url, migrate=True).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = StateStore(url)
    for w in range(4):
        assert store.load_offset(f"own-{w}") == {"i": 99}
    shared = store.load_offset("shared")
    assert shared is not None and shared["i"] == 99 and shared["worker"] in range(4)
    store.close()


def test_concurrent_migrations_sqlite(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            StateStore(url, migrate=True).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert StateStore(url).current_revision() is not None


def test_dead_letter_index(tmp_path: Path) -> None:
    store = StateStore(sqlite_url(tmp_path), migrate=True)
    a = store.add_dead_letter("to-crm", "orders.public.customers", 2, 41, b'{"id":1}', "bad field")
    b = store.add_dead_letter("to-crm", "orders.public.customers", 0, 7, None, "too long")
    store.add_dead_letter("to-db", "orders.public.orders", 1, 3, b"k", "constraint")
    pending = store.dead_letters("to-crm")
    assert [d.id for d in pending] == [a, b]
    assert pending[0].partition == 2 and pending[0].offset == 41
    assert pending[0].key == b'{"id":1}' and pending[0].error == "bad field"
    assert pending[0].created_at.tzinfo is not None and pending[0].replayed_at is None
    assert store.count_dead_letters() == 3
    assert store.mark_replayed([a]) == 1
    assert store.mark_replayed([a]) == 0
    assert [d.id for d in store.dead_letters("to-crm")] == [b]
    assert len(store.dead_letters("to-crm", include_replayed=True)) == 2
    assert store.count_dead_letters("to-crm") == 1
    assert store.add_dead_letters("to-db", [("t", 0, i, None, f"e{i}") for i in range(5)]) == 5
    assert [d.offset for d in store.dead_letters("to-db")] == [3, 0, 1, 2, 3, 4]
    store.close()


def test_sink_offsets(tmp_path: Path) -> None:
    store = StateStore(sqlite_url(tmp_path), migrate=True)
    store.save_sink_offsets("to-db", {("t", 0): 10, ("t", 1): 4})
    store.save_sink_offsets("to-db", {("t", 0): 12})
    assert store.load_sink_offsets("to-db") == {("t", 0): 12, ("t", 1): 4}
    with store.engine.begin() as conn:  # joining a caller's transaction that rolls back
        store.save_sink_offsets("to-db", {("t", 1): 99}, conn=conn)
        conn.rollback()
    assert store.load_sink_offsets("to-db")[("t", 1)] == 4
    store.close()


def test_urls() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("mysql://u:p@h/db").drivername == "mysql+pymysql"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ConfigError, match=r"bridge\.state"):
        StateStore("not a url")
    with pytest.raises(ConfigError, match="no driver"):
        StateStore("nosuchdb://h/x")
    assert "hunter2" not in repr(StateStore("postgresql://u:hunter2@127.0.0.1:1/db"))


# -- Postgres ------------------------------------------------------------------------------


def test_postgres_migrations_and_offsets(pg_database: str) -> None:
    store = StateStore(pg_database)
    assert store.migrate()[0] is None
    assert_schema_matches_models(store)
    store.save_offset("orders", {"lsn": 1})
    store.save_offset("orders", {"lsn": 2})
    assert store.load_offset("orders") == {"lsn": 2}
    dl = store.add_dead_letter("r", "t", 0, 1, None, "e")
    assert store.dead_letters()[0].id == dl
    store.close()


def test_postgres_upgrade_from_0002_drops_snapshot_progress(pg_database: str) -> None:
    store = StateStore(pg_database)
    upgrade_from_0002_with_snapshot_progress(store)
    store.close()


def _pg_worker(url: str, worker: int) -> None:
    store = StateStore(url, migrate=True)
    for i in range(50):
        store.save_offset("shared", {"worker": worker, "i": i})
        store.save_offset(f"own-{worker}", {"i": i})
    store.close()


def test_postgres_concurrent_migrations_and_writers(pg_database: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_pg_worker, args=(pg_database, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = StateStore(pg_database)
    assert store.current_revision() == store.head_revision()
    assert all(store.load_offset(f"own-{w}") == {"i": 49} for w in range(4))
    assert store.load_offset("shared")["i"] == 49  # type: ignore[index]
    store.close()
