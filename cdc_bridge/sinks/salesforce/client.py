"""A thin Salesforce REST client: sObject Collections, SOQL, describe, Bulk API 2.0 ingest.

Every call goes through :meth:`SalesforceClient.request`, which owns the cross-cutting
rules: the quota guard before the call, the usage header after it, a fresh login and one
repeat of the same request on INVALID_SESSION_ID (nothing was applied, so nothing is sent
twice), and backoff on passing failures (503, timeouts, UNABLE_TO_LOCK_ROW on a whole
request). Callers get parsed bodies or a :class:`SalesforceApiError` with its action.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson
import requests
from pydantic import SecretStr

from cdc_bridge._salesforce.auth import Authenticator, Token, http_session
from cdc_bridge.errors import ConfigError, RetriableError
from cdc_bridge.sinks.salesforce.config import SalesforceSinkConfig
from cdc_bridge.sinks.salesforce.errors import (
    Action,
    SalesforceApiError,
    raise_for_response,
    tls_verification_failed,
)
from cdc_bridge.sinks.salesforce.quota import API_CALLS, QuotaGuard

__all__ = ["SalesforceClient", "backoff"]

log = logging.getLogger(__name__)

_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter (attempt 0 -> up to ``base``)."""
    return random.uniform(base / 2, min(cap, base * (2**attempt)))


_ORGS: dict[tuple[Any, ...], tuple[Authenticator, QuotaGuard]] = {}
_ORGS_LOCK = threading.Lock()


def shared_org(config: SalesforceSinkConfig) -> tuple[Authenticator, QuotaGuard]:
    """The login and the quota view of one org, shared by every route writing to it.

    One session instead of one per route, and one usage reading fed by every route's calls,
    so all routes slow down and pause together.
    """
    key = tuple((k, v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in config)
    with _ORGS_LOCK:
        org = _ORGS.get(key)
        if org is None:
            org = _ORGS[key] = (
                Authenticator(config),
                QuotaGuard(
                    config.name,
                    reserve=config.quota_reserve,
                    slowdown=config.quota_slowdown,
                    pause_s=config.quota_pause_s,
                ),
            )
        return org


class SalesforceClient:
    """REST calls against one org, for one route (login and quota shared per org)."""

    def __init__(
        self,
        config: SalesforceSinkConfig,
        auth: Authenticator | None = None,
        quota: QuotaGuard | None = None,
        *,
        max_retries: int = 8,
        backoff_s: float = 0.5,
        stopping: threading.Event | None = None,
    ) -> None:
        self.config = config
        self._call_options = f"client={config.call_options_client}"
        if auth is None or quota is None:
            shared_auth, shared_quota = shared_org(config)
            auth = auth or shared_auth
            quota = quota or shared_quota
        self.auth = auth
        self.quota = quota
        self.http = http_session(config.ca_bundle)
        self.stopping = stopping or threading.Event()
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.base = f"/services/data/v{config.api_version}"
        self.calls: collections.Counter[str] = collections.Counter()
        self.retries = 0
        self.refreshes = 0

    # -- core ------------------------------------------------------------------------------

    def _url(self, token: Token, path: str) -> str:
        if path.startswith("/services/"):
            return token.instance_url + path
        return f"{token.instance_url}{self.base}/{path.lstrip('/')}"

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        headers: dict[str, str] | None,
        params: dict[str, str] | None,
        kind: str,
    ) -> tuple[Token, requests.Response]:
        token = self.auth.token()
        hdrs = dict(_JSON)
        if headers:
            hdrs.update(headers)
        hdrs["Authorization"] = f"Bearer {token.access_token}"
        # tags the resulting change events (changeOrigin): how a Salesforce source skips them
        hdrs["Sforce-Call-Options"] = self._call_options
        self.calls[kind] += 1
        API_CALLS.labels(self.config.name, kind).inc()
        resp = self.http.request(
            method,
            self._url(token, path),
            data=body,
            headers=hdrs,
            params=params,
            timeout=self.config.timeout_s,
        )
        self.quota.observe(resp.headers.get("Sforce-Limit-Info"))
        return token, resp

    def _probe(self) -> None:
        """A cheap call that refreshes the usage reading (used by the quota guard)."""
        try:
            token, resp = self._send(
                "GET", "limits", body=None, headers=None, params=None, kind="limits"
            )
        except requests.RequestException as exc:
            raise RetriableError(f"cannot reach Salesforce: {exc}") from exc
        if resp.status_code == 401:
            self.auth.refresh(token)
        elif resp.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in resp.text:
            self.quota.exhausted()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        kind: str = "data",
        raw: bool = False,
    ) -> Any:
        """Make one logical call (retried/repeated as needed); returns the parsed body.

        ``raw=True`` returns the response text (CSV results).
        """
        body = orjson.dumps(json) if json is not None else data
        attempt = 0
        auth_repeats = 0
        while True:
            self.quota.wait(self._probe, self.stopping, max_block_s=self.config.quota_block_s)
            try:
                token, resp = self._send(
                    method, path, body=body, headers=headers, params=params, kind=kind
                )
            except requests.exceptions.SSLError as exc:
                if tls_verification_failed(exc):
                    raise ConfigError(
                        f"sink {self.config.name!r}: TLS verification failed for the "
                        f"Salesforce instance ({exc}); set ca_bundle"
                    ) from exc
                # reset or EOF during the handshake: a network failure, retried below
                err: SalesforceApiError = SalesforceApiError(599, "NETWORK", str(exc), method, path)
                err.action = Action.RETRY
            except requests.RequestException as exc:
                err = SalesforceApiError(599, "NETWORK", str(exc), method, path)
                err.action = Action.RETRY
            else:
                if resp.status_code < 300:
                    if raw:
                        return resp.text
                    if not resp.content:
                        return None
                    try:
                        return orjson.loads(resp.content)
                    except orjson.JSONDecodeError:
                        return resp.text
                try:
                    parsed: Any = orjson.loads(resp.content) if resp.content else None
                except orjson.JSONDecodeError:
                    parsed = resp.text
                try:
                    raise_for_response(resp.status_code, parsed, method, path)
                except SalesforceApiError as e:
                    err = e
                if err.action is Action.AUTH:
                    if auth_repeats >= 2:
                        raise err.to_bridge_error() from err
                    auth_repeats += 1
                    self.refreshes += 1
                    self.auth.refresh(token)
                    continue  # the refused request was not applied: repeat it as is
                if err.code == "REQUEST_LIMIT_EXCEEDED" and "concurrent" not in err.message.lower():
                    # The daily total ("TotalRequests Limit exceeded"); the concurrent
                    # long-request limit ("ConcurrentPerOrgLongTxn") is only backed off from.
                    self.quota.exhausted()
                    continue  # wait() pauses until the quota is back
            if err.action is not Action.RETRY:
                raise err
            if attempt >= self.max_retries:
                raise RetriableError(
                    f"Salesforce kept failing after {attempt + 1} attempts: {err}"
                ) from err
            delay = backoff(attempt, base=self.backoff_s)
            attempt += 1
            self.retries += 1
            log.info("salesforce %s: %s; retrying in %.1fs", self.config.name, err, delay)
            if self.stopping.wait(delay):
                raise RetriableError(f"stopping while retrying: {err}") from err

    # -- sObject Collections -----------------------------------------------------------------

    def upsert(
        self, sobject: str, external_id: str, records: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Upsert up to 200 records by external ID; one result per record, in order."""
        payload = {
            "allOrNone": False,
            "records": [{"attributes": {"type": sobject}, **r} for r in records],
        }
        out = self.request(
            "PATCH", f"composite/sobjects/{quote(sobject)}/{quote(external_id)}", json=payload
        )
        return list(out or [])

    def delete(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Delete up to 200 records by Salesforce ID; one result per id, in order."""
        out = self.request(
            "DELETE",
            "composite/sobjects",
            params={"ids": ",".join(ids), "allOrNone": "false"},
        )
        return list(out or [])

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Run a SOQL query and follow ``nextRecordsUrl``."""
        out: list[dict[str, Any]] = []
        page = self.request("GET", "query", params={"q": soql}, kind="query")
        while True:
            out.extend(page.get("records", []))
            nxt = page.get("nextRecordsUrl")
            if page.get("done", True) or not nxt:
                return out
            page = self.request("GET", nxt, kind="query")

    # -- metadata --------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        return dict(self.request("GET", f"sobjects/{quote(sobject)}/describe", kind="describe"))

    def limits(self) -> dict[str, Any]:
        return dict(self.request("GET", "limits", kind="limits"))

    # -- Bulk API 2.0 ingest -----------------------------------------------------------------

    def create_job(
        self, sobject: str, operation: str, external_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if external_id:
            body["externalIdFieldName"] = external_id
        return dict(self.request("POST", "jobs/ingest", json=body, kind="bulk"))

    def upload_job_data(self, job_id: str, csv_data: bytes) -> None:
        self.request(
            "PUT",
            f"jobs/ingest/{job_id}/batches",
            data=csv_data,
            headers={"Content-Type": "text/csv"},
            kind="bulk",
        )

    def close_job(self, job_id: str) -> dict[str, Any]:
        return dict(
            self.request(
                "PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"}, kind="bulk"
            )
        )

    def abort_job(self, job_id: str) -> None:
        self.request("PATCH", f"jobs/ingest/{job_id}", json={"state": "Aborted"}, kind="bulk")

    def job_info(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"jobs/ingest/{job_id}", kind="bulk"))

    def job_results(self, job_id: str, which: str) -> str:
        """``failedResults``, ``successfulResults`` or ``unprocessedrecords`` as CSV text."""
        return str(
            self.request(
                "GET",
                f"jobs/ingest/{job_id}/{which}/",
                headers={"Accept": "text/csv"},
                kind="bulk",
                raw=True,
            )
        )

    def wait_job(self, job_id: str, poll_s: float = 2.0, cap_s: float = 30.0) -> dict[str, Any]:
        """Poll until the job is JobComplete, Failed or Aborted."""
        delay = poll_s
        while True:
            info = self.job_info(job_id)
            if info.get("state") in ("JobComplete", "Failed", "Aborted"):
                return info
            if self.stopping.wait(delay):
                raise RetriableError(f"stopping while waiting for Bulk API job {job_id}")
            delay = min(cap_s, delay * 1.5)

    def close(self) -> None:
        self.http.close()
