"""Fault tests of how the runtime reports sources, under the real ``cdc-bridge start``
process: a source whose ``run`` returns although nobody asked it to stop (the shape defect 1
had) must not leave the bridge idling as "ready"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cdc_bridge.testing.services import KafkaService
from tests.faults.support import BridgeProcess, bridge_config, has_keys, read_topic


def test_a_source_that_ends_unexpectedly_is_reported(
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
    topic_name: Callable[..., str],
) -> None:
    name = topic_name("ended").replace("-", "_")
    quits = {"name": name, "kind": "fake", "dsn": "fake://u@h/db", "rows": 50, "end_run": True}
    keeps = {**quits, "name": name + "_ok", "end_run": False}
    conf = bridge_config(tmp_path, kafka.bootstrap, sources=[quits, keeps])
    bridge = bridge_process(conf, fake_kinds=True)
    body = bridge.wait_readyz(
        lambda code, b: code == 503 and b["sources"].get(name, {}).get("state") == "ended",
        30,
        "the source reported ended",
    )
    detail = body["sources"][name]["detail"]
    assert "ended unexpectedly" in detail and "cdc-bridge start" in detail, detail
    assert body["sources"][name + "_ok"]["ready"], body
    code, status = bridge.status()
    assert code == 1, status
    assert any(f"source {name}: ended" in p for p in status["running"]["problems"]), status
    assert "ERROR" in bridge.log() and "ended unexpectedly" in bridge.log()
    # What it captured before quitting is on Kafka; the bridge keeps running the other source
    # and exits 1 when stopped (a supervisor sees the failure).
    recs = read_topic(kafka.bootstrap, f"{name}.public.items", until=has_keys(50))
    assert sorted(v["after"]["id"] for _k, v in recs) == list(range(1, 51))
    assert bridge.running()
    assert bridge.stop() == 1, bridge.log_tail()
