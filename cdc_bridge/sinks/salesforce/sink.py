"""The Salesforce sink: a route's batch -> upserts/deletes by external ID, within the API limits.

Per batch: map each record (``mapping``), collapse per external-ID value (``batching``), then
send upserts through sObject Collections (200 a call) or, while the backlog is large, one
Bulk API 2.0 job; resolve deletes to record Ids with one SOQL query per few hundred keys and
delete them 200 a call. Every record's outcome is reported by its batch index: passing
failures (UNABLE_TO_LOCK_ROW, a lookup parent not there yet) are resent with backoff, only
those records; permanent ones come back as ``RecordError`` with Salesforce's message for the
dead-letter topic. Offsets are the route engine's business: it commits only after ``apply``
returned, so nothing is acknowledged that Salesforce did not take or the DLQ did not get.
"""

from __future__ import annotations

import collections
import csv
import io
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from cdc_bridge.errors import ConfigError, FatalError, RecordError, RetriableError
from cdc_bridge.sinks.base import BatchResult, Sink, SinkContext, SinkRecord, TopicPartition
from cdc_bridge.sinks.salesforce.batching import (
    COLLECTIONS_MAX,
    Collapsed,
    ModeSwitch,
    chunks,
    collapse,
)
from cdc_bridge.sinks.salesforce.client import SalesforceClient, backoff
from cdc_bridge.sinks.salesforce.config import SalesforceRouteConfig, SalesforceSinkConfig
from cdc_bridge.sinks.salesforce.errors import (
    Action,
    RecordFailure,
    SalesforceApiError,
    parse_bulk_error,
)
from cdc_bridge.sinks.salesforce.mapping import Mapper, SfOp, lookup_parts
from cdc_bridge.sinks.salesforce.preflight import Describe, check_route
from cdc_bridge.sinks.salesforce.quota import BULK_MODE, RECORDS

__all__ = ["SalesforceSink", "csv_payload", "json_record", "soql_literal"]

log = logging.getLogger(__name__)

NULL_CSV = "#N/A"
BULK_MAX_RECORDS = 100_000  # records per Bulk API 2.0 job we create
BULK_MAX_BYTES = 90 * 1024 * 1024  # stay under the 100 MB (base64) upload limit
BLOCK_S = 30.0  # longest one apply keeps retrying records before handing the batch back
QUERY_KEYS = 300  # external-ID values per SOQL IN (...) when resolving deletes
QUERY_CHARS = 12_000  # and a bound on the query's length (URL limit)
_NUMERIC = {"double", "currency", "percent", "int", "long"}
_GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})
_NO_COLUMN = re.compile(r"No such column '([^']+)'", re.IGNORECASE)


def json_record(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat mapped values -> a Collections record (``Rel__r.Ext__c`` nested as a relationship)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        parts = lookup_parts(name)
        if parts:
            out.setdefault(parts[0], {})[parts[1]] = value
        else:
            out[name] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return NULL_CSV
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_payload(rows: Sequence[Mapping[str, Any]]) -> tuple[bytes, list[str]]:
    """Rows -> Bulk API 2.0 CSV (LF, comma). A field a row lacks is left empty (unchanged);
    a None is ``#N/A`` (set to null)."""
    header: dict[str, None] = {}
    for r in rows:
        for k in r:
            header.setdefault(k, None)
    cols = list(header)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r[c]) if c in r else "" for c in cols])
    return buf.getvalue().encode(), cols


def _fingerprint(item: Collapsed) -> tuple[str, bytes]:
    return item.op.ext_value, orjson.dumps(item.op.values, option=orjson.OPT_SORT_KEYS)


def soql_literal(value: str, numeric: bool = False) -> str:
    """A SOQL literal for a value (quoted and escaped unless the field is numeric)."""
    if numeric:
        try:
            float(value)
            return value
        except ValueError:
            pass
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceSink(Sink):
    """Upserts and deletes SObject records by external ID for one route."""

    mirrors_rows = True

    def __init__(
        self,
        config: SalesforceSinkConfig,
        route: SalesforceRouteConfig | None = None,
        context: SinkContext | None = None,
    ) -> None:
        # ``route`` may be None when the sink is built only to check the login.
        context = context or SinkContext(bridge="cdc-bridge", route=config.name, group_id="")
        super().__init__(config, route, context)  # type: ignore[arg-type]
        self.config: SalesforceSinkConfig = config
        self.route: SalesforceRouteConfig = route  # type: ignore[assignment]
        self.stopping = threading.Event()
        self.client: SalesforceClient | None = None
        self.mapper: Mapper | None = None
        self.describe: Describe | None = None
        self.mode = ModeSwitch(
            route.bulk_threshold if route else 1,
            route.bulk_exit_threshold if route else 1,
            None if route is None or route.mode == "auto" else route.mode,
            name=f"{config.name}/{route.sobject if route else ''}",
        )
        self.stats: collections.Counter[str] = collections.Counter()
        self._parent_waits = 0
        # Upserts that landed in an attempt that then failed passingly (see apply).
        self._progress: list[Collapsed] = []
        self._memo: set[tuple[str, bytes]] = set()
        # external-ID value -> when Salesforce first said its lookup parent is missing.
        self._parent_since: dict[str, float] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._ext_numeric = False
        self._ext_name = route.external_id if route else "Id"
        self._fold_case = True

    # -- life cycle ------------------------------------------------------------------------

    def _client(self) -> SalesforceClient:
        if self.client is None:
            route = self.route
            self.client = SalesforceClient(
                self.config,
                max_retries=route.transient_retries if route else 3,
                backoff_s=max(route.retry_backoff_ms, 1) / 1000 if route else 0.5,
                stopping=self.stopping,
            )
        return self.client

    def open(self) -> None:
        """Log in, describe the SObject, refuse to start on any mapping problem."""
        client = self._client()
        if self.route is None:
            client.auth.token()
            return
        pre = check_route(client, self.route)
        if pre.problems:
            raise ConfigError(
                f"route {self.context.route!r} -> Salesforce {self.route.sobject}: the mapping does not fit the org",
                pre.problems,
            )
        self.describe = pre.describe
        auto = pre.describe.writable_fields() if pre.describe and not self.route.fields else None
        self.mapper = Mapper(self.route, auto)
        ext = pre.describe.field(self.route.external_id) if pre.describe else None
        self._ext_numeric = bool(ext and ext.get("type") in _NUMERIC)
        self._ext_name = ext["name"] if ext else self.route.external_id
        self._fold_case = not (ext or {}).get("caseSensitive", False)

    def check(self) -> list[str]:
        """Every problem of this route's mapping against the org (empty: fine).

        Logs in and describes the SObject and the lookup parents; writes nothing. Without a
        route it only checks the login and the API (one ``/limits`` call).
        """
        try:
            client = self._client()
            if self.route is None:
                limits = client.limits().get("DailyApiRequests", {})
                log.info(
                    "salesforce %s: logged in; %s of %s daily API requests left",
                    self.config.name,
                    limits.get("Remaining"),
                    limits.get("Max"),
                )
                return []
            pre = check_route(client, self.route)
        except (ConfigError, FatalError, RetriableError, SalesforceApiError) as exc:
            return [str(exc)]
        return [str(p) for p in pre.problems]

    def close(self) -> None:
        self.stopping.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()

    # -- apply -----------------------------------------------------------------------------

    def apply(
        self,
        batch: Sequence[SinkRecord],
        positions: Mapping[TopicPartition, int] | None = None,
        *,
        previous: Mapping[TopicPartition, int | None] | None = None,
    ) -> BatchResult:
        """Apply a batch; ``positions``/``previous`` are for transactional sinks (unused here:
        Salesforce cannot store offsets atomically, the route commits after this returns)."""
        if self.route is None:
            raise ConfigError(f"sink {self.config.name!r} was built without a route")
        if self.mapper is None:
            self.open()
        assert self.mapper is not None
        failed: dict[int, RecordError] = {}
        ops: list[tuple[int, SfOp]] = []
        map_one = self.mapper.map
        for i, rec in enumerate(batch):
            try:
                op = map_one(rec)
            except RecordError as exc:
                failed[i] = exc
                continue
            if op is not None:
                ops.append((i, op))
        plan = collapse(ops, fold_case=self._fold_case)
        self.stats["records"] += len(batch)
        self.stats["collapsed"] += len(plan)
        upserts = plan.upserts
        if self._memo and upserts:
            # A retry of a batch that was interrupted: what already landed is not sent again.
            upserts = [c for c in upserts if _fingerprint(c) not in self._memo]
            self.stats["skipped_as_applied"] += len(plan.upserts) - len(upserts)
        self._progress = []
        try:
            if upserts:
                if self.mode.choose(len(upserts)):
                    self._bulk_upsert(upserts, failed)
                else:
                    self._upsert(upserts, failed)
            if plan.deletes:
                self._delete(plan.deletes, failed)
        except RetriableError:
            self._memo.update(_fingerprint(c) for c in self._progress)
            raise
        self._memo.clear()
        self.stats["failed"] += len(failed)
        self._export(len(upserts), len(plan.deletes), len(failed))
        return BatchResult(failed)

    def _export(self, upserts: int, deletes: int, failed: int) -> None:
        """Prometheus metrics for this batch (records by outcome, current mode)."""
        name, sobject = self.config.name, self.route.sobject
        RECORDS.labels(name, sobject, "upsert").inc(upserts)
        RECORDS.labels(name, sobject, "delete").inc(deletes)
        RECORDS.labels(name, sobject, "failed").inc(failed)
        BULK_MODE.labels(name, sobject).set(1 if self.mode.bulk else 0)

    # -- outcomes --------------------------------------------------------------------------

    def _fail(
        self, item: Collapsed, failure: RecordFailure, failed: dict[int, RecordError]
    ) -> None:
        """A permanent failure for every batch index the collapsed record stands for."""
        action = failure.action
        if action is Action.FATAL:
            raise FatalError(
                f"Salesforce refused a {self.route.sobject} record with {failure.reason()}; "
                "this needs an administrator (permissions, storage, org settings)"
            )
        if action is Action.CONFIG:
            raise ConfigError(
                f"Salesforce refused a {self.route.sobject} record with {failure.reason()}; "
                "check the route's sobject and field mapping (cdc-bridge check --connect)"
            )
        err = failure.to_error()
        for i in item.indexes:
            failed[i] = err
        log.warning(
            "salesforce %s: %s %s dead-lettered: %s",
            self.config.name,
            self.route.sobject,
            item.op.ext_value,
            failure.reason(),
        )

    def _triage(
        self,
        item: Collapsed,
        failure: RecordFailure,
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        if failure.missing_parent:
            # The wait is counted from the first refusal, across retries of the batch.
            now = time.monotonic()
            since = self._parent_since.setdefault(item.op.ext_value, now)
            if now - since < self.route.parent_wait_s:
                retry.append(item)
                self._parent_waits += 1
                self.stats["parent_waits"] += 1
                return
            self._parent_since.pop(item.op.ext_value, None)
            self._fail(item, failure, failed)
            return
        if failure.action is Action.RETRY:
            retry.append(item)
            self.stats["record_retries"] += 1
            return
        self._fail(item, failure, failed)

    def _retry_rounds(
        self, pending: list[Collapsed], send: Any, failed: dict[int, RecordError]
    ) -> None:
        """Send ``pending``; resend only the records that failed passingly, with backoff.

        Gives up with RetriableError (the engine retries the batch; what landed is not resent)
        after ``transient_retries`` rounds, or after BLOCK_S while waiting for lookup parents,
        so the route engine regains control regularly (shutdown, rebalance).
        """
        started = time.monotonic()
        attempt = 0
        self._parent_waits = 0
        while pending:
            retry: list[Collapsed] = []
            send(pending, retry, failed)
            if not retry:
                return
            waiting_for_parents = self._parent_waits > 0
            self._parent_waits = 0
            if attempt >= self.route.transient_retries and (
                not waiting_for_parents or time.monotonic() - started >= BLOCK_S
            ):
                raise RetriableError(
                    f"{len(retry)} {self.route.sobject} records still failing after "
                    f"{attempt + 1} attempts (e.g. UNABLE_TO_LOCK_ROW); the batch will be retried"
                )
            delay = backoff(
                min(attempt, 6), base=max(self.route.retry_backoff_ms, 1) / 1000, cap=10.0
            )
            attempt += 1
            if self.stopping.wait(delay):
                raise RetriableError("stopping while retrying records")
            pending = retry

    # -- upserts: sObject Collections ------------------------------------------------------

    def _upsert(self, items: list[Collapsed], failed: dict[int, RecordError]) -> None:
        self._retry_rounds(items, self._send_upserts, failed)

    def _send_upserts(
        self,
        items: list[Collapsed],
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        parts = [list(c) for c in chunks(items, COLLECTIONS_MAX)]
        if len(parts) == 1 or self.route.parallel_calls == 1:
            for part in parts:
                self._upsert_chunk(part, retry, failed)
            return
        # After collapsing, no key is in two chunks: the calls are independent and may run
        # side by side. Their outcomes are handled here, in order, on this thread.
        for part, outcome in zip(parts, self._pool().map(self._call_upsert, parts), strict=True):
            self._handle_upsert(part, outcome, retry, failed)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.route.parallel_calls, thread_name_prefix=f"sf-{self.config.name}"
            )
        return self._executor

    def _call_upsert(self, chunk: list[Collapsed]) -> list[dict[str, Any]] | SalesforceApiError:
        try:
            return self._client().upsert(
                self.route.sobject, self._ext_name, [json_record(c.op.values) for c in chunk]
            )
        except SalesforceApiError as exc:
            return exc

    def _upsert_chunk(
        self,
        chunk: list[Collapsed],
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        self._handle_upsert(chunk, self._call_upsert(chunk), retry, failed)

    def _handle_upsert(
        self,
        chunk: list[Collapsed],
        outcome: list[dict[str, Any]] | SalesforceApiError,
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        if isinstance(outcome, SalesforceApiError):
            if outcome.action is not Action.RECORD:
                raise outcome.to_bridge_error() from outcome
            self._isolate(chunk, outcome, retry, failed)
            return
        results = outcome
        self.stats["collections_calls"] += 1
        for n, item in enumerate(chunk):
            res = results[n] if n < len(results) else None
            if res is None:
                retry.append(item)
                continue
            if res.get("success"):
                self.stats["upserted"] += 1
                self._progress.append(item)
                if self._parent_since:
                    self._parent_since.pop(item.op.ext_value, None)
                continue
            self._triage(
                item,
                RecordFailure.from_result(res.get("errors") or []),
                retry,
                failed,
            )

    def _isolate(
        self,
        chunk: list[Collapsed],
        exc: SalesforceApiError,
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        """A whole call was refused for its content (bad JSON value, unknown field): find the
        records responsible, so the rest of the chunk still goes through."""
        failure = RecordFailure(exc.code or "UNKNOWN_EXCEPTION", exc.message)
        if len(chunk) == 1:
            self._fail(chunk[0], failure, failed)
            return
        m = _NO_COLUMN.search(exc.message)
        if m:
            column = m.group(1).lower()
            bad = [
                c
                for c in chunk
                if any(
                    k.lower() == column or k.lower().startswith(column + ".") for k in c.op.values
                )
            ]
            if bad:
                for c in bad:
                    self._fail(c, failure, failed)
                good = [c for c in chunk if c not in bad]
                if good:
                    self._upsert_chunk(good, retry, failed)
                return
        half = len(chunk) // 2
        self._upsert_chunk(chunk[:half], retry, failed)
        self._upsert_chunk(chunk[half:], retry, failed)

    # -- upserts: Bulk API 2.0 -------------------------------------------------------------

    def _bulk_upsert(self, items: list[Collapsed], failed: dict[int, RecordError]) -> None:
        retry: list[Collapsed] = []
        start = 0
        while start < len(items):
            job_items: list[Collapsed] = []
            size = 0
            while (
                start < len(items) and len(job_items) < BULK_MAX_RECORDS and size < BULK_MAX_BYTES
            ):
                job_items.append(items[start])
                size += 40 + sum(len(str(v)) + 3 for v in items[start].op.values.values())
                start += 1
            self._bulk_job(job_items, retry, failed)
        if retry:
            # The few records that failed passingly go again through Collections.
            self._retry_rounds(retry, self._send_upserts, failed)

    def _run_bulk_job(self, client: Any, job_id: str, data: bytes) -> dict[str, Any]:
        """Upload and close a Bulk API 2.0 job (aborting it if that fails), then wait for it."""
        self.stats["bulk_jobs"] += 1
        try:
            client.upload_job_data(job_id, data)
            client.close_job(job_id)
        except Exception:
            try:
                client.abort_job(job_id)
            except Exception:
                pass
            raise
        info: dict[str, Any] = client.wait_job(job_id, self.route.bulk_poll_s)
        return info

    def _bulk_job(
        self,
        items: list[Collapsed],
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        client = self._client()
        data, cols = csv_payload([c.op.values for c in items])
        job = client.create_job(self.route.sobject, "upsert", self._ext_name)
        job_id = job["id"]
        info = self._run_bulk_job(client, job_id, data)
        state = info.get("state")
        log.info(
            "salesforce %s: bulk job %s %s: %s processed, %s failed",
            self.config.name,
            job_id,
            state,
            info.get("numberRecordsProcessed"),
            info.get("numberRecordsFailed"),
        )
        by_ext = {c.op.ext_value: c for c in items}
        ext_col = next((c for c in cols if c.lower() == self._ext_name.lower()), self._ext_name)
        seen: set[str] = set()
        if state == "JobComplete" or int(info.get("numberRecordsProcessed") or 0) > 0:
            for row in csv.DictReader(io.StringIO(client.job_results(job_id, "failedResults"))):
                item = by_ext.get(row.get(ext_col, ""))
                if item is None or item.op.ext_value in seen:
                    continue
                seen.add(item.op.ext_value)
                self._triage(item, parse_bulk_error(row.get("sf__Error", "")), retry, failed)
        if state != "JobComplete":
            unprocessed = client.job_results(job_id, "unprocessedrecords")
            rows = list(csv.DictReader(io.StringIO(unprocessed)))
            if state == "Failed" and not int(info.get("numberRecordsProcessed") or 0):
                msg = info.get("errorMessage") or "the job failed"
                raise FatalError(
                    f"Salesforce Bulk API job {job_id} for {self.route.sobject} failed: {msg}"
                )
            for row in rows:
                item = by_ext.get(row.get(ext_col, ""))
                if item is not None and item.op.ext_value not in seen:
                    seen.add(item.op.ext_value)
                    retry.append(item)
        self.stats["upserted"] += len(items) - len(seen)
        self._progress.extend(c for c in items if c.op.ext_value not in seen)

    # -- deletes ---------------------------------------------------------------------------

    def _resolve(self, values: list[str]) -> dict[str, list[str]]:
        """external-ID value -> Salesforce record Ids (SOQL, a few hundred values a query)."""
        client = self._client()
        out: dict[str, list[str]] = {}
        lower = {v.lower(): v for v in values}
        start = 0
        while start < len(values):
            lits: list[str] = []
            length = 0
            while start < len(values) and len(lits) < QUERY_KEYS and length < QUERY_CHARS:
                lit = soql_literal(values[start], self._ext_numeric)
                lits.append(lit)
                length += len(lit) + 1
                start += 1
            soql = (
                f"SELECT Id, {self._ext_name} FROM {self.route.sobject} "
                f"WHERE {self._ext_name} IN ({','.join(lits)})"
            )
            for rec in client.query(soql):
                raw = rec.get(self._ext_name)
                if raw is None:
                    raw = next(
                        (v for k, v in rec.items() if k.lower() == self._ext_name.lower()), None
                    )
                key = lower.get(str(raw).lower()) if raw is not None else None
                if key is None and isinstance(raw, float) and raw.is_integer():
                    key = lower.get(str(int(raw)))
                if key is not None:
                    out.setdefault(key, []).append(rec["Id"])
        return out

    def _delete(self, items: list[Collapsed], failed: dict[int, RecordError]) -> None:
        self._retry_rounds(items, self._send_deletes, failed)

    def _send_deletes(
        self,
        items: list[Collapsed],
        retry: list[Collapsed],
        failed: dict[int, RecordError],
    ) -> None:
        ids_of = self._resolve([c.op.ext_value for c in items])
        pairs: list[tuple[str, Collapsed]] = []
        for c in items:
            found = ids_of.get(c.op.ext_value)
            if not found:
                self.stats["already_deleted"] += 1  # not there: deleting again is a no-op
                continue
            pairs.extend((rid, c) for rid in found)
        client = self._client()
        requeued: set[str] = set()

        def outcome(item: Collapsed, failure: RecordFailure | None) -> None:
            if failure is None:
                self.stats["deleted"] += 1
                return
            if failure.code in _GONE:
                return  # deleted already
            if item.op.ext_value in requeued or any(i in failed for i in item.indexes):
                return
            sub: list[Collapsed] = []
            self._triage(item, failure, sub, failed)
            if sub:
                requeued.add(item.op.ext_value)
                retry.extend(sub)

        if self.mode.bulk and len(pairs) > COLLECTIONS_MAX * 3:
            self._bulk_delete(pairs, outcome)
            return
        for start in range(0, len(pairs), COLLECTIONS_MAX):
            part = pairs[start : start + COLLECTIONS_MAX]
            results = client.delete([rid for rid, _ in part])
            self.stats["collections_calls"] += 1
            for n, (_rid, item) in enumerate(part):
                res = results[n] if n < len(results) else None
                if res is not None and res.get("success"):
                    outcome(item, None)
                    continue
                outcome(
                    item,
                    RecordFailure.from_result(res.get("errors") or [])
                    if res is not None
                    else RecordFailure("UNKNOWN_EXCEPTION", "no result returned"),
                )

    def _bulk_delete(self, pairs: list[tuple[str, Collapsed]], outcome: Any) -> None:
        """A large backlog of deletes: one Bulk API 2.0 delete job (by record Id)."""
        client = self._client()
        by_id = dict(pairs)
        data = ("Id\n" + "\n".join(by_id) + "\n").encode()
        job_id = client.create_job(self.route.sobject, "delete")["id"]
        info = self._run_bulk_job(client, job_id, data)
        failed_ids: set[str] = set()
        for name in ("failedResults", "unprocessedrecords"):
            if name == "unprocessedrecords" and info.get("state") == "JobComplete":
                continue
            for row in csv.DictReader(io.StringIO(client.job_results(job_id, name))):
                rid = row.get("Id") or row.get("sf__Id") or ""
                item = by_id.get(rid)
                if item is None or rid in failed_ids:
                    continue
                failed_ids.add(rid)
                err = row.get("sf__Error")
                outcome(
                    item,
                    parse_bulk_error(err)
                    if err
                    else RecordFailure("UNKNOWN_EXCEPTION", "not processed by the bulk job"),
                )
        for rid, item in pairs:
            if rid not in failed_ids:
                outcome(item, None)
