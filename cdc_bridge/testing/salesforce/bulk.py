"""Bulk API 2.0 ingest jobs: job lifecycle, CSV parsing, background processing, result CSVs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .coerce import TypeMismatch, format_datetime
from .errors import ApiError, SfError
from .ids import IdFactory
from .store import MultipleMatches, Store

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
CHUNK = 200


def _bad(message: str, code: str = "INVALIDJOB") -> ApiError:
    return ApiError(400, code, message)


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    external_id: str | None
    line_ending: str
    delimiter: str
    api_version: str
    state: str = "Open"
    created: str = field(default_factory=lambda: format_datetime(dt.datetime.now(dt.UTC)))
    modstamp: str = ""
    data: bytes | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    next_row: int = 0
    error_message: str | None = None
    processing_ms: int = 0
    abort: threading.Event = field(default_factory=threading.Event)
    origin: str = ""  # Sforce-Call-Options of the creating request (change events)
    user: str = ""

    def info(self, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": "0058d000000EMULAAA",
            "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter,
        }
        if self.external_id:
            out["externalIdFieldName"] = self.external_id
        if self.state == "Open":
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        if full:
            out.update(
                jobType="V2Ingest",
                numberRecordsProcessed=len(self.successes) + len(self.failures),
                numberRecordsFailed=len(self.failures),
                retries=0,
                totalProcessingTime=self.processing_ms,
                apiActiveProcessingTime=self.processing_ms,
                apexProcessingTime=0,
            )
            if self.error_message:
                out["errorMessage"] = self.error_message
        return out

    def touch(self, state: str | None = None) -> None:
        if state is not None:
            self.state = state
        self.modstamp = format_datetime(dt.datetime.now(dt.UTC))


class BulkIngest:
    """All ingest jobs of one emulator; processing runs on a thread per job."""

    def __init__(
        self,
        store: Store,
        ids: IdFactory,
        fault: Callable[[str | None], SfError | None],
        delay: float = 0.05,
    ) -> None:
        self.store = store
        self.ids = ids
        self.fault = fault
        self.delay = delay
        self.jobs: dict[str, IngestJob] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def create(self, body: Any, api_version: str) -> IngestJob:
        if not isinstance(body, dict):
            raise _bad("Invalid request body", "JSON_PARSER_ERROR")
        op = body.get("operation")
        if op not in OPERATIONS:
            raise _bad(f"InvalidJob : Invalid operation: {op}")
        obj = self.store.schema(str(body.get("object", "")))
        if obj is None:
            raise _bad(
                f"Entity '{body.get('object')}' is not supported by the Bulk API.", "INVALIDENTITY"
            )
        if body.get("contentType", "CSV") != "CSV":
            raise _bad(f"InvalidJob : Invalid content type: {body.get('contentType')}")
        line_ending = body.get("lineEnding", "LF")
        if line_ending not in ("LF", "CRLF"):
            raise _bad(f"InvalidJob : Invalid line ending: {line_ending}")
        delimiter = body.get("columnDelimiter", "COMMA")
        if delimiter not in DELIMITERS:
            raise _bad(f"InvalidJob : Invalid column delimiter: {delimiter}")
        ext = body.get("externalIdFieldName")
        if op == "upsert":
            if not ext:
                raise _bad(
                    f"InvalidJob : External ID was blank for {obj.name}. An External ID must be specified for upsert."
                )
            f = obj.field(ext)
            if f is None or not (f.external_id or f.id_lookup or f.type == "id"):
                raise _bad(
                    f"InvalidJob : Field name provided, {ext} is not an External ID or indexed field for {obj.name}"
                )
            ext = f.name
        job = IngestJob(
            id=self.ids.new("750"),
            object=obj.name,
            operation=op,
            external_id=ext if op == "upsert" else None,
            line_ending=line_ending,
            delimiter=delimiter,
            api_version=api_version,
            origin=getattr(self.store.context, "origin", ""),
            user=getattr(self.store.context, "user", ""),
        )
        with self._lock:
            self.jobs[job.id] = job
        return job

    def get(self, job_id: str) -> IngestJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def upload(self, job_id: str, data: bytes, content_type: str) -> None:
        job = self.get(job_id)
        if job.state != "Open":
            raise ApiError(
                409, "INVALIDJOBSTATE", f"Job {job_id} is not open for upload: state is {job.state}"
            )
        if not content_type.startswith("text/csv"):
            raise ApiError(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
        if job.data is not None:
            raise ApiError(
                409,
                "INVALIDJOBSTATE",
                "Data was already uploaded for this job: create a new job for more data",
            )
        job.data = data
        job.touch()

    def set_state(self, job_id: str, body: Any) -> IngestJob:
        job = self.get(job_id)
        state = body.get("state") if isinstance(body, dict) else None
        if state == "UploadComplete":
            if job.state != "Open":
                raise ApiError(409, "INVALIDJOBSTATE", f"Can't close a job in state {job.state}")
            job.touch("UploadComplete")
            t = threading.Thread(
                target=self._run, args=(job,), name=f"sfemu-bulk-{job.id}", daemon=True
            )
            self._threads.append(t)
            t.start()
        elif state == "Aborted":
            if job.state not in ("Open", "UploadComplete", "InProgress"):
                raise ApiError(409, "INVALIDJOBSTATE", f"Can't abort a job in state {job.state}")
            job.abort.set()
            job.touch("Aborted")
        else:
            raise _bad(f"InvalidJob : Invalid state: {state}", "INVALIDJOBSTATE")
        return job

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.state in ("Open", "InProgress"):
            raise ApiError(409, "INVALIDJOBSTATE", f"Can't delete a job in state {job.state}")
        with self._lock:
            del self.jobs[job_id]

    def join(self, timeout: float = 5.0) -> None:
        for t in list(self._threads):
            t.join(timeout)

    # ---- processing ---------------------------------------------------------------------

    def _fail(self, job: IngestJob, message: str) -> None:
        job.error_message = message
        job.touch("Failed")

    def _run(self, job: IngestJob) -> None:
        # the job's writes carry the origin and user of the request that created it
        self.store.set_context(job.origin, job.user)
        time.sleep(self.delay)
        if job.abort.is_set():
            return
        job.touch("InProgress")
        started = time.monotonic()
        try:
            self._parse(job)
            if job.state == "Failed":
                return
            time.sleep(self.delay / 2)
            while job.next_row < len(job.rows):
                if job.abort.is_set():
                    return
                self._chunk(job)
            job.processing_ms = int((time.monotonic() - started) * 1000)
            if not job.abort.is_set():
                job.touch("JobComplete")
        except Exception as exc:  # a bug in the emulator must still end the job visibly
            self._fail(job, f"InternalError : {exc!r}")

    def _parse(self, job: IngestJob) -> None:
        obj = self.store.schema(job.object)
        assert obj is not None
        if not job.data:
            self._fail(job, "InvalidBatch : No data uploaded for this job")
            return
        text = job.data.decode("utf-8-sig")
        if job.line_ending == "LF" and "\r\n" in text:
            self._fail(
                job,
                "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF",
            )
            return
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.delimiter])
        rows = [r for r in reader if r]
        if not rows:
            self._fail(job, "InvalidBatch : No header row")
            return
        header, job.rows = rows[0], rows[1:]
        job.header = header
        names = [h.lower() for h in header]
        if job.operation in ("delete", "hardDelete"):
            if names != ["id"]:
                self._fail(
                    job,
                    f"InvalidBatch : The '{job.operation}' batch must contain only 'Id', {header}",
                )
            return
        for h in header:
            rel, _, ext = h.partition(".")
            if obj.field(h) is None and not (ext and rel.lower() in obj.by_relationship):
                self._fail(job, f"InvalidBatch : Field name not found : {h}")
                return
        if job.operation == "update" and "id" not in names:
            self._fail(job, "InvalidBatch : Field name not found : Id")
        if job.operation == "upsert" and job.external_id and job.external_id.lower() not in names:
            self._fail(job, f"InvalidBatch : Field name not found : {job.external_id}")
        for n, row in enumerate(job.rows):
            if len(row) != len(header):
                self._fail(
                    job,
                    f"InvalidBatch : Row {n + 2} has {len(row)} columns, header has {len(header)}",
                )
                return

    def _chunk(self, job: IngestJob) -> None:
        obj = self.store.schema(job.object)
        assert obj is not None
        end = min(job.next_row + CHUNK, len(job.rows))
        header = job.header
        id_col = next((i for i, h in enumerate(header) if h.lower() == "id"), None)
        ext_f = obj.field(job.external_id) if job.external_id else None
        ext_col = next(
            (i for i, h in enumerate(header) if ext_f and h.lower() == ext_f.name.lower()), None
        )
        for row in job.rows[job.next_row : end]:
            raw = {h: v for h, v in zip(header, row, strict=True) if h.lower() != "id"}
            rid = row[id_col] if id_col is not None else ""
            try:
                with self.store.tx(self.fault) as tx:
                    if job.operation == "insert":
                        rid, created = self.store.insert(tx, obj, raw, csv=True), True
                    elif job.operation == "update":
                        rid, created = self.store.update(tx, obj, rid, raw, csv=True), False
                    elif job.operation == "upsert":
                        assert ext_f is not None and ext_col is not None
                        if ext_f.type == "id":
                            raw = {h: v for h, v in zip(header, row, strict=True)}
                        rid, created = self.store.upsert(
                            tx, obj, ext_f, row[ext_col], raw, csv=True
                        )
                    else:
                        rid, created = self.store.delete(tx, obj, rid), False
                job.successes.append((rid, created, row))
            except SfError as err:
                job.failures.append((rid if id_col is not None else "", err.bulk_text(), row))
            except TypeMismatch as tm:
                job.failures.append(
                    (rid if id_col is not None else "", tm.record_error().bulk_text(), row)
                )
            except MultipleMatches as mm:
                job.failures.append(("", mm.record_error().bulk_text(), row))
        job.next_row = end
        job.touch()

    # ---- results ------------------------------------------------------------------------

    def results(self, job_id: str, kind: str) -> str:
        job = self.get(job_id)
        buf = io.StringIO()
        w = csv.writer(
            buf,
            delimiter=DELIMITERS[job.delimiter],
            quoting=csv.QUOTE_ALL,
            lineterminator="\r\n" if job.line_ending == "CRLF" else "\n",
        )
        if kind == "successfulResults":
            w.writerow(["sf__Id", "sf__Created", *job.header])
            for rid, created, row in list(job.successes):
                w.writerow([rid, "true" if created else "false", *row])
        elif kind == "failedResults":
            w.writerow(["sf__Id", "sf__Error", *job.header])
            for rid, error, row in list(job.failures):
                w.writerow([rid, error, *row])
        else:
            done = len(job.successes) + len(job.failures)
            if job.header:
                w.writerow(job.header)
            rows = (
                job.rows[done:]
                if job.state in ("Aborted", "Failed", "InProgress", "UploadComplete")
                else []
            )
            for row in rows:
                w.writerow(row)
        return buf.getvalue()
