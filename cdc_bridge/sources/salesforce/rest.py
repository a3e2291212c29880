"""The few REST calls the Salesforce source makes: describe, retrieve, query, Bulk query jobs.

Login and token refresh are the shared :class:`~cdc_bridge._salesforce.auth.Authenticator`'s.
A call that answers INVALID_SESSION_ID logs in again once and is repeated; connection errors
and 5xx answers raise RetriableError; other errors name what was refused.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import requests

from cdc_bridge._salesforce.auth import Authenticator, Token, http_session
from cdc_bridge.errors import ConfigError, FatalError, RetriableError
from cdc_bridge.sources.salesforce.config import SalesforceSourceConfig

__all__ = ["SalesforceRest"]


class SalesforceRest:
    def __init__(self, config: SalesforceSourceConfig) -> None:
        self.config = config
        self.http = http_session(config.ca_bundle)
        self.auth = Authenticator(config, self.http)
        self.base = f"/services/data/v{config.api_version}"
        self.calls: Counter[str] = Counter()

    def token(self) -> Token:
        return self.auth.token()

    def close(self) -> None:
        self.http.close()

    # -- plumbing --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> requests.Response:
        token = self.auth.token()
        for attempt in range(2):
            url = (
                path
                if path.startswith("http")
                else token.instance_url
                + (path if path.startswith("/services/") else f"{self.base}/{path}")
            )
            headers = {"Authorization": f"Bearer {token.access_token}", "Accept": accept}
            body = None
            if json_body is not None:
                body = orjson.dumps(json_body)
                headers["Content-Type"] = "application/json"
            self.calls[kind] += 1
            try:
                resp = self.http.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    params=params,
                    timeout=self.config.http_timeout_s(),
                )
            except requests.exceptions.SSLError as exc:
                raise ConfigError(
                    f"{self.config.label()}: TLS verification of {url} failed ({exc}); set ca_bundle"
                ) from exc
            except requests.RequestException as exc:
                raise RetriableError(f"{self.config.label()}: cannot reach {url}: {exc}") from exc
            if resp.status_code == 401 and attempt == 0:
                token = self.auth.refresh(token)
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                raise RetriableError(
                    f"{self.config.label()}: {method} {path} answered {resp.status_code}: {resp.text[:200]}"
                )
            if resp.status_code >= 400:
                raise _refused(self.config.label(), method, path, resp)
            return resp
        raise FatalError(f"{self.config.label()}: the session was refused twice")

    def get(self, path: str, kind: str, params: dict[str, str] | None = None) -> Any:
        return self._request("GET", path, kind=kind, params=params).json()

    # -- calls -----------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        return dict(self.get(f"sobjects/{sobject}/describe", "describe"))

    def retrieve(self, sobject: str, ids: list[str], fields: list[str]) -> list[Any]:
        """sObject Collections retrieve (POST, up to 2,000 ids): records in id order, None for gone."""
        resp = self._request(
            "POST",
            f"composite/sobjects/{sobject}",
            kind="retrieve",
            json_body={"ids": ids, "fields": fields},
        )
        return list(resp.json())

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Records of a SOQL query, following nextRecordsUrl."""
        page = self.get("queryAll" if include_deleted else "query", "query", {"q": soql})
        while True:
            yield from page.get("records", [])
            nxt = page.get("nextRecordsUrl")
            if not nxt or page.get("done", True):
                return
            page = self.get(nxt, "query")

    def bulk_query(
        self, soql: str, page_size: int, poll_s: float = 0.2
    ) -> Iterator[list[dict[str, str]]]:
        """Run a Bulk API 2.0 query job and yield its CSV result pages as lists of row dicts.

        Values are strings as in the CSV (empty string for null).
        """
        job = self._request(
            "POST",
            "jobs/query",
            kind="bulk",
            json_body={"operation": "query", "query": soql, "contentType": "CSV"},
        ).json()
        job_id = job["id"]
        delay = poll_s
        while True:
            info = self.get(f"jobs/query/{job_id}", "bulk")
            state = info.get("state")
            if state == "JobComplete":
                break
            if state in ("Failed", "Aborted"):
                raise FatalError(
                    f"{self.config.label()}: Bulk query job {job_id} {state.lower()}: "
                    f"{info.get('errorMessage', '')}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        locator: str | None = None
        while True:
            params = {"maxRecords": str(page_size)}
            if locator:
                params["locator"] = locator
            resp = self._request(
                "GET", f"jobs/query/{job_id}/results", kind="bulk", params=params, accept="text/csv"
            )
            rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"))))
            yield rows
            locator = resp.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return


def _refused(label: str, method: str, path: str, resp: requests.Response) -> Exception:
    try:
        body = resp.json()
        err = body[0] if isinstance(body, list) and body else body
        code = err.get("errorCode", resp.status_code)
        message = err.get("message", resp.text[:200])
    except (ValueError, AttributeError):
        code, message = resp.status_code, resp.text[:200]
    if resp.status_code in (401, 403):
        return ConfigError(
            f"{label}: Salesforce refused {method} {path}: {code}: {message}. The integration user "
            "needs API access and read access to the captured objects."
        )
    if resp.status_code == 404:
        return ConfigError(f"{label}: {method} {path}: not found ({code}: {message})")
    return FatalError(f"{label}: Salesforce refused {method} {path}: {code}: {message}")
