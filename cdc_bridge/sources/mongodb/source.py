"""``MongoSource``: snapshot, then stream MongoDB change streams as Debezium MongoDB events.

The coordinator (``sources/coordinator.py``) runs it: ``prepare`` checks (replica set /
sharded cluster, privileges, collections exist); a snapshot notes a resume point first and
scans the collections (``snapshot.py``); ``stream`` reads from the stored resume token
(``resume_after``; ``start_after`` past an invalidate), handing each batch to Kafka with the
resume token that becomes safe once Kafka confirmed it.

Behaviour on non-document events (never a crash):

- ``drop`` of a captured collection: logged; its topic stays, nothing is published (Debezium
  does the same). Documents inserted into a re-created collection stream as usual.
- ``rename``: logged; later changes of the collection under its new name are captured only if
  the new name is included.
- ``dropDatabase``: logged (preceded by one ``drop`` per collection).
- ``invalidate`` (a database-level stream after dropDatabase / renaming): the position is
  stored with ``start_after`` and the stream reopens after the invalidate event.

Passing outages (elections, network) raise ``RetriableError``: the coordinator retries from
the position Kafka confirmed. A resume token no longer in the oplog (ChangeStreamHistoryLost)
raises ``HistoryLost``, a ``PositionLost``: the source's ``on_position_lost`` decides.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import orjson
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from cdc_bridge.errors import ConfigError, FatalError, RetriableError
from cdc_bridge.events import ChangeEvent
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.coordinator import CaptureAdapter, PositionLost
from cdc_bridge.sources.mongodb.checks import captured_collections, run_checks
from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.convert import ChangeConverter, StreamNotice
from cdc_bridge.sources.mongodb.incremental import MongoChunks, signal_data
from cdc_bridge.sources.mongodb.offset import MongoOffset
from cdc_bridge.sources.mongodb.snapshot import MongoSnapshotReader, encode_id
from cdc_bridge.sources.mongodb.stream import is_history_lost, open_change_stream

__all__ = ["HistoryLost", "MongoSource"]

log = logging.getLogger(__name__)


class HistoryLost(PositionLost):
    """The stored resume point fell out of the oplog; changes since then cannot be streamed."""


class MongoSource(CaptureAdapter):
    """A MongoDB capture adapter (change streams, resume tokens, snapshot hand-off)."""

    kind = "mongodb"
    offset_type = MongoOffset
    config: MongoSourceConfig

    def __init__(self, config: MongoSourceConfig) -> None:
        super().__init__(config)
        self.converter = ChangeConverter(config.name, config.json_output)
        self._client: MongoClient[dict[str, Any]] | None = None
        self.notices: list[StreamNotice] = []
        sig = config.signal_table.split(".", 1) if config.signal_table else None
        self._signal: tuple[str, str] | None = (sig[0], sig[1]) if sig else None

    # -- connection ------------------------------------------------------------------------

    @property
    def client(self) -> MongoClient[dict[str, Any]]:
        if self._client is None:
            try:
                self._client = MongoClient(
                    self.config.dsn.get_secret_value(),
                    serverSelectionTimeoutMS=self.config.server_selection_timeout_ms,
                    appname=f"cdc-bridge/{self.name}",
                )
            except (ConfigurationError, ValueError) as exc:
                raise ConfigError(
                    f"sources.{self.name}.dsn: invalid MongoDB connection string: {exc}"
                ) from exc
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- adapter pieces (run by sources/coordinator.py) --------------------------------------

    def prepare(self, ctx: SourceContext | None) -> None:
        try:
            run_checks(self.client, self.config)
        except OperationFailure as exc:
            raise ConfigError(
                f"sources.{self.name}.dsn: MongoDB refused a setup check ({_errmsg(exc)}); the user "
                "needs the `read` role on the captured databases (readAnyDatabase for a whole "
                "deployment)"
            ) from exc
        except PyMongoError as exc:
            raise RetriableError(f"sources.{self.name}.dsn: cannot reach MongoDB: {exc}") from exc

    def position_now(self, ctx: SourceContext) -> MongoOffset:
        return self._note_resume_point()

    def open_snapshot(self, ctx: SourceContext, resume: MongoOffset | None) -> MongoSnapshotReader:
        noted = resume.with_snapshot(None) if resume is not None else self._note_resume_point()
        if resume is None:
            log.info("source %s: snapshot starting; will stream from %s", self.name, noted)
        collections = self._call(captured_collections, self.client, self.config)
        return MongoSnapshotReader(self.client, self.config, self.converter, noted, collections)

    def _note_resume_point(self) -> MongoOffset:
        """A fresh change stream's post-batch resume token: where streaming starts after a scan."""
        try:
            with open_change_stream(self.client, self.config, None, batch_size=1) as stream:
                token = stream.resume_token
        except PyMongoError as exc:
            raise RetriableError(f"source {self.name}: cannot open a change stream: {exc}") from exc
        if token is None:
            raise FatalError(
                f"source {self.name}: the server returned no resume token; MongoDB 4.2 or newer is required"
            )
        return MongoOffset.at(token)

    def stream(self, ctx: SourceContext, start: MongoOffset) -> MongoOffset | None:
        """Stream until stopping (returns None) or an invalidate (returns the start_after offset)."""
        cfg = self.config
        skip = set(cfg.skip_ops)
        convert = self.converter.convert
        limit = cfg.stream_batch_size
        offset = start
        state = self.incremental_state(ctx, start.incremental)
        incr = self.incremental
        try:
            stream = open_change_stream(self.client, cfg, offset)
        except OperationFailure as exc:
            raise self._failure(exc, offset) from exc
        except PyMongoError as exc:
            raise RetriableError(
                f"source {self.name}: cannot open the change stream: {exc}"
            ) from exc
        last_token: Any = offset.resume_token if offset else None
        ctx.stream_established()
        log.info("source %s: streaming from %s", self.name, offset or "now")
        # Incremental snapshots: signal inserts are consumed here, changes of the collection
        # whose chunk is open drop their document from it (one tuple compare per change).
        signal = self._signal if incr is not None else None
        watching = self._watching()
        try:
            with stream:
                ctx.emit([], replace(start, incremental=state))  # the tables known from now on
                if incr is not None:
                    incr.resume(self.captured_tables())
                    watching = self._watching()
                while not ctx.stopping.is_set():
                    events: list[ChangeEvent] = []
                    while len(events) < limit:
                        change = stream.try_next()
                        if change is None:
                            break
                        if signal is not None and incr is not None:
                            ns = change.get("ns") or {}
                            where = (ns.get("db"), ns.get("coll"))
                            if where == signal:
                                doc = change.get("fullDocument") or {}
                                events.extend(
                                    incr.on_signal(
                                        str(doc.get("_id")),
                                        str(doc.get("type")),
                                        signal_data(doc.get("data")),
                                    )
                                )
                                watching = self._watching()
                                continue
                            if where == watching and "documentKey" in change:
                                incr.on_change(encode_id(change["documentKey"].get("_id")))
                        item = convert(change)
                        if isinstance(item, StreamNotice):
                            if item.operation == "invalidate":
                                after = MongoOffset.at(
                                    dict(item.token or {}),
                                    start_after=True,
                                    incremental=incr.state if incr else state,
                                )
                                ctx.emit(events, after)
                                log.warning(
                                    "source %s: change stream invalidated; reopening after it",
                                    self.name,
                                )
                                return after
                            self._notice(item)
                            continue
                        if item.op not in skip:
                            events.append(item)
                    token = stream.resume_token
                    if events or (token is not None and token != last_token):
                        ctx.emit(
                            events,
                            MongoOffset.at(token, incremental=incr.state if incr else state),
                        )
                        last_token = token
                    ctx.maybe_checkpoint()
        except OperationFailure as exc:
            raise self._failure(exc, offset) from exc
        except PyMongoError as exc:
            raise RetriableError(f"source {self.name}: change stream interrupted: {exc}") from exc
        return None

    # -- incremental snapshots (sources/incremental.py, mongodb/incremental.py) ---------------

    def captured_tables(self) -> list[str]:
        return [
            f"{db}.{coll}"
            for db, coll in self._call(captured_collections, self.client, self.config)
            if (db, coll) != self._signal
        ]

    def incremental_hooks(self) -> MongoChunks:
        assert self._signal is not None
        return MongoChunks(self.client, self.converter, self._signal, self.captured_tables())

    def insert_signal(self, signal_id: str, kind: str, data: str) -> None:
        assert self._signal is not None
        db, coll = self._signal
        doc = orjson.loads(data)  # stored as a document, as Debezium's MongoDB docs write it
        self._call(self.client[db][coll].insert_one, {"_id": signal_id, "type": kind, "data": doc})

    def _watching(self) -> tuple[str, str] | None:
        table = self.incremental.watching() if self.incremental is not None else None
        if table is None:
            return None
        db, _, coll = table.partition(".")
        return (db, coll)

    # -- helpers ---------------------------------------------------------------------------

    def _notice(self, n: StreamNotice) -> None:
        self.notices.append(n)
        del self.notices[:-100]
        if n.operation == "rename" and n.to:
            log.warning(
                "source %s: collection %s renamed to %s.%s; its later changes are captured only if "
                "the new name is included",
                self.name,
                n.namespace,
                n.to[0],
                n.to[1],
            )
        elif n.operation in ("drop", "dropDatabase"):
            log.warning(
                "source %s: %s of %s (topic kept; nothing published)",
                self.name,
                n.operation,
                n.namespace,
            )
        else:
            log.info("source %s: %s event on %s ignored", self.name, n.operation, n.namespace)

    def _failure(self, exc: OperationFailure, offset: MongoOffset | None) -> Exception:
        if is_history_lost(exc):
            where = str(offset) if offset else "the stored position"
            return HistoryLost(
                f"the MongoDB change stream cannot resume: {where} is no longer in the oplog "
                f"({exc.code}: {_errmsg(exc)})",
                hint="Grow the oplog (replSetResizeOplog, or oplogMinRetentionHours) beyond the "
                "longest time the bridge may be down.",
            )
        if exc.code in (13, 18):  # Unauthorized, AuthenticationFailed
            return ConfigError(
                f"sources.{self.name}.dsn: MongoDB refused the change stream ({_errmsg(exc)}); grant the "
                "user the `read` role on the captured databases (find + changeStream)"
            )
        return FatalError(f"source {self.name}: change stream failed: {exc.code}: {_errmsg(exc)}")

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except PyMongoError as exc:
            raise RetriableError(f"source {self.name}: {exc}") from exc


def _errmsg(exc: OperationFailure) -> str:
    details = exc.details or {}
    return str(details.get("errmsg") or exc)
