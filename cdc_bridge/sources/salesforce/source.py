"""``SalesforceSource``: Change Data Capture and platform events from the Pub/Sub API to Kafka.

A capture adapter run by the source coordinator (snapshot modes, retries, checkpoints and
``on_position_lost`` are the coordinator's):

- ``prepare``: log in (the shared Salesforce auth), describe every captured object, check
  subscribe access to every Pub/Sub channel;
- snapshot: every record of each object through Bulk API 2.0 query jobs (CSV pages, ``Id``
  order, resumable after the last confirmed ``Id``), op ``r``. Salesforce has no "current
  replay id" to note first, so the hand-off position is the snapshot's start time: streaming
  then subscribes at LATEST and re-reads the records modified since that time (deleted ones
  through ``queryAll``) — nothing changed during the snapshot is missed, changes seen twice
  converge (at-least-once);
- stream: one ``Subscribe`` per channel with pull flow control; each batch of change events
  becomes Debezium-style events on ``<name>.<Object>``; the replay id of each channel is
  stored only after Kafka confirmed every event before it.

Change types: CREATE and UNDELETE -> ``c``; UPDATE -> ``u``; DELETE -> ``d`` (+ tombstone).
In mode ``full`` the current records are read through sObject Collections retrieve, one call
per up to 2,000 ids of a batch, several changes of one record in a batch collapsed into one
event. GAP_* events are repaired by reading the listed records (gone -> ``d``); GAP_OVERFLOW
re-reads the object's records modified since the last commit time seen. Changes whose
``changeOrigin`` carries this bridge's client id (the Salesforce sink's
``Sforce-Call-Options``) are dropped or marked (``on_echo``), so two-way sync does not echo.

A stored replay id the server no longer retains (72 hours on Salesforce) ends the run with a
clear message (``on_position_lost = "fail"``) or starts a new snapshot (``"resnapshot"``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cdc_bridge.errors import ConfigError, FatalError, RetriableError
from cdc_bridge.events import (
    OP_CREATE,
    OP_DELETE,
    OP_READ,
    OP_UPDATE,
    SNAPSHOT_TRUE,
    ChangeEvent,
)
from cdc_bridge.sources.base import SourceContext
from cdc_bridge.sources.coordinator import (
    CaptureAdapter,
    PositionLost,
    SnapshotChunk,
    SnapshotReader,
)
from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig
from cdc_bridge.sources.salesforce.offset import SalesforceOffset
from cdc_bridge.sources.salesforce.pubsub import (
    DecodedEvent,
    EventDecoder,
    PubSubClient,
    PubSubError,
    ReplayPreset,
    Session,
    Subscription,
    replay_from_hex,
    replay_to_hex,
)
from cdc_bridge.sources.salesforce.rest import SalesforceRest
from cdc_bridge.sources.salesforce.schema import ObjectModel

__all__ = ["ReplayLost", "SalesforceSource", "change_channel"]

log = logging.getLogger(__name__)

SUBSCRIBE_SETTLE_S = 0.5  # a new subscription is in place before catch-up reads start
_OPS = {"CREATE": OP_CREATE, "UNDELETE": OP_CREATE, "UPDATE": OP_UPDATE, "DELETE": OP_DELETE}


class ReplayLost(PositionLost):
    """The stored replay id is outside the retention window; changes since are lost."""


def change_channel(sobject: str) -> str:
    """Account -> /data/AccountChangeEvent; Invoice__c -> /data/Invoice__ChangeEvent."""
    if sobject.endswith("__c"):
        return f"/data/{sobject[:-3]}__ChangeEvent"
    return f"/data/{sobject}ChangeEvent"


def _client_of(origin: str) -> str:
    """The ``client=`` part of a changeOrigin (``com/salesforce/api/rest/61.0;client=x``)."""
    for part in origin.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == "client":
            return value.strip()
    return ""


@dataclass
class _Pending:
    """One change of one record waiting in a batch (before records are fetched)."""

    model: ObjectModel
    rid: str
    op: str
    ev: DecodedEvent
    changed: list[str] | None
    echo: bool
    fetch: bool  # needs the current record (mode full, or a gap repair)
    gap: bool = False


class _Ended(Exception):
    """A subscription's stream ended without an error (the server closes idle streams)."""


class SalesforceSource(CaptureAdapter):
    """A Salesforce capture adapter (Pub/Sub API, replay ids, Bulk API snapshot hand-off)."""

    kind = "salesforce"
    offset_type = SalesforceOffset
    config: SalesforceSourceConfig

    def __init__(self, config: SalesforceSourceConfig) -> None:
        super().__init__(config)
        self.rest: SalesforceRest | None = None
        self.pubsub: PubSubClient | None = None
        self.decoder: EventDecoder | None = None
        self.models: dict[str, ObjectModel] = {}
        self.channels: dict[str, str] = {}  # channel -> object name, or "" for platform events
        self.org_id = ""
        # counters (status, tests, benchmarks)
        self.echo_dropped = 0
        self.gap_events = 0
        self.overflow_events = 0
        self.snapshot_rows = 0
        self._subs: dict[str, Subscription] = {}
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue[tuple[str, Any, int]] = queue.Queue(maxsize=64)
        self._generation: dict[str, int] = {}
        self._replay: dict[str, str] = {}  # channel -> last replay id processed (hex)
        self._commit: dict[str, int] = {}  # object -> last commitTimestamp processed
        self._since_ms: int | None = None  # re-read from here while a channel has no replay id

    # -- connection ------------------------------------------------------------------------

    def _session(self) -> Session:
        assert self.rest is not None
        token = self.rest.token()
        return Session(token.access_token, token.instance_url, token.org_id)

    def _connect(self) -> None:
        cfg = self.config
        if self.rest is None:
            self.rest = SalesforceRest(cfg)
        token = self.rest.token()
        self.org_id = token.org_id
        for obj in cfg.objects:
            if obj not in self.models:
                try:
                    describe = self.rest.describe(obj)
                except ConfigError as exc:
                    raise ConfigError(
                        f"sources.{self.name}.objects: cannot describe {obj!r}: {exc}"
                    ) from exc
                try:
                    model = ObjectModel.from_describe(
                        self.name, self.org_id, describe, cfg.fields.get(obj)
                    )
                except ValueError as exc:
                    raise ConfigError(f"sources.{self.name}.fields.{obj}: {exc}") from exc
                self.models[obj] = model
            self.channels[change_channel(obj)] = obj
        for ev in cfg.platform_events:
            self.channels[ev] = ""
        if self.pubsub is None:
            roots = None
            if cfg.ca_bundle:
                with open(cfg.ca_bundle, "rb") as fh:
                    roots = fh.read()
            self.pubsub = PubSubClient(
                cfg.pubsub_endpoint,
                self._session,
                root_certificates=roots,
                timeout_s=cfg.http_timeout_s(),
            )
            self.decoder = EventDecoder(self._get_schema)

    def _get_schema(self, schema_id: str) -> str:
        assert self.pubsub is not None
        try:
            return self.pubsub.get_schema(schema_id)
        except PubSubError as exc:
            raise self._rpc_failure(exc, "GetSchema") from exc

    def close(self) -> None:
        self._stop_subscriptions()
        if self.pubsub is not None:
            self.pubsub.close()
            self.pubsub = None
        if self.rest is not None:
            self.rest.close()
            self.rest = None

    def prepare(self, ctx: SourceContext | None) -> None:
        """Login, object describes and subscribe access to every channel."""
        self._connect()
        assert self.pubsub is not None
        problems = []
        for channel in self.channels:
            try:
                info = self.pubsub.get_topic(channel)
            except PubSubError as exc:
                if exc.auth_failed:
                    raise ConfigError(
                        f"sources.{self.name}: the Pub/Sub API at {self.config.pubsub_endpoint} "
                        f"refused the session ({exc.details})"
                    ) from exc
                if exc.retriable:
                    raise RetriableError(
                        f"sources.{self.name}: cannot reach the Pub/Sub API at "
                        f"{self.config.pubsub_endpoint}: {exc}"
                    ) from exc
                problems.append(f"{channel}: {exc.details}")
                continue
            if not info.can_subscribe:
                problems.append(f"{channel}: this user may not subscribe")
        if problems:
            raise ConfigError(
                f"sources.{self.name}: channels not available (select the objects for Change "
                "Data Capture in Setup, check the platform event names and the user's "
                "permissions): " + "; ".join(problems)
            )

    def position_report(self, stored: dict[str, Any] | None) -> tuple[list[str], bool]:
        """``check --connect``, after :meth:`check`: the stored replay id of every channel,
        its retention status and the Pub/Sub API's answer to resuming there; (lines, lost)."""
        from cdc_bridge.sources.salesforce.status import replay_report

        return replay_report(self, stored)

    # -- positions -------------------------------------------------------------------------

    def position_now(self, ctx: SourceContext) -> SalesforceOffset:
        """No replay ids: every channel is subscribed at LATEST."""
        return SalesforceOffset()

    def open_snapshot(self, ctx: SourceContext, resume: Any | None) -> SnapshotReader:
        if resume is not None:
            hand_off = resume.with_snapshot(None)
        else:
            now = int(time.time() * 1000)
            hand_off = SalesforceOffset({}, dict.fromkeys(self.models, now), catch_up_ms=now)
        return _BulkSnapshot(self, hand_off)

    # -- subscriptions ---------------------------------------------------------------------

    def _subscribe_all(self, offset: SalesforceOffset) -> None:
        for channel in self.channels:
            self._subscribe(channel, offset.replay.get(channel))

    def _subscribe(self, channel: str, replay_hex: str | None) -> None:
        assert self.pubsub is not None
        old = self._subs.pop(channel, None)
        if old is not None:
            old.close()
        gen = self._generation.get(channel, 0) + 1
        self._generation[channel] = gen
        if replay_hex:
            sub = self.pubsub.subscribe(
                channel,
                preset=ReplayPreset.CUSTOM,
                replay_id=replay_from_hex(replay_hex),
                batch_size=self.config.batch_size,
            )
        else:
            sub = self.pubsub.subscribe(
                channel, preset=ReplayPreset.LATEST, batch_size=self.config.batch_size
            )
        self._subs[channel] = sub
        t = threading.Thread(
            target=self._read,
            args=(channel, sub, gen),
            name=f"sf-{self.name}-{channel}",
            daemon=True,
        )
        t.start()
        self._threads.append(t)

    def _read(self, channel: str, sub: Subscription, gen: int) -> None:
        try:
            for resp in sub:
                self._put((channel, resp, gen), sub)
            self._put((channel, _Ended(), gen), sub)
        except PubSubError as exc:
            self._put((channel, exc, gen), sub)
        except Exception as exc:  # a bug: surface it in the main loop
            self._put((channel, exc, gen), sub)

    def _put(self, item: tuple[str, Any, int], sub: Subscription) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if sub._closed.is_set():
                    return

    def _stop_subscriptions(self) -> None:
        for sub in self._subs.values():
            sub.close()
        self._subs.clear()
        for t in self._threads:
            t.join(2)
        self._threads.clear()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    # -- streaming -------------------------------------------------------------------------

    def stream(self, ctx: SourceContext, start: Any) -> None:
        """Subscribe every channel (after its replay id, or at LATEST), catch up if the
        hand-off asks for it, then turn fetched batches into events until stopping."""
        self._replay = dict(start.replay)
        self._commit = dict(start.commit_ms)
        # A channel subscribed at LATEST has no position until its first event or keep-alive:
        # until then a restart must re-read what changed since this start (not subscribe at
        # LATEST again and miss the changes made while it was down).
        self._since_ms = (
            start.catch_up_ms if start.catch_up_ms is not None else int(time.time() * 1000)
        )
        self._subscribe_all(start)
        ctx.stream_established()
        log.info("source %s: streaming from %s", self.name, start)
        wait = self.config.max_wait_ms / 1000
        try:
            if start.catch_up_ms is not None:
                time.sleep(SUBSCRIBE_SETTLE_S)
                events: list[ChangeEvent] = []
                for model in self.models.values():
                    events.extend(self._reread(model, start.catch_up_ms, None))
                ctx.emit(self._filter(events), self._offset())
                log.info(
                    "source %s: caught up with %d records changed since the hand-off",
                    self.name,
                    len(events),
                )
            else:  # store where a restart resumes (re-reads) even before the first event
                ctx.emit([], self._offset())
            while not ctx.stopping.is_set():
                batch: list[tuple[str, Any]] = []
                n_events = 0
                deadline: float | None = None
                while n_events < self.config.retrieve_batch:
                    timeout = 0.1 if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        channel, item, gen = self._queue.get(timeout=timeout)
                    except queue.Empty:
                        if deadline is not None or ctx.stopping.is_set():
                            break
                        ctx.maybe_checkpoint()
                        continue
                    if gen != self._generation.get(channel):
                        continue  # from a subscription that was replaced
                    if isinstance(item, BaseException):
                        if batch:
                            self._process(ctx, batch)
                            batch, n_events = [], 0
                        self._on_stream_error(channel, item)
                        continue
                    batch.append((channel, item))
                    n_events += len(item.events)
                    if deadline is None:
                        deadline = time.monotonic() + wait
                if batch:
                    self._process(ctx, batch)
                ctx.maybe_checkpoint()
        finally:
            self._stop_subscriptions()
        return None

    def _offset(self) -> SalesforceOffset:
        unplaced = any(obj and ch not in self._replay for ch, obj in self.channels.items())
        return SalesforceOffset(
            dict(self._replay), dict(self._commit), self._since_ms if unplaced else None
        )

    def _on_stream_error(self, channel: str, err: BaseException) -> None:
        resume = self._replay.get(channel)
        if isinstance(err, _Ended):
            log.info("source %s: %s stream ended by the server; resubscribing", self.name, channel)
            self._subscribe(channel, resume)
            return
        if isinstance(err, PubSubError):
            raise self._rpc_failure(err, "Subscribe", channel, resume)
        raise FatalError(f"source {self.name}: reading {channel} failed: {err!r}") from err

    def _rpc_failure(
        self, exc: PubSubError, what: str, channel: str = "", resume: str | None = None
    ) -> Exception:
        if exc.replay_lost:
            return ReplayLost(
                f"replay id {resume} of {channel} is outside the Pub/Sub API's retention "
                f"window ({exc.details})",
                hint="Salesforce keeps change events for 72 hours: keep the bridge from being "
                "down longer than that.",
            )
        if exc.auth_failed:
            assert self.rest is not None
            self.rest.auth.refresh(None)
            return RetriableError(
                f"source {self.name}: {what} refused the session; logged in again"
            )
        if exc.retriable:
            return RetriableError(f"source {self.name}: {what} {channel} failed: {exc}")
        return FatalError(f"source {self.name}: {what} {channel} failed: {exc}")

    # -- batch processing ------------------------------------------------------------------

    def _process(self, ctx: SourceContext, batch: Sequence[tuple[str, Any]]) -> None:
        assert self.decoder is not None
        pending: list[_Pending] = []
        platform: list[tuple[str, bytes | None, bytes | None]] = []
        overflow: list[tuple[ObjectModel, int, DecodedEvent]] = []
        for channel, resp in batch:
            obj = self.channels[channel]
            for ce in resp.events:
                ev = self.decoder.decode(
                    ce.event.schema_id, ce.event.payload, ce.replay_id, ce.event.id
                )
                self._replay[channel] = replay_to_hex(ce.replay_id)
                if not obj:
                    platform.append(self._platform_record(channel, ev))
                    continue
                self._change(obj, ev, pending, overflow)
            if not resp.events and resp.latest_replay_id:
                self._replay[channel] = replay_to_hex(resp.latest_replay_id)  # keep-alive
        events = self._resolve(pending)
        for model, since, ev in overflow:
            events.extend(self._overflow(model, since, ev))
        if platform:
            ctx.emit_records(platform, None)
        ctx.emit(self._filter(events), self._offset())

    def _change(
        self,
        obj: str,
        ev: DecodedEvent,
        pending: list[_Pending],
        overflow: list[tuple[ObjectModel, int, DecodedEvent]],
    ) -> None:
        h = ev.header
        model = self.models[obj]
        if h is None:
            return
        since = self._commit.get(obj, 0)
        if h.commit_timestamp:
            self._commit[obj] = max(since, h.commit_timestamp)
        echo = _client_of(h.change_origin) == self.config.echo_client
        if echo and self.config.on_echo == "drop":
            self.echo_dropped += len(h.record_ids)
            return
        if h.change_type == "GAP_OVERFLOW":
            self.overflow_events += 1
            overflow.append((model, since, ev))
            return
        if h.is_gap:
            self.gap_events += 1
            base = h.change_type[len("GAP_") :]
            op = _OPS.get(base, OP_UPDATE)
            for rid in h.record_ids:
                pending.append(_Pending(model, rid, op, ev, None, echo, op != OP_DELETE, True))
            return
        op = _OPS[h.change_type]
        changed = model.flat_names(h.changed_fields) if op == OP_UPDATE else None
        full = self.config.mode == "full"
        for rid in h.record_ids:
            pending.append(_Pending(model, rid, op, ev, changed, echo, full and op != OP_DELETE))

    def _resolve(self, pending: list[_Pending]) -> list[ChangeEvent]:
        """Collapse several changes of a record, fetch current records, build events."""
        keep: list[_Pending | None] = []
        last: dict[tuple[str, str], int] = {}  # record -> index of its pending c/u in keep
        for p in pending:
            key = (p.model.name, p.rid)
            if p.fetch and p.op != OP_DELETE:
                i = last.get(key)
                if i is not None:
                    prev = keep[i]
                    assert prev is not None
                    keep[i] = None  # collapsed into this later change
                    if prev.op == OP_CREATE:
                        p.op = OP_CREATE
                    if prev.changed is not None and p.changed is not None:
                        p.changed = sorted({*prev.changed, *p.changed})
                last[key] = len(keep)
            else:
                last.pop(key, None)
            keep.append(p)
        fetched = self._fetch([p for p in keep if p is not None and p.fetch])
        out: list[ChangeEvent] = []
        for item in keep:
            if item is None:
                continue
            p = item
            h = p.ev.header
            assert h is not None
            model = p.model
            before = None
            op = p.op
            if op == OP_DELETE:
                after = None
                before = dict.fromkeys(model.fields)
                before["Id"] = p.rid
            elif p.fetch:
                rec = fetched.get((model.name, p.rid))
                if rec is None:
                    if p.gap:  # a repaired gap whose record is gone: deleted
                        op, after = OP_DELETE, None
                        before = dict.fromkeys(model.fields)
                        before["Id"] = p.rid
                    else:  # deleted since: the event's own values are the best we have
                        after = model.from_event(p.rid, p.ev.record, p.changed)
                else:
                    after = rec
            else:
                after = model.from_event(p.rid, p.ev.record, p.changed)
            out.append(
                ChangeEvent(
                    model.table,
                    op,
                    before,
                    after,
                    h.commit_timestamp * 1000,
                    self._source_block(
                        model.name, replay_to_hex(p.ev.replay_id), h, p.changed, None, p.echo
                    ),
                )
            )
        return out

    def _fetch(self, items: list[_Pending]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """Current records of these changes: one retrieve call per object per 2,000 ids."""
        assert self.rest is not None
        by_obj: dict[str, list[str]] = {}
        for p in items:
            ids = by_obj.setdefault(p.model.name, [])
            if p.rid not in ids:
                ids.append(p.rid)
        out: dict[tuple[str, str], dict[str, Any] | None] = {}
        size = self.config.retrieve_batch
        for obj, ids in by_obj.items():
            model = self.models[obj]
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                records = self.rest.retrieve(obj, chunk, model.fields)
                for rid, rec in zip(chunk, records, strict=False):
                    out[(obj, rid)] = model.from_rest(rec) if rec else None
        return out

    def _overflow(self, model: ObjectModel, since_ms: int, ev: DecodedEvent) -> list[ChangeEvent]:
        log.warning(
            "source %s: overflow event for %s; re-reading records modified since %d ms",
            self.name,
            model.name,
            since_ms,
        )
        return self._reread(model, since_ms, ev)

    def _reread(
        self, model: ObjectModel, since_ms: int, ev: DecodedEvent | None
    ) -> list[ChangeEvent]:
        """Records of ``model`` modified since ``since_ms`` (``c`` or ``u``; deleted ones ``d``)."""
        assert self.rest is not None
        h = ev.header if ev is not None else None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(0, since_ms // 1000 - 1)))
        fields = ", ".join(model.fields)
        if "CreatedDate" not in model.fields:
            fields += ", CreatedDate"
        out: list[ChangeEvent] = []
        replay = replay_to_hex(ev.replay_id) if ev is not None else ""
        src = self._source_block(model.name, replay, h, None, None, False)
        ts_us = (h.commit_timestamp if h is not None else int(time.time() * 1000)) * 1000
        for rec in self.rest.query(
            f"SELECT {fields} FROM {model.name} WHERE LastModifiedDate >= {since}"
        ):
            row = model.from_rest(rec)
            created = str(rec.get("CreatedDate") or "")
            op = OP_CREATE if created and created[:19] >= since[:19] else OP_UPDATE
            out.append(ChangeEvent(model.table, op, None, row, ts_us, src))
        for rec in self.rest.query(
            # a delete moves SystemModstamp (not necessarily LastModifiedDate)
            f"SELECT Id FROM {model.name} WHERE IsDeleted = true AND SystemModstamp >= {since}",
            include_deleted=True,
        ):
            before = dict.fromkeys(model.fields)
            before["Id"] = rec["Id"]
            out.append(ChangeEvent(model.table, OP_DELETE, before, None, ts_us, src))
        return out

    def _platform_record(
        self, channel: str, ev: DecodedEvent
    ) -> tuple[str, bytes | None, bytes | None]:
        name = channel.rsplit("/", 1)[-1]
        topic = f"{self.name}.{name}"
        uuid = ev.record.get("EventUuid") or ev.event_id
        value = {**ev.record, "_replay_id": replay_to_hex(ev.replay_id)}
        return (topic, orjson.dumps({"EventUuid": uuid}), orjson.dumps(value))

    # -- helpers ---------------------------------------------------------------------------

    def _source_block(
        self,
        obj: str,
        replay: str,
        header: Any,
        changed: list[str] | None,
        _unused: Any,
        echo: bool,
    ) -> dict[str, Any]:
        return {
            "object": obj,
            "replay_id": replay or None,
            "change_origin": header.change_origin if header is not None else None,
            "commit_user": header.commit_user if header is not None else None,
            "transaction_key": header.transaction_key if header is not None else None,
            "sequence_number": header.sequence_number if header is not None else None,
            "changed_fields": changed,
            "echo": echo,
        }

    def _filter(self, events: list[ChangeEvent]) -> list[ChangeEvent]:
        skip = self.config.skip_ops
        return [e for e in events if e.op not in skip] if skip else events


class _BulkSnapshot(SnapshotReader):
    """Every record of each captured object through Bulk API 2.0 query jobs, in Id order.

    One CSV result page is one chunk; a restart continues after the last Id Kafka confirmed.
    """

    def __init__(self, source: SalesforceSource, hand_off: SalesforceOffset) -> None:
        self.source = source
        self.hand_off = hand_off
        self.started_us = (hand_off.catch_up_ms or int(time.time() * 1000)) * 1000

    def tables(self) -> Sequence[str]:
        return list(self.source.models)

    def read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        src = self.source
        assert src.rest is not None
        model = src.models[table]
        where = f" WHERE Id > '{after}'" if after else ""
        soql = f"SELECT {', '.join(model.fields)} FROM {table}{where} ORDER BY Id"
        block = src._source_block(table, "", None, None, None, False)
        for page in src.rest.bulk_query(soql, src.config.snapshot_page_size):
            events = [
                ChangeEvent(
                    model.table,
                    OP_READ,
                    None,
                    model.from_csv(row),
                    self.started_us,
                    block,
                    snapshot=SNAPSHOT_TRUE,
                )
                for row in page
            ]
            src.snapshot_rows += len(events)
            yield SnapshotChunk(events, events[-1].after["Id"] if events else after)
