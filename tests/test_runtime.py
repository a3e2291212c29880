"""The supervisor: `cdc-bridge start` runs a (test-kind) source against a real broker,
checkpoints, and on SIGTERM flushes, stores the final position and exits 0; failures stop
the bridge with exit 1; route workers plug in through cdc_bridge.routes.build_workers."""

from __future__ import annotations

import importlib.machinery
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cdc_bridge.config import parse_config
from cdc_bridge.runtime import Bridge
from cdc_bridge.state import StateStore
from tests import fakekinds

CONFIG = """\
[bridge]
name = "rt"
state = "sqlite:///{state}"

[kafka]
bootstrap_servers = "{bootstrap}"
topic_partitions = 1

[[sources]]
name = "{name}"
kind = "fake"
dsn = "fake://localhost/db"
rows = {rows}
fail_run = {fail_run}
batch_delay_ms = {delay}
"""

ROUTE = """
[[sinks]]
name = "crm"
kind = "fakesink"
url = "fake://target"
api_key = "k"

[[routes]]
name = "to-crm"
from = "{name}.public.items"
to = "crm"
target_table = "items"
"""


@pytest.fixture(autouse=True)
def _kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    fakekinds.register(monkeypatch)


def config_text(
    tmp_path: Path,
    bootstrap: str,
    name: str,
    rows: int,
    *,
    fail_run: bool = False,
    delay: int = 0,
) -> str:
    return CONFIG.format(
        state=tmp_path / "state.db",
        bootstrap=bootstrap,
        name=name,
        rows=rows,
        fail_run=str(fail_run).lower(),
        delay=delay,
    )


def read_ids(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[int]:
    """The ``after.id`` of every record on ``topic`` (waits for ``expected`` of them)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"count-{topic}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    ids: list[int] = []

    def take(timeout: float) -> None:
        for msg in consumer.consume(500, timeout=timeout):
            if msg.error() is None:
                ids.append(orjson.loads(msg.value())["payload"]["after"]["id"])

    deadline = time.monotonic() + timeout
    try:
        while len(ids) < expected and time.monotonic() < deadline:
            take(0.5)
        take(0.5)  # a little longer, to catch extra (duplicate) records
    finally:
        consumer.close()
    return ids


def count_records(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> int:
    return len(read_ids(bootstrap, topic, expected, timeout))


def wait_for_offset(
    state: Path, source: str, n: int, timeout: float = 60, *, at_least: bool = False
) -> int:
    store = StateStore(f"sqlite:///{state}")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                got = store.load_offset(source)
            except Exception:
                got = None  # tables not created yet
            if got is not None and (got["n"] == n or (at_least and got["n"] >= n)):
                return int(got["n"])
            time.sleep(0.05)
    finally:
        store.close()
    raise AssertionError(f"offset of {source} never reached {n}")


def start_cli(cfg: Path, *extra: str) -> subprocess.Popen[str]:
    root = Path(__file__).parent.parent
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tests import fakekinds; fakekinds.register(); "
            "from cdc_bridge.cli import main; main(sys.argv[1:])",
            *extra,
            "start",
            "--config",
            str(cfg),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_sigkill_mid_stream_then_restart_loses_nothing(
    tmp_path: Path, kafka: Any, topic_name: Any
) -> None:
    """A crash at any instant may replay, never skip: every row arrives after a restart."""
    name = topic_name("crash")
    rows = 3000
    cfg = tmp_path / "routes.toml"
    cfg.write_text(config_text(tmp_path, kafka.bootstrap, name, rows, delay=100))
    proc = start_cli(cfg)
    try:
        saved = wait_for_offset(tmp_path / "state.db", name, 500, at_least=True)
        proc.kill()  # SIGKILL: no flush, no final checkpoint
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert saved < rows, "the source finished before the crash; make it slower"
    proc = start_cli(cfg)
    try:
        wait_for_offset(tmp_path / "state.db", name, rows)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    ids = read_ids(kafka.bootstrap, f"{name}.public.items", rows)
    assert set(ids) == set(range(1, rows + 1))  # nothing lost
    assert len(ids) >= rows  # replays allowed


def test_start_produces_and_sigterm_exits_0_with_final_checkpoint(
    tmp_path: Path, kafka: Any, topic_name: Any
) -> None:
    name = topic_name("rt")
    cfg = tmp_path / "routes.toml"
    cfg.write_text(config_text(tmp_path, kafka.bootstrap, name, 250))
    proc = start_cli(cfg, "--log-format", "json")
    try:
        wait_for_offset(tmp_path / "state.db", name, 250)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    final = [x for x in lines if "final position saved" in x["msg"]]
    assert final and final[0]["component"] == f"source={name}"
    assert any("SIGTERM received" in x["msg"] for x in lines)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.load_offset(name) == {"n": 250}
    store.close()
    assert count_records(kafka.bootstrap, f"{name}.public.items", 250) == 250


def run_in_thread(bridge: Bridge) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(bridge.run()))
    thread.start()
    return thread, codes


def test_restart_resumes_from_stored_offset(tmp_path: Path, kafka: Any, topic_name: Any) -> None:
    name = topic_name("resume")
    for rows in (120, 180):
        config = parse_config(config_text(tmp_path, kafka.bootstrap, name, rows))
        bridge = Bridge(config, checkpoint_interval=0.1)
        thread, codes = run_in_thread(bridge)
        wait_for_offset(tmp_path / "state.db", name, rows)
        bridge.stop()
        thread.join(60)
        assert codes == [0]
    assert count_records(kafka.bootstrap, f"{name}.public.items", 180) == 180


def test_fatal_source_error_stops_bridge_with_exit_1(
    tmp_path: Path, kafka: Any, topic_name: Any, caplog: pytest.LogCaptureFixture
) -> None:
    name = topic_name("fatal")
    config = parse_config(config_text(tmp_path, kafka.bootstrap, name, 10, fail_run=True))
    with caplog.at_level(logging.INFO):
        code = Bridge(config, checkpoint_interval=0.1).run()
    assert code == 1
    assert f"source={name} failed: fake source lost its position" in caplog.text
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.load_offset(name) == {"n": 10}  # what Kafka confirmed is still saved
    store.close()


class RecordingWorker:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.ran = threading.Event()
        self.closed = False

    def run(self, stop: threading.Event) -> None:
        self.ran.set()
        if self.fail:
            raise fakekinds.FatalError("sink rejected every record: fix the mapping")
        stop.wait()

    def close(self) -> None:
        self.closed = True


class RecordingHealth:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.fatals: list[str] = []

    def source(self, name: str, state: str, detail: str = "") -> None:
        self.events.append(("source", name, state))

    def route(self, name: str, state: str, detail: str = "") -> None:
        self.events.append(("route", name, state))

    def fatal(self, message: str) -> None:
        self.fatals.append(message)


@pytest.mark.parametrize("fail", [False, True])
def test_route_workers_plug_in(
    tmp_path: Path,
    kafka: Any,
    topic_name: Any,
    monkeypatch: pytest.MonkeyPatch,
    fail: bool,
) -> None:
    name = topic_name("routes")
    built: list[RecordingWorker] = []
    module = types.ModuleType("cdc_bridge.routes")
    module.__spec__ = importlib.machinery.ModuleSpec("cdc_bridge.routes", None)

    def build_workers(config: Any, state: Any) -> list[RecordingWorker]:
        assert isinstance(state, StateStore)
        built.extend(RecordingWorker(r.name, fail) for r in config.routes)
        return built

    module.build_workers = build_workers  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cdc_bridge.routes", module)
    text = config_text(tmp_path, kafka.bootstrap, name, 5) + ROUTE.format(name=name)
    health = RecordingHealth()
    bridge = Bridge(parse_config(text), checkpoint_interval=0.1, health=health)
    thread, codes = run_in_thread(bridge)
    deadline = time.monotonic() + 30
    while not (built and built[0].ran.is_set()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert built and built[0].ran.is_set()
    if not fail:
        bridge.stop()
    thread.join(60)
    assert codes == [1 if fail else 0]
    assert [w.name for w in built] == ["to-crm"]
    assert built[0].closed
    assert ("source", name, "starting") in health.events
    assert ("route", "to-crm", "starting") in health.events
    if fail:
        assert ("route", "to-crm", "failed") in health.events
        assert ("source", name, "stopped") in health.events
        assert health.fatals == ["route=to-crm: sink rejected every record: fix the mapping"]
    else:
        assert ("route", "to-crm", "stopped") in health.events and not health.fatals
