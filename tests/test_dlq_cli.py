"""`cdc-bridge check` reports expression errors with the route path; `cdc-bridge dlq list`
and `dlq replay --route R` work on a real broker, target and state store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from cdc_bridge.cli import app
from cdc_bridge.config import load_config
from cdc_bridge.routes import build_workers
from cdc_bridge.state import StateStore
from tests.routes_support import Running, col, create_topic, encode, event, produce, table, wait_for

CONFIG = """\
[bridge]
name = "{bridge}"
state = "sqlite:///{state}"

[kafka]
bootstrap_servers = "{bootstrap}"

[kafka.consumer]
"session.timeout.ms" = 2000
"heartbeat.interval.ms" = 300

[[sinks]]
name = "dw"
kind = "database"
url = "sqlite:///{target}"

[[routes]]
name = "cust"
from = "{topic}"
to = "dw"
max_retries = 0
linger_ms = 50
filter = '{filter}'
"""


def write(tmp_path: Path, **kw: Any) -> Path:
    values = {
        "bridge": "b",
        "state": tmp_path / "state.db",
        "bootstrap": "127.0.0.1:9",
        "target": tmp_path / "target.db",
        "topic": "x.public.customers",
        "filter": 'op != "t"',
        **kw,
    }
    path = tmp_path / "routes.toml"
    path.write_text(CONFIG.format(**values))
    return path


def test_check_reports_a_bad_filter_with_its_route_and_position(tmp_path: Path) -> None:
    path = write(tmp_path, filter='after.country == "US" and')
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "routes[0].filter" in out
    assert "position 26" in out


def test_dlq_list_and_replay(tmp_path: Path, kafka: Any, topic_name: Any) -> None:
    prefix = topic_name("shop")
    bridge = topic_name("br")
    t = table(source=prefix, columns=(col("id", "int32", False), col("n", "int32")))
    create_topic(kafka.bootstrap, t.topic)
    target = tmp_path / "target.db"
    engine = sa.create_engine(f"sqlite:///{target}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, n INTEGER CHECK (n < 10))"
        )
    produce(
        kafka.bootstrap,
        encode([event(t, "c", None, {"id": i, "n": i * 4}) for i in range(4)]),  # 12 fails
    )
    path = write(tmp_path, bridge=bridge, bootstrap=kafka.bootstrap, topic=t.topic)
    cfg = load_config(path)
    store = StateStore(cfg.bridge.state, migrate=True)
    try:
        with Running(build_workers(cfg, store)) as running:
            wait_for(lambda: running.workers[0].dead == 1, what="a dead letter")
            wait_for(lambda: running.workers[0].applied == 3, what="the rest applied")
        assert [(d.route, d.offset) for d in store.dead_letters("cust")] == [("cust", 3)]
    finally:
        store.close()

    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--config", str(path)])
    assert listed.exit_code == 0, listed.output
    assert f"{t.topic}[0]@3" in listed.output.replace("\n", "")
    assert "CHECK constraint failed" in listed.output
    assert "1 dead letter(s)" in listed.output

    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE customers")
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.exec_driver_sql("INSERT INTO customers VALUES (0, 0), (1, 4), (2, 8)")
    replayed = runner.invoke(app, ["dlq", "replay", "--route", "cust", "--config", str(path)])
    assert replayed.exit_code == 0, replayed.output
    assert "1 replayed, 0 superseded, 0 failed again, 0 skipped" in replayed.output
    with engine.connect() as conn:
        assert list(conn.exec_driver_sql("SELECT id, n FROM customers ORDER BY id")) == [
            (0, 0),
            (1, 4),
            (2, 8),
            (3, 12),
        ]
    engine.dispose()
    store = StateStore(cfg.bridge.state)
    try:
        assert store.dead_letters("cust") == []  # marked replayed in the index
    finally:
        store.close()

    unknown = runner.invoke(app, ["dlq", "replay", "--route", "nope", "--config", str(path)])
    assert unknown.exit_code == 2
    assert "no route named 'nope'" in unknown.output
