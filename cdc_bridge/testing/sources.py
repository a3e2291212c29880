"""One test harness for every source kind: an offset store double, a source running in a
thread, and a source running as its own process for crash tests (SIGKILL, restart).

``python -m cdc_bridge.testing.sources CONF`` runs one source of any registered kind: CONF is
a JSON file with ``bootstrap``, ``state`` (offset file), ``source`` (the ``[[sources]]`` entry
as a dict) and optional ``producer`` (librdkafka overrides) and ``log_level``. It checkpoints
every 100 ms and stops cleanly on SIGTERM; SIGKILL leaves the offset file as last replaced.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cdc_bridge.config import SourceConfigBase
from cdc_bridge.envelope import EnvelopeEncoder
from cdc_bridge.kafka import EventProducer
from cdc_bridge.registry import SOURCE_KINDS
from cdc_bridge.sources.base import Source, SourceContext

__all__ = ["OffsetStoreDouble", "SourceProcess", "SourceThread", "build_source", "main"]


class OffsetStoreDouble:
    """The state store's offset API in a dict, optionally backed by a JSON file that is
    replaced atomically (fsync + rename), so it survives a SIGKILL of the writer.

    ``offsets``: source name -> stored dict; ``saves``: how many times it was written.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.offsets: dict[str, dict[str, Any]] = {}
        self.saves = 0
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self.offsets = json.loads(self.path.read_text() or "{}")

    def load_offset(self, source: str) -> dict[str, Any] | None:
        if self.path is not None and self.path.exists():
            self.offsets = json.loads(self.path.read_text() or "{}")
        return self.offsets.get(source)

    def save_offset(self, source: str, offset: dict[str, Any]) -> None:
        with self._lock:
            self.offsets[source] = offset
            self.saves += 1
            if self.path is not None:
                tmp = self.path.with_suffix(".tmp")
                with open(tmp, "w") as f:
                    json.dump(self.offsets, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)

    def delete_offset(self, source: str) -> bool:
        with self._lock:
            gone = self.offsets.pop(source, None) is not None
            if self.path is not None:
                self.path.write_text(json.dumps(self.offsets))
            return gone


def build_source(config: dict[str, Any] | SourceConfigBase) -> Source:
    """A source of any registered kind from its ``[[sources]]`` entry (or validated model)."""
    if isinstance(config, SourceConfigBase):
        kind, cfg = SOURCE_KINDS[config.kind], config
    else:
        kind = SOURCE_KINDS[config["kind"]]
        cfg = kind.config_model().model_validate(config)
    source: Source = kind.implementation()(cfg)
    return source


class SourceThread:
    """A source running in a thread of this process against a real broker."""

    def __init__(
        self,
        config: dict[str, Any] | SourceConfigBase | Source,
        bootstrap: str,
        store: OffsetStoreDouble | None = None,
        producer: dict[str, Any] | None = None,
    ) -> None:
        """``config``: a ``[[sources]]`` entry of a registered kind (dict or validated
        model), or a ready source."""
        self.source = config if isinstance(config, Source) else build_source(config)
        self.store = store if store is not None else OffsetStoreDouble()
        self.producer = EventProducer(bootstrap, {"linger.ms": 2, **(producer or {})})
        cfg = self.source.config
        self.ctx = SourceContext(
            cfg.name,
            self.producer,
            EnvelopeEncoder(schemas=cfg.schemas, tombstones=cfg.tombstones),
            self.store,
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"source={cfg.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.source.run(self.ctx)
        except BaseException as exc:
            self.error = exc
        finally:
            self.source.close()

    def start(self) -> SourceThread:
        self.thread.start()
        return self

    def wait_streaming(self, timeout: float = 60) -> None:
        """Until the adapter reported its stream established (or failed)."""
        deadline = time.monotonic() + timeout
        while self.ctx.established == 0:
            if self.error is not None or not self.thread.is_alive():
                raise AssertionError(f"source ended before streaming: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError("source did not start streaming")
            time.sleep(0.02)

    def stop(self, timeout: float = 30) -> None:
        """Stop as the runtime does: set stopping, join, flush, final checkpoint (also after
        the source ended on its own, e.g. with an error)."""
        self.ctx.stopping.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"source {self.source.name} did not stop"
        self.producer.flush(10)
        self.ctx.checkpoint()
        self.producer.close(10)

    def __enter__(self) -> SourceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SourceProcess:
    """A source as its own process (``python -m cdc_bridge.testing.sources``), to SIGKILL."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        bootstrap: str,
        producer: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.state = self.workdir / "offsets.json"
        self.log = self.workdir / "source.log"
        self.conf = self.workdir / "source.json"
        self.conf.write_text(
            json.dumps(
                {
                    "bootstrap": bootstrap,
                    "state": str(self.state),
                    "producer": {"linger.ms": 2, **(producer or {})},
                    "source": config,
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SourceProcess:
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cdc_bridge.testing.sources", str(self.conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no goodbye to the database."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def stored(self) -> dict[str, Any] | None:
        return OffsetStoreDouble(self.state).offsets.get(
            json.loads(self.conf.read_text())["source"]["name"]
        )

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def main(argv: list[str]) -> int:
    conf = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(
        level=conf.get("log_level", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    source = build_source(conf["source"])
    cfg = source.config
    producer = EventProducer(conf["bootstrap"], conf.get("producer", {}))
    encoder = EnvelopeEncoder(schemas=cfg.schemas, tombstones=cfg.tombstones)
    ctx = SourceContext(cfg.name, producer, encoder, OffsetStoreDouble(Path(conf["state"])))
    signal.signal(signal.SIGTERM, lambda *_: ctx.stopping.set())
    done = threading.Event()

    def checkpoints() -> None:
        while not done.wait(0.1):
            ctx.checkpoint()

    t = threading.Thread(target=checkpoints, daemon=True)
    t.start()
    try:
        source.run(ctx)
    finally:
        source.close()
        producer.close(10)
        done.set()
        t.join()
        ctx.checkpoint()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
