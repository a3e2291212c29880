"""The runtime serves the operations endpoints for as long as it runs, on [bridge] metrics."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cdc_bridge.config import parse_config
from cdc_bridge.errors import ConfigError
from cdc_bridge.metrics import MetricsServer
from cdc_bridge.runtime import Bridge
from cdc_bridge.testing.services import KafkaService


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def config_text(tmp_path: Path, kafka: KafkaService, metrics: str | None) -> str:
    line = f'metrics = "{metrics}"' if metrics is not None else ""
    return f"""
[bridge]
name = "rt"
state = "sqlite:///{tmp_path}/state.db"
{line}

[kafka]
bootstrap_servers = "{kafka.bootstrap}"
"""


@contextmanager
def running(bridge: Bridge) -> Iterator[list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(bridge.run()), daemon=True)
    thread.start()
    try:
        yield result
    finally:
        bridge.stop()
        thread.join(30)


def wait_status(url: str, code: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(url) == code:
            return True
        time.sleep(0.05)
    return False


def wait_status_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in caplog.text:
            return True
        time.sleep(0.05)
    return False


def test_endpoints_live_as_long_as_the_bridge(kafka: KafkaService, tmp_path: Path) -> None:
    port = free_port()
    bridge = Bridge(parse_config(config_text(tmp_path, kafka, f"127.0.0.1:{port}")))
    base = f"http://127.0.0.1:{port}"
    with running(bridge) as result:
        assert wait_status(base + "/healthz", 200)
        assert get(base + "/readyz") == 200  # nothing configured: nothing to wait for
        assert get(base + "/metrics") == 200
    assert result == [0]
    assert get(base + "/healthz") == 0


def test_a_taken_address_fails_only_when_configured(
    kafka: KafkaService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with MetricsServer("127.0.0.1:0") as other:
        taken = f"127.0.0.1:{other.port}"
        explicit = Bridge(parse_config(config_text(tmp_path, kafka, taken)))
        with pytest.raises(ConfigError, match=r"bridge\.metrics: cannot listen"):
            explicit.run()

        # The default address in use (another bridge on this host) only costs the endpoint.
        cfg = parse_config(config_text(tmp_path, kafka, None))
        cfg.bridge.__dict__["metrics"] = taken  # as if the default were this address
        bridge = Bridge(cfg)
        with caplog.at_level(logging.WARNING), running(bridge) as result:
            assert wait_status_log(caplog, "running without the metrics endpoint")
        assert result == [0]
