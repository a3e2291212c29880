"""Log lines a new user reads in the first hour: the component named once, route patterns as
written in routes.toml, and no "bridge ... started" after a component already failed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdc_bridge.config import parse_config
from cdc_bridge.logs import JsonFormatter, TextFormatter, without_component
from cdc_bridge.runtime import Bridge
from tests import fakekinds
from tests.routes_support import config, run_routes, wait_for


def _record(component: str, msg: str, *args: Any) -> logging.LogRecord:
    record = logging.LogRecord("cdc_bridge.routes", logging.INFO, __file__, 1, msg, args, None)
    record.component = component
    return record


@pytest.mark.parametrize(
    ("component", "message", "expected"),
    [
        ("source=shop", "source shop: streaming from 0/16B3748", "streaming from 0/16B3748"),
        ("source=shop", "source=shop failed: lost", "failed: lost"),
        ("route=to-crm", "route to-crm: assigned t[0]", "assigned t[0]"),
        ("route=to-crm", "route other: assigned t[0]", "route other: assigned t[0]"),
        ("source=shop", "snapshot done", "snapshot done"),
        ("", "source shop: x", "source shop: x"),
    ],
)
def test_without_component(component: str, message: str, expected: str) -> None:
    assert without_component(component, message) == expected


def test_text_and_json_lines_name_the_component_once() -> None:
    record = _record("route=to-crm", "route %s: consuming %s", "to-crm", "shop.public.*")
    line = TextFormatter().format(record)
    assert line.count("to-crm") == 1
    assert line.endswith("INFO  route=to-crm  consuming shop.public.*")
    doc = orjson.loads(JsonFormatter().format(record))
    assert doc["component"] == "route=to-crm" and doc["msg"] == "consuming shop.public.*"


def test_route_logs_its_patterns_as_written(
    kafka: Any, topic_name: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = topic_name("shop")
    cfg = config(
        kafka.bootstrap,
        f"sqlite:///{tmp_path / 'target.db'}",
        [{"name": "globbed", "from": [f"{prefix}.public.*", f"{prefix}.sales.orders"]}],
    )
    with caplog.at_level(logging.INFO, logger="cdc_bridge.routes"), run_routes(cfg):
        wait_for(lambda: "consuming" in caplog.text, timeout=30, what="the consuming line")
    line = next(r.getMessage() for r in caplog.records if "consuming" in r.getMessage())
    assert f"consuming {prefix}.public.*, {prefix}.sales.orders as group" in line
    assert "^" not in line and "\\." not in line


FAILING = """\
[bridge]
name = "early"
state = "sqlite:///{state}"
metrics = ""

[kafka]
bootstrap_servers = "{bootstrap}"
topic_partitions = 1

[[sources]]
name = "{name}"
kind = "fake"
dsn = "fake://localhost/db"
rows = 0
fail_run = true
"""


def test_no_started_line_after_a_failure(
    tmp_path: Path,
    kafka: Any,
    topic_name: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fakekinds.register(monkeypatch)
    for attempt in range(3):
        text = FAILING.format(
            state=tmp_path / f"state{attempt}.db", bootstrap=kafka.bootstrap, name=topic_name("f")
        )
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cdc_bridge"):
            assert Bridge(parse_config(text), checkpoint_interval=0.05).run() == 1
        messages = [r.getMessage() for r in caplog.records]
        failed = next(i for i, m in enumerate(messages) if "failed: fake source lost" in m)
        started = [i for i, m in enumerate(messages) if "bridge early started" in m]
        assert all(i < failed for i in started), messages
