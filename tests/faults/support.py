"""Helpers of the fault suite: ``cdc-bridge start`` as a real process, other CLI commands,
topic readers and the final comparison every fault test ends with.

- :class:`BridgeProcess` -- ``cdc-bridge start`` in its own process with a private metrics
  port; ``readyz()``, ``wait_readyz(...)``, ``status()``, ``kill()``, ``stop()``, ``log()``.
- :func:`bridge_config` -- a routes.toml dict with ``[bridge]`` / ``[kafka]`` filled in.
- :func:`cli` -- any other ``cdc-bridge`` command (``check``, ``postgres drop-slot``, ...).
- :func:`read_topic` -- every record of a topic (all partitions), decoded.
- :func:`final_rows` / :func:`assert_rows` -- the state a topic describes per key, compared
  value for value with what the source holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from cdc_bridge._tomlout import dumps as toml_dumps

__all__ = [
    "BridgeProcess",
    "Writer",
    "assert_rows",
    "bridge_config",
    "cli",
    "converged",
    "final_rows",
    "free_port",
    "has_keys",
    "http_get",
    "key_of",
    "read_topic",
    "table_rows",
    "wait_for",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[2]

_QUIET = logging.getLogger("tests.faults.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy and return its value; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


# -- the bridge as a process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_config(
    tmp_path: Path,
    bootstrap: str,
    *,
    sources: list[dict[str, Any]] | None = None,
    sinks: list[dict[str, Any]] | None = None,
    routes: list[dict[str, Any]] | None = None,
    kafka: Mapping[str, Any] | None = None,
    bridge: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A routes.toml as a dict: private state store and metrics port, one-partition topics
    (so a topic reads back in order) unless ``kafka`` overrides it."""
    conf: dict[str, Any] = {
        "bridge": {
            "name": "faults",
            "state": f"sqlite:///{tmp_path / 'state.db'}",
            "metrics": f"127.0.0.1:{free_port()}",
            **(bridge or {}),
        },
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic_partitions": 1,
            "consumer": {"session.timeout.ms": 2000},
            **(kafka or {}),
        },
    }
    if sources:
        conf["sources"] = sources
    if sinks:
        conf["sinks"] = sinks
    if routes:
        conf["routes"] = routes
    return conf


def write_config(path: Path, conf: Mapping[str, Any]) -> Path:
    path.write_text(toml_dumps(dict(conf)))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def _launcher(fake_kinds: bool) -> list[str]:
    if not fake_kinds:
        return [sys.executable, "-m", "cdc_bridge"]
    return [
        sys.executable,
        "-c",
        "import sys; from tests import fakekinds; fakekinds.register(); "
        "from cdc_bridge.cli import main; main(sys.argv[1:])",
    ]


def cli(
    *args: str, timeout: float = 120, fake_kinds: bool = False
) -> subprocess.CompletedProcess[str]:
    """``cdc-bridge ARGS`` in its own process, as an operator runs it next to the bridge."""
    return subprocess.run(
        [*_launcher(fake_kinds), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=ROOT,
    )


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


class BridgeProcess:
    """``cdc-bridge start --config CONF`` as a child process (log in ``log_path``).

    The metrics address comes from the config's ``[bridge] metrics``. ``stop()`` sends
    SIGTERM and returns the exit code; ``kill()`` is a SIGKILL (a crash).
    """

    def __init__(
        self,
        conf: Mapping[str, Any],
        tmp_path: Path,
        name: str = "bridge",
        *,
        fake_kinds: bool = False,
    ) -> None:
        self.conf = dict(conf)
        self.fake_kinds = fake_kinds  # also register tests/fakekinds.py (kind = "fake")
        self.config_path = write_config(tmp_path / f"{name}.toml", conf)
        self.log_path = tmp_path / f"{name}.log"
        self.metrics = f"http://{conf['bridge']['metrics']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> BridgeProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *_launcher(self.fake_kinds),
                    "--log-level",
                    "INFO",
                    "start",
                    "--config",
                    str(self.config_path),
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(),
                cwd=self.config_path.parent,
                start_new_session=True,
            )
        return self

    # -- observing --------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def readyz(self) -> tuple[int, dict[str, Any] | None]:
        """(HTTP status, parsed body) of /readyz; (0, None) while nothing answers."""
        code, body = http_get(self.metrics + "/readyz")
        if code == 0:
            return 0, None
        try:
            return code, json.loads(body)
        except ValueError:
            return code, None

    def wait_readyz(
        self,
        predicate: Callable[[int, dict[str, Any]], bool],
        timeout: float,
        what: str,
    ) -> dict[str, Any]:
        """Poll /readyz until ``predicate(status, body)``; fail with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last: tuple[int, dict[str, Any] | None] = (0, None)
        while time.monotonic() < deadline:
            last = self.readyz()
            if last[1] is not None and predicate(last[0], last[1]):
                return last[1]
            if not self.running():
                break
            time.sleep(0.2)
        raise AssertionError(
            f"/readyz never showed {what} within {timeout}s (last: {last}); "
            f"bridge running={self.running()}; log tail:\n{self.log_tail()}"
        )

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        return self.wait_readyz(lambda code, _body: code == 200, timeout, "ready (200)")

    def wait_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not logged within {timeout}s; log:\n{self.log_tail()}")

    def status(self, timeout: float = 10) -> tuple[int, dict[str, Any]]:
        """``cdc-bridge status --json`` against this bridge's config: (exit code, document)."""
        done = cli(
            "status",
            "--config",
            str(self.config_path),
            "--json",
            "--timeout",
            str(timeout),
            fake_kinds=self.fake_kinds,
        )
        try:
            doc = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(
                f"status printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            ) from None
        return done.returncode, doc

    # -- ending -----------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL: the bridge dies without flushing or saving anything."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM and wait; the exit code (a bridge that hangs is killed and fails the test)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"the bridge did not stop within {timeout}s; log:\n{self.log_tail()}"
                ) from None
        return int(self.proc.returncode)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return int(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the bridge still runs after {timeout}s; log:\n{self.log_tail()}"
            ) from None


# -- reading topics back and comparing --------------------------------------------------------


def _decode(raw: bytes | None) -> Any:
    if raw is None:
        return None
    value = orjson.loads(raw)
    if isinstance(value, dict) and set(value) == {"schema", "payload"}:
        return value["payload"]
    return value


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[tuple[Any, Any]]], bool],
    timeout: float = 60,
    settle: float = 0.5,
) -> list[tuple[Any, Any]]:
    """Every (key, value) payload of ``topic`` over all partitions, in per-partition order;
    reads until ``until(records)`` holds (then ``settle`` s more, so extras show up)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"faults-check-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "logger": _QUIET,
        }
    )
    out: list[tuple[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        assigned = False
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if not assigned:
                md = consumer.list_topics(topic, timeout=5)
                meta = md.topics.get(topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    time.sleep(0.2)
                    continue
                consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
                assigned = True
            for msg in consumer.consume(2000, timeout=0.2):
                if msg.error() is None:
                    out.append((_decode(msg.key()), _decode(msg.value())))
            if until(out):
                if settle_until is None:
                    settle_until = time.monotonic() + settle
                elif time.monotonic() >= settle_until:
                    break
    finally:
        consumer.close()
    return out


def key_of(key: Any) -> Any:
    """A record key as a hashable value: the single key column's value, else a tuple."""
    if isinstance(key, dict):
        return next(iter(key.values())) if len(key) == 1 else tuple(sorted(key.items()))
    return key


def final_rows(records: list[tuple[Any, Any]]) -> dict[Any, dict[str, Any]]:
    """Apply change events in order: key -> row (``after``), deleted keys removed."""
    rows: dict[Any, dict[str, Any]] = {}
    _apply(rows, records)
    return rows


def _apply(rows: dict[Any, dict[str, Any]], records: list[tuple[Any, Any]]) -> None:
    for key, value in records:
        if value is None:  # tombstone
            continue
        k = key_of(key)
        if value.get("op") == "d":
            rows.pop(k, None)
        elif value.get("after") is not None:
            rows[k] = value["after"]


def assert_rows(
    records: list[tuple[Any, Any]],
    expected: Mapping[Any, Mapping[str, Any]],
    context: str = "",
) -> None:
    """Zero missing keys, no extra keys, every column equal to the source's value."""
    missing, extra, wrong = _diff(final_rows(records), expected)
    assert not missing and not extra and not wrong, (
        f"{len(missing)} missing (e.g. {missing[:10]}), {len(extra)} unexpected "
        f"(e.g. {extra[:10]}), {len(wrong)} wrong (e.g. {wrong[:3]}) of {len(expected)} rows "
        f"from {len(records)} records\n{context}"
    )


def has_keys(n: int) -> Callable[[list[tuple[Any, Any]]], bool]:
    """An ``until`` for :func:`read_topic`: at least ``n`` distinct keys seen."""
    return lambda recs: len({key_of(k) for k, v in recs if v is not None}) >= n


def _diff(
    got: Mapping[Any, Mapping[str, Any]], expected: Mapping[Any, Mapping[str, Any]]
) -> tuple[list[Any], list[Any], list[Any]]:
    missing = sorted(set(expected) - set(got), key=repr)
    extra = sorted(set(got) - set(expected), key=repr)
    wrong = [
        (k, {c: got[k].get(c) for c in expected[k]}, dict(expected[k]))
        for k in sorted(set(expected) & set(got), key=repr)
        if any(got[k].get(c) != v for c, v in expected[k].items())
    ]
    return missing, extra, wrong


def converged(
    expected: Mapping[Any, Mapping[str, Any]],
) -> Callable[[list[tuple[Any, Any]]], bool]:
    """An ``until`` for :func:`read_topic`: the topic's final rows equal ``expected``
    (incremental: each call applies only the records read since the last one)."""
    rows: dict[Any, dict[str, Any]] = {}
    done = [0]

    def check(recs: list[tuple[Any, Any]]) -> bool:
        _apply(rows, recs[done[0] :])
        done[0] = len(recs)
        return len(rows) == len(expected) and _diff(rows, expected) == ([], [], [])

    return check


class Writer:
    """Commits one row per transaction into ``items (id, v)`` until stopped, riding out
    server restarts (a commit whose outcome is unknown moves on to a new id); every 7th
    row also updates an earlier one. The source table is the truth the topic is compared
    with at the end (:func:`table_rows`), so an ambiguous commit needs no bookkeeping.

    ``connect()`` returns a DB-API connection in autocommit mode; ``errors`` are the
    driver's exception classes that mean "the server went away".
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        errors: tuple[type[BaseException], ...],
        *,
        first_id: int = 1000,
        pause: float = 0.003,
    ) -> None:
        self.connect = connect
        self.errors = errors
        self.pause = pause
        self.next_id = first_id
        self.stop = threading.Event()
        self.committed = 0
        self.failures = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn: Any = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                cur = conn.cursor()
                rid = self.next_id
                cur.execute("INSERT INTO items (id, v) VALUES (%s, %s)", (rid, f"v{rid}"))
                if rid % 7 == 0:
                    cur.execute("UPDATE items SET v = CONCAT(v, '+') WHERE id = %s", (rid - 3,))
                cur.close()
                self.committed += 1
                self.next_id += 1
                time.sleep(self.pause)
            except self.errors:
                self.failures += 1
                self.next_id += 1  # the interrupted commit may or may not have happened
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def wait_more(self, n: int, timeout: float, what: str) -> None:
        """Wait until ``n`` more rows were committed (the database is back)."""
        target = self.committed + n
        wait_for(lambda: self.committed >= target, timeout, f"{n} more commits {what}")

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def table_rows(conn: Any, table: str = "items") -> dict[Any, dict[str, Any]]:
    """``id -> {"id", "v"}`` of every row of ``table`` (DB-API connection; closed after)."""
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT id, v FROM {table}")
        return {r[0]: {"id": r[0], "v": r[1]} for r in cur.fetchall()}
    finally:
        conn.close()
