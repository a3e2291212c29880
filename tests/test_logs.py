"""Log lines: text by default, JSON with --log-format json; each line names its component."""

from __future__ import annotations

import logging
import threading

import orjson
import pytest

from cdc_bridge.logs import component, set_component, setup_logging


@pytest.fixture
def reset_root() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_lines_carry_component(reset_root: object, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("text", "INFO")
    log = logging.getLogger("cdc_bridge.test")
    with component("source=orders"):
        log.info("hello %s", "world")
    log.debug("hidden")
    log.warning("plain")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].endswith("INFO  source=orders  hello world")
    assert err[1].endswith("WARNING test  plain")


def test_json_lines_component_per_thread_and_extras(
    reset_root: object, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("json", "DEBUG")
    log = logging.getLogger("cdc_bridge.test")

    def worker() -> None:
        set_component("route=to-crm")
        log.info("applied", extra={"records": 5})

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    log.error("boom", extra={"component": "source=x"})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("with traceback")
    lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert lines[0]["component"] == "route=to-crm" and lines[0]["records"] == 5
    assert lines[0]["level"] == "info" and lines[0]["msg"] == "applied"
    assert lines[1]["component"] == "source=x"
    assert lines[2]["component"] is None and "ValueError: bad" in lines[2]["exc"]
    assert all(line["ts"].endswith("Z") for line in lines)
