"""``cdc-bridge dlq replay`` on a database route: each letter is replayed once (a second run
does nothing, an undecodable letter is not appended again), a letter older than what the
target holds for its key is skipped as superseded (an old version replayed after the row's
delete must not resurrect it), and ``dlq list`` shows what happened to each letter."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from cdc_bridge.cli import app
from cdc_bridge.config import load_config
from cdc_bridge.routes import ReplayResult, build_workers, replay_dead_letters
from cdc_bridge.sinks.database.sink import normalize_url
from cdc_bridge.state import StateStore
from tests.faults._routes import (
    ITEMS,
    assert_dead_letters,
    assert_target,
    encoded,
    item,
    items_topic,
    produce_records,
    target_rows,
)
from tests.faults.support import bridge_config, cli, wait_for, write_config
from tests.routes_support import Running, event


def test_replay_is_idempotent_and_never_moves_a_row_backwards(
    tmp_path: Path, kafka: Any, pg_database: str, topic_name: Any
) -> None:
    engine = sa.create_engine(normalize_url(pg_database))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, qty integer, name text)")
    topic = items_topic(topic_name, kafka.bootstrap)
    first_records = encoded(
        [
            event(ITEMS, "c", None, item(1)),  # 0
            event(ITEMS, "u", None, item(1, qty="lots")),  # 1: dead (qty is an integer)
            event(ITEMS, "c", None, item(2, qty="some")),  # 2: dead
        ]
    )
    later_records = encoded(
        [
            event(ITEMS, "d", item(1), None),  # 3 (+ tombstone 4): row 1 deleted
            event(ITEMS, "c", None, item(3)),  # 5
        ]
    )
    later_records.append((topic, b'{"id": 9}', b"\x00garbage"))  # 6: dead, undecodable
    bridge = f"b{uuid.uuid4().hex[:8]}"
    conf = bridge_config(
        tmp_path,
        kafka.bootstrap,
        sinks=[{"name": "target", "kind": "database", "url": pg_database}],
        routes=[
            {
                "name": "items",
                "from": topic,
                "to": "target",
                "table": "items",
                "max_retries": 0,
                "linger_ms": 50,
            }
        ],
        bridge={"name": bridge},
    )
    path = write_config(tmp_path / "routes.toml", conf)
    cfg = load_config(path)
    store = StateStore(cfg.bridge.state, migrate=True)
    try:
        with Running(build_workers(cfg, store)) as running:
            worker = running.workers[0]
            # the bad update of row 1 fails before its delete arrives (another batch)
            produce_records(kafka.bootstrap, topic, first_records)
            wait_for(lambda: worker.dead == 2, 60, "two dead letters")
            produce_records(kafka.bootstrap, topic, later_records)
            wait_for(
                lambda: worker.dead == 3 and worker.applied + worker.dead == 7,
                60,
                "every record applied or dead-lettered",
            )
    finally:
        store.close()
    assert sorted(target_rows(pg_database, "items")) == [3]

    # The target is fixed (qty takes text now); the letters are replayed.
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items ALTER COLUMN qty TYPE text")
    engine.dispose()
    first = cli("dlq", "replay", "--route", "items", "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert "1 replayed, 1 superseded, 1 failed again, 0 skipped" in first.stdout
    # the second run (in this process: the same code the command runs) finds nothing to do
    store = StateStore(cfg.bridge.state)
    try:
        assert replay_dead_letters(cfg, "items", store) == ReplayResult()
    finally:
        store.close()

    listed = CliRunner().invoke(app, ["dlq", "list", "--route", "items", "--config", str(path)])
    assert listed.exit_code == 0, listed.output
    lines = {ln.split()[1]: ln.split()[3] for ln in listed.output.splitlines() if "@" in ln}
    assert lines == {
        f"{topic}[0]@1": "superseded",
        f"{topic}[0]@2": "replayed",
        f"{topic}[0]@6": "failed",
    }, listed.output

    # Row 1 stays deleted; row 2 arrived with the replay; nothing was appended again.
    assert_target(
        pg_database,
        "items",
        {
            2: {"id": 2, "qty": "some", "name": "item 2"},
            3: {"id": 3, "qty": "30", "name": "item 3"},
        },
    )
    assert_dead_letters(kafka.bootstrap, bridge, "items", topic, [1, 2, 6])
