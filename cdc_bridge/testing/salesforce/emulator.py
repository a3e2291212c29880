"""The Salesforce REST API emulator: an HTTPS server over the store, auth, bulk and SOQL pieces."""

from __future__ import annotations

import base64
import re
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from . import soql, tls
from .auth import AuthConfig, Authenticator, OAuthError, Sessions
from .bulk import BulkIngest
from .coerce import TypeMismatch
from .errors import ApiError, SfError, not_found
from .faults import FaultConfig, FaultInjector
from .ids import IdFactory, to18
from .pubsub import API_USER_ID, UI_USER_ID, EventBus, PubSubServer
from .schema import ObjectSchema, default_objects, object_from_dict
from .store import MultipleMatches, Store

MAX_COLLECTION = 200
QUERY_BATCH = 2000
MAX_CURSORS = 100
_VERSION_RE = re.compile(r"^/services/data/v(\d{2}\.\d)(/.*)?$")
_SOAP_RE = re.compile(r"^/services/Soap/u/(\d{2}\.\d)(?:/.*)?$")


class Call(NamedTuple):
    """One logged call: kind is auth, data, describe, query, bulk, limits or other."""

    method: str
    path: str
    kind: str
    status: int


class _Response(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] | None = None


def _json(status: int, body: Any) -> _Response:
    return _Response(status, orjson.dumps(body))


def _error(err: ApiError) -> _Response:
    return _json(err.status, err.body())


def _kind(path: str, method: str) -> str:
    if path.startswith("/services/oauth2/") or path.startswith("/services/Soap/u/"):
        return "auth"
    m = _VERSION_RE.match(path)
    rest = (m.group(2) or "") if m else ""
    parts = [p for p in rest.split("/") if p]
    if not parts:
        return "other"
    head = parts[0]
    if head in ("query", "queryAll"):
        return "query"
    if head == "jobs":
        return "bulk"
    if head == "limits":
        return "limits"
    if head == "sobjects" and (
        len(parts) == 1 or parts[-1] == "describe" or (len(parts) == 2 and method == "GET")
    ):
        return "describe"
    return "data"


class _TlsServer(ThreadingHTTPServer):
    """HTTPS: accepts TCP, then runs the TLS handshake -- or cuts it when the fault injector
    says so (a reset or an EOF after the ClientHello, as a flaky network or proxy does)."""

    tls: ssl.SSLContext

    def __init__(self, address: tuple[str, int], handler: Any, faults: FaultInjector) -> None:
        super().__init__(address, handler)
        self.faults = faults

    def get_request(self) -> tuple[Any, Any]:
        conn, addr = self.socket.accept()
        cut = self.faults.handshake_reset()
        if cut is not None:
            try:
                conn.settimeout(5)
                # The ClientHello arrives: the handshake is under way. An EOF needs all of
                # it read (unread bytes make the kernel send a reset instead).
                hello = conn.recv(65536)
                if cut == "rst":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif len(hello) >= 5:
                    length = 5 + int.from_bytes(hello[3:5], "big")
                    while len(hello) < length:
                        more = conn.recv(65536)
                        if not more:
                            break
                        hello += more
            finally:
                conn.close()
            raise OSError(f"handshake {cut} injected")  # socketserver drops this request
        try:
            return self.tls.wrap_socket(conn, server_side=True), addr
        except BaseException:
            conn.close()
            raise


class SalesforceEmulator:
    """A local, faithful double of the Salesforce REST API for tests, benchmarks and demos.

    Use as a context manager or call start()/stop(). HTTPS by default with a CA generated at
    start (trust `ca_file`); `tls=False` serves plain HTTP (compose, sinks with plain URLs).
    `advertised_host` is the host name put in instance URLs and the certificate (compose
    service names); the listening address is `host`.
    """

    def __init__(
        self,
        objects: Iterable[ObjectSchema | dict[str, Any]] | None = None,
        faults: FaultConfig | None = None,
        daily_limit: int = 15000,
        api_version: str = "61.0",
        *,
        auth: AuthConfig | None = None,
        bulk_delay: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        include_defaults: bool = True,
        cert_dir: str | None = None,
        advertised_host: str | None = None,
        pubsub: bool = True,
        replay_retention_s: float = 72 * 3600,
        replay_max_events: int = 1_000_000,
        pubsub_keepalive_s: float = 270.0,
        pubsub_idle_timeout_s: float | None = None,
    ) -> None:
        self.api_version = api_version
        self.host = host
        self._port = port
        self._tls = tls
        self._cert_dir = cert_dir
        self.advertised_host = advertised_host
        custom = [
            o if isinstance(o, ObjectSchema) else object_from_dict(o, i)
            for i, o in enumerate(objects or [])
        ]
        names = {o.name.lower() for o in custom}
        base = (
            [o for o in default_objects() if o.name.lower() not in names]
            if include_defaults
            else []
        )
        self.ids = IdFactory()
        self.store = Store([*base, *custom], self.ids)
        self.faults = FaultInjector(faults)
        self.sessions = Sessions(expire_after=(faults or FaultConfig()).session_expire_after)
        self.auth_config = auth or AuthConfig()
        self.authenticator = Authenticator(self.auth_config, self.sessions)
        self.bulk = BulkIngest(self.store, self.ids, self.faults.lock_row, delay=bulk_delay)
        # Change Data Capture: every committed write becomes change events on the bus
        self.bus = EventBus(
            self.store, retention_s=replay_retention_s, max_events=replay_max_events
        )
        self._pubsub_enabled = pubsub
        self._pubsub_opts = {
            "keepalive_s": pubsub_keepalive_s,
            "idle_timeout_s": pubsub_idle_timeout_s,
        }
        self.pubsub: PubSubServer | None = None
        self.daily_limit = (
            faults.daily_limit if faults and faults.daily_limit is not None else daily_limit
        )
        self._used = 0
        self._usage_lock = threading.Lock()
        self._log: list[Call] = []
        self._cursors: dict[str, tuple[int, list[dict[str, Any]], str]] = {}
        # Bulk API 2.0 query jobs: id -> (info, header, rows, created monotonic)
        self._query_jobs_: dict[str, tuple[dict[str, Any], list[str], list[list[str]], float]] = {}
        self._bulk_delay = bulk_delay
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: str | None = None
        self.ca_file: str | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> SalesforceEmulator:
        handler = _make_handler(self)
        server = (
            _TlsServer((self.host, self._port), handler, self.faults)
            if self._tls
            else ThreadingHTTPServer((self.host, self._port), handler)
        )
        server.daemon_threads = True
        if isinstance(server, _TlsServer):
            self._tmp = None if self._cert_dir else tempfile.mkdtemp(prefix="sfemu-")
            hosts = (
                "localhost",
                "127.0.0.1",
                "::1",
                *([self.advertised_host] if self.advertised_host else []),
            )
            files = tls.generate(self._cert_dir or self._tmp or ".", hosts)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(files.cert_file, files.key_file)
            server.tls = ctx
            self.ca_file = files.ca_file
        if self._pubsub_enabled:
            self.pubsub = PubSubServer(
                self.bus,
                self.sessions,
                host=self.host,
                cert_file=files.cert_file if self._tls else None,
                key_file=files.key_file if self._tls else None,
                **self._pubsub_opts,  # type: ignore[arg-type]
            )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sfemu-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.pubsub is not None:
            self.pubsub.stop()
            self.pubsub = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for job in list(self.bulk.jobs.values()):
            job.abort.set()
        self.bulk.join(2)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. https://127.0.0.1:43123 (also the login and instance URL)."""
        host = self.advertised_host or ("127.0.0.1" if self.host in ("0.0.0.0", "") else self.host)
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}"

    @property
    def instance_url(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return f"{self.url}/services/oauth2/token"

    @property
    def pubsub_endpoint(self) -> str:
        """``host:port`` of the Pub/Sub API (gRPC, TLS with the same CA as the REST API)."""
        if self.pubsub is None:
            raise RuntimeError("the Pub/Sub API is off or the emulator is not running")
        host = self.advertised_host or ("127.0.0.1" if self.host in ("0.0.0.0", "") else self.host)
        return f"{host}:{self.pubsub.port}"

    # ---- change data capture: test API -------------------------------------------------

    def ui_create(self, sobject: str, values: dict[str, Any]) -> str:
        """A user creates a record in the UI: another commitUser, empty changeOrigin."""
        with self._as_ui(), self.store.tx() as tx:
            return self.store.insert(tx, self._obj(sobject), values)

    def ui_update(self, sobject: str, rid: str, values: dict[str, Any]) -> None:
        """A user edits a record in the UI (None values clear fields)."""
        with self._as_ui(), self.store.tx() as tx:
            self.store.update(tx, self._obj(sobject), rid, values)

    def ui_delete(self, sobject: str, rid: str) -> None:
        with self._as_ui(), self.store.tx() as tx:
            self.store.delete(tx, self._obj(sobject), rid)

    def undelete(self, sobject: str, rid: str) -> None:
        """A user restores a record from the recycle bin (an UNDELETE change event)."""
        with self._as_ui(), self.store.tx() as tx:
            self.store.undelete(tx, self._obj(sobject), rid)

    def ui_transaction(self) -> Any:
        """``with emu.ui_transaction() as tx:`` several UI writes in one transaction."""
        emu = self

        class _Tx:
            def __enter__(self) -> Any:
                self._ctx = emu._as_ui()
                self._ctx.__enter__()
                self._tx = emu.store.tx()
                return self._tx.__enter__()

            def __exit__(self, *exc: Any) -> None:
                try:
                    self._tx.__exit__(*exc)
                finally:
                    self._ctx.__exit__(*exc)

        return _Tx()

    def _as_ui(self) -> Any:
        import contextlib

        store = self.store

        @contextlib.contextmanager
        def ctx() -> Any:
            before = (getattr(store.context, "origin", ""), getattr(store.context, "user", ""))
            store.set_context("", UI_USER_ID)
            try:
                yield
            finally:
                store.set_context(*before)

        return ctx()

    def without_change_events(self) -> Any:
        """``with emu.without_change_events():`` writes that publish no change events (to
        build what a gap or overflow event stands for)."""
        import contextlib

        store = self.store

        @contextlib.contextmanager
        def ctx() -> Any:
            hook, store.on_commit = store.on_commit, None
            try:
                yield
            finally:
                store.on_commit = hook

        return ctx()

    def define_platform_event(self, name: str, fields: dict[str, str]) -> str:
        """Declare a platform event ``name`` (e.g. Order_Placed__e); returns its topic."""
        return self.bus.define_platform_event(name, fields)

    def publish_platform_event(self, name: str, values: dict[str, Any]) -> str:
        """Publish a platform event; returns its EventUuid."""
        return self.bus.publish_platform_event(f"/event/{name}", values)

    # ---- inspection and control (for tests) --------------------------------------------

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Live (not deleted) records of an object, as plain dicts of field -> value."""
        obj = self.store.schema(sobject)
        if obj is None:
            raise KeyError(f"unknown sObject {sobject!r}")
        return self.store.records(obj)

    def deleted_records(self, sobject: str) -> list[dict[str, Any]]:
        obj = self.store.schema(sobject)
        if obj is None:
            raise KeyError(f"unknown sObject {sobject!r}")
        with self.store.lock:
            return [dict(r) for r in self.store.deleted[obj.name].values()]

    @property
    def call_log(self) -> list[Call]:
        with self._usage_lock:
            return list(self._log)

    def calls(self, kind: str) -> int:
        """How many logged calls have this kind (e.g. "data")."""
        return sum(1 for c in self.call_log if c.kind == kind)

    @property
    def api_usage(self) -> int:
        return self._used

    def reset_counters(self) -> None:
        """Forget the call log (the daily quota is kept: see reset_quota)."""
        with self._usage_lock:
            self._log.clear()

    def reset_quota(self, daily_limit: int | None = None) -> None:
        """Simulate the daily reset of API request usage (optionally with a new size)."""
        with self._usage_lock:
            self._used = 0
            if daily_limit is not None:
                self.daily_limit = daily_limit

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault configuration (restarts its seeded RNG and call counter)."""
        self.faults.configure(faults)
        self.sessions.expire_after = faults.session_expire_after
        if faults.daily_limit is not None:
            self.daily_limit = faults.daily_limit

    def expire_sessions(self) -> None:
        """Invalidate every issued session: next data call answers 401 INVALID_SESSION_ID."""
        self.sessions.expire_all()

    def login_settings(self) -> dict[str, Any]:
        """The login keys of a Salesforce source or sink config (password flow) that log in
        to this emulator and trust its CA: ``{**emu.login_settings(), "name": ..., ...}``."""
        c = self.auth_config
        return {
            "auth": "password",
            "login_url": self.url,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "username": c.username,
            "password": c.password,
            "security_token": c.security_token,
            "ca_bundle": self.ca_file,
        }

    def session_token(self) -> str:
        """Issue a session directly (skips the auth endpoints; not logged)."""
        return self.sessions.issue(self.auth_config.username)

    # ---- request handling ---------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[_Response, dict[str, str]]:
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        kind = _kind(path, method)
        extra: dict[str, str] = {}
        # who writes: Salesforce copies Sforce-Call-Options' client into changeOrigin
        options = headers.get("Sforce-Call-Options", "") or ""
        client = next(
            (
                p.split("=", 1)[1].strip()
                for p in options.split(",")
                if p.strip().lower().startswith("client=")
            ),
            "",
        )
        api = "bulk" if kind == "bulk" else "rest"
        vm = _VERSION_RE.match(path)
        origin = f"com/salesforce/api/{api}/{vm.group(1) if vm else self.api_version}"
        self.store.set_context(origin + (f";client={client}" if client else ""), API_USER_ID)
        if self.faults.config.latency:
            time.sleep(self.faults.config.latency)
        if kind == "auth":
            resp = self._auth(method, path, headers, body)
        else:
            resp = self._api(method, path, query, headers, body, kind)
            extra["Sforce-Limit-Info"] = f"api-usage={self._used}/{self.daily_limit}"
        if resp.headers:
            extra.update(resp.headers)
        with self._usage_lock:
            self._log.append(Call(method, path, kind, resp.status))
        return resp, extra

    def _auth(self, method: str, path: str, headers: Any, body: bytes) -> _Response:
        if method != "POST":
            return _json(
                405,
                [
                    {
                        "errorCode": "METHOD_NOT_ALLOWED",
                        "message": f"HTTP Method '{method}' not allowed",
                    }
                ],
            )
        if path == "/services/oauth2/token":
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            basic = None
            auth = headers.get("Authorization", "")
            if auth.lower().startswith("basic "):
                try:
                    cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    basic = (cid, secret)
                except ValueError:
                    basic = ("", "")
            try:
                return _json(200, self.authenticator.token(form, basic, self.instance_url))
            except OAuthError as err:
                return _json(err.status, err.body())
        m = _SOAP_RE.match(path)
        if m:
            status, xml = self.authenticator.soap_login(body, self.url, m.group(1))
            return _Response(status, xml.encode(), "text/xml;charset=UTF-8")
        return _error(not_found())

    def _api(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes, kind: str
    ) -> _Response:
        if path == "/services/data":
            return _json(200, self._versions())
        m = _VERSION_RE.match(path)
        if not m:
            return _error(not_found())
        version = m.group(1)
        if not (20.0 <= float(version) <= 66.0):
            return _error(not_found())
        auth = headers.get("Authorization", "")
        token = (
            auth.split(" ", 1)[1].strip()
            if " " in auth and auth.split(" ", 1)[0].lower() in ("bearer", "oauth")
            else None
        )
        if not self.sessions.use(token):
            return _json(
                401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            )
        with self._usage_lock:
            if self._used >= self.daily_limit:
                return _json(
                    403,
                    [
                        {
                            "message": "TotalRequests Limit exceeded.",
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                        }
                    ],
                )
            self._used += 1
        fault = self.faults.on_call()
        if fault is not None:
            return _error(fault)
        parts = [unquote(p) for p in (m.group(2) or "").split("/") if p]
        try:
            return self._route(method, parts, query, headers, body, version)
        except ApiError as err:
            return _error(err)

    def _versions(self) -> list[dict[str, str]]:
        top = int(float(self.api_version))
        return [
            {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
            for v in range(31, top + 1)
        ]

    def _body(self, body: bytes) -> Any:
        if not body:
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body is empty")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {exc}"
            ) from None

    def _obj(self, name: str) -> ObjectSchema:
        obj = self.store.schema(name)
        if obj is None:
            raise not_found()
        return obj

    def _route(
        self, method: str, p: list[str], q: dict[str, str], headers: Any, body: bytes, v: str
    ) -> _Response:
        n = len(p)
        if n == 0 and method == "GET":
            base = f"/services/data/v{v}"
            return _json(
                200,
                {
                    k: f"{base}/{k}"
                    for k in ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
                },
            )
        head = p[0] if p else ""
        if head == "limits" and n == 1 and method == "GET":
            return _json(200, self._limits())
        if head == "sobjects":
            return self._sobjects(method, p[1:], q, body, v)
        if head == "composite" and n >= 2 and p[1] == "sobjects":
            return self._collections(method, p[2:], q, body, v)
        if head in ("query", "queryAll") and method == "GET":
            return self._query(p, q, headers, v, include_deleted=head == "queryAll")
        if head == "jobs" and n >= 2 and p[1] == "ingest":
            return self._jobs(method, p[2:], headers, body, v)
        if head == "jobs" and n >= 2 and p[1] == "query":
            return self._query_jobs(method, p[2:], q, body, v)
        raise not_found()

    def _limits(self) -> dict[str, Any]:
        return {
            "DailyApiRequests": {
                "Max": self.daily_limit,
                "Remaining": max(self.daily_limit - self._used, 0),
            },
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "SingleEmailMessages": {"Max": 15, "Remaining": 15},
        }

    # ---- sobjects -----------------------------------------------------------------------

    def _sobjects(
        self, method: str, p: list[str], q: dict[str, str], body: bytes, v: str
    ) -> _Response:
        n = len(p)
        if n == 0 and method == "GET":
            return _json(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": MAX_COLLECTION,
                    "sobjects": [o.basic(v) for o in self.store.objects.values()],
                },
            )
        if n == 0:
            raise not_found()
        obj = self._obj(p[0])
        if n == 1:
            if method == "GET":
                return _json(200, {"objectDescribe": obj.basic(v), "recentItems": []})
            if method == "POST":
                return self._create_one(obj, self._body(body))
            raise _method(method)
        if n == 2 and p[1] == "describe" and method == "GET":
            return _json(200, obj.describe(v))
        if n == 2:
            return self._by_id(method, obj, p[1], q, body, v)
        if n == 3:
            return self._by_external(method, obj, p[1], p[2], q, body, v)
        raise not_found()

    def _fault(self, rid: str | None) -> SfError | None:
        return self.faults.lock_row(rid)

    def _create_one(self, obj: ObjectSchema, data: Any) -> _Response:
        if not isinstance(data, dict):
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY"
            )
        try:
            with self.store.tx(self._fault) as tx:
                rid = self.store.insert(tx, obj, data)
        except SfError as err:
            raise ApiError.from_record(err) from None
        except TypeMismatch as tm:
            raise tm.json_error() from None
        return _json(201, {"id": rid, "success": True, "errors": []})

    def _locate_single(self, obj: ObjectSchema, raw: str) -> str:
        if to18(raw) is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {raw}",
            )
        try:
            return self.store.locate(obj, raw)[1]
        except SfError as err:
            if err.code == "ENTITY_IS_DELETED":
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", []) from None
            raise not_found() from None

    def _render_one(self, obj: ObjectSchema, rid: str, q: dict[str, str], v: str) -> _Response:
        fields = None
        if q.get("fields"):
            fields = []
            for name in q["fields"].split(","):
                f = obj.field(name.strip())
                if f is None:
                    raise ApiError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name.strip()}' on entity '{obj.name}'.",
                    )
                fields.append(f)
        with self.store.lock:
            rec = self.store.get(obj, rid)
            if rec is None:
                raise not_found()
            return _json(200, self.store.render(obj, rec, v, fields))

    def _by_id(
        self, method: str, obj: ObjectSchema, raw: str, q: dict[str, str], body: bytes, v: str
    ) -> _Response:
        rid = self._locate_single(obj, raw)
        if method == "GET":
            return self._render_one(obj, rid, q, v)
        try:
            if method == "PATCH":
                data = self._body(body)
                if not isinstance(data, dict):
                    raise ApiError(
                        400,
                        "JSON_PARSER_ERROR",
                        "Cannot deserialize instance of SObject from START_ARRAY",
                    )
                with self.store.tx(self._fault) as tx:
                    self.store.update(tx, obj, rid, data)
                return _Response(204, b"")
            if method == "DELETE":
                with self.store.tx(self._fault) as tx:
                    self.store.delete(tx, obj, rid)
                return _Response(204, b"")
        except SfError as err:
            raise ApiError.from_record(err) from None
        except TypeMismatch as tm:
            raise tm.json_error() from None
        raise _method(method)

    def _ext_field(self, obj: ObjectSchema, name: str) -> Any:
        f = obj.field(name)
        if f is None or not (f.external_id or f.type == "id"):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        return f

    def _multiple(self, obj: ObjectSchema, ids: list[str], v: str) -> _Response:
        return _json(300, [f"/services/data/v{v}/sobjects/{obj.name}/{i}" for i in ids])

    def _by_external(
        self,
        method: str,
        obj: ObjectSchema,
        fname: str,
        value: str,
        q: dict[str, str],
        body: bytes,
        v: str,
    ) -> _Response:
        f = self._ext_field(obj, fname)
        if method in ("GET", "DELETE"):
            try:
                matches = self.store.find(obj, f, value if f.type == "id" else _convert(f, value))
            except TypeMismatch:
                raise not_found() from None
            if len(matches) > 1:
                return self._multiple(obj, matches, v)
            if not matches:
                raise not_found()
            if method == "GET":
                return self._render_one(obj, matches[0], q, v)
            try:
                with self.store.tx(self._fault) as tx:
                    self.store.delete(tx, obj, matches[0])
            except SfError as err:
                raise ApiError.from_record(err) from None
            return _Response(204, b"")
        if method not in ("PATCH", "POST"):
            raise _method(method)
        data = self._body(body)
        if not isinstance(data, dict):
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY"
            )
        for key, val in data.items():
            if key.lower() == f.name.lower() and val is not None and str(val) != value:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"The value of {f.name} in the request body ({val}) doesn't match the value in the URL ({value})",
                    [f.name],
                )
        try:
            with self.store.tx(self._fault) as tx:
                rid, created = self.store.upsert(tx, obj, f, value, data)
        except SfError as err:
            if (
                err.code in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID")
                and f.type == "id"
                and not err.fields
            ):
                raise not_found() from None
            raise ApiError.from_record(err) from None
        except TypeMismatch as tm:
            raise tm.json_error() from None
        except MultipleMatches as mm:
            return self._multiple(obj, mm.ids, v)
        result = {"id": rid, "success": True, "errors": [], "created": created}
        if created:
            return _json(201, result)
        if float(v) >= 46.0:
            return _json(200, result)
        return _Response(204, b"")

    # ---- sObject Collections ------------------------------------------------------------

    def _collections(
        self, method: str, p: list[str], q: dict[str, str], body: bytes, v: str
    ) -> _Response:
        if method == "DELETE" and not p:
            ids = [i for i in q.get("ids", "").split(",") if i]
            if not ids:
                raise ApiError(400, "MISSING_ARGUMENT", "ids parameter is required")
            all_or_none = q.get("allOrNone", "false").lower() == "true"
            return self._batch(ids, all_or_none, "delete", None)
        if method == "GET" and len(p) == 1:
            return self._retrieve(self._obj(p[0]), q, v)
        data = self._body(body)
        if method == "POST" and len(p) == 1 and isinstance(data, dict) and "ids" in data:
            # retrieve by POST (up to 2,000 ids): {"ids": [...], "fields": [...]}
            ids = data.get("ids") or []
            if len(ids) > 2000:
                raise ApiError(
                    400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot retrieve more than 2000"
                )
            return self._retrieve(
                self._obj(p[0]),
                {"ids": ",".join(ids), "fields": ",".join(data.get("fields", []))},
                v,
            )
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected an object with a 'records' array")
        records = data["records"]
        all_or_none = bool(data.get("allOrNone", False))
        if method == "POST" and not p:
            return self._batch(records, all_or_none, "create", None)
        if method == "PATCH" and not p:
            return self._batch(records, all_or_none, "update", None)
        if method == "PATCH" and len(p) == 2:
            obj = self._obj(p[0])
            return self._batch(records, all_or_none, "upsert", (obj, self._ext_field(obj, p[1])))
        if method == "POST" and len(p) == 1:
            return self._retrieve(
                self._obj(p[0]),
                {"ids": ",".join(data.get("ids", [])), "fields": ",".join(data.get("fields", []))},
                v,
            )
        raise _method(method)

    def _retrieve(self, obj: ObjectSchema, q: dict[str, str], v: str) -> _Response:
        ids = [i for i in q.get("ids", "").split(",") if i]
        names = [f for f in q.get("fields", "").split(",") if f]
        if not ids or not names:
            raise ApiError(400, "MISSING_ARGUMENT", "ids and fields are required")
        fields = []
        for name in names:
            f = obj.field(name)
            if f is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'."
                )
            fields.append(f)
        out: list[Any] = []
        with self.store.lock:
            for raw in ids:
                rid = to18(raw)
                rec = self.store.get(obj, rid) if rid else None
                out.append(self.store.render(obj, rec, v, fields) if rec else None)
        return _json(200, out)

    def _batch(self, records: list[Any], all_or_none: bool, op: str, target: Any) -> _Response:
        if len(records) > MAX_COLLECTION:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call",
            )
        dup_ext: set[Any] = set()
        if op == "upsert":
            _obj, f = target
            seen: dict[Any, int] = {}
            for rec in records:
                if isinstance(rec, dict):
                    val = next((x for k, x in rec.items() if k.lower() == f.name.lower()), None)
                    if val is not None:
                        key = str(val).lower()
                        seen[key] = seen.get(key, 0) + 1
            dup_ext = {k for k, c in seen.items() if c > 1}
        results: list[dict[str, Any]] = []
        failed = False
        try:
            with self.store.tx(self._fault) as tx:
                for rec in records:
                    res = self._one(tx, op, rec, target, dup_ext)
                    failed = failed or not res["success"]
                    results.append(res)
                # with allOrNone every record is still validated, so each bad one reports its
                # own error; then everything is rolled back
                if failed and all_or_none:
                    tx.rollback()
        except TypeMismatch as tm:
            raise tm.json_error() from None
        if failed and all_or_none:
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": [],
            }
            out = []
            for i in range(len(records)):
                if i < len(results) and not results[i]["success"]:
                    out.append(results[i])
                else:
                    item: dict[str, Any] = {"success": False, "errors": [rolled]}
                    if op in ("update", "delete") and i < len(results) and results[i].get("id"):
                        item = {"id": results[i]["id"], **item}
                    if op == "upsert":
                        item["created"] = False
                    out.append(item)
            results = out
        return _json(200, results)

    def _one(self, tx: Any, op: str, rec: Any, target: Any, dup_ext: set[Any]) -> dict[str, Any]:
        store = self.store
        rid: str | None = None
        try:
            if op == "delete":
                rid = to18(rec) if isinstance(rec, str) else None
                rid = store.delete(tx, None, rec)
                return {"id": rid, "success": True, "errors": []}
            if not isinstance(rec, dict):
                raise SfError("INVALID_TYPE", "Each record must be a JSON object", [])
            attrs = rec.get("attributes") if isinstance(rec.get("attributes"), dict) else {}
            tname = attrs.get("type") if attrs else None
            if op == "upsert":
                obj, f = target
                if tname and tname.lower() != obj.name.lower():
                    raise SfError(
                        "INVALID_TYPE", f"Record type {tname} does not match {obj.name}", []
                    )
                val = next((x for k, x in rec.items() if k.lower() == f.name.lower()), None)
                if val is not None and str(val).lower() in dup_ext:
                    raise SfError(
                        "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {val}", [f.name]
                    )
                if f.type == "id":
                    rid = val if isinstance(val, str) else None
                rid, created = store.upsert(tx, obj, f, val, rec)
                return {"id": rid, "success": True, "errors": [], "created": created}
            if not tname:
                raise SfError(
                    "INVALID_TYPE",
                    "sObject type not specified: set attributes.type on every record",
                    [],
                )
            obj = store.schema(tname)
            if obj is None:
                raise SfError("INVALID_TYPE", f"sObject type '{tname}' is not supported.", [])
            if op == "create":
                rid = store.insert(tx, obj, rec)
                return {"id": rid, "success": True, "errors": []}
            raw_id = next((x for k, x in rec.items() if k.lower() == "id"), None)
            if raw_id in (None, ""):
                raise SfError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            rid = to18(raw_id) if isinstance(raw_id, str) else None
            rid = store.update(tx, obj, raw_id, {k: x for k, x in rec.items() if k.lower() != "id"})
            return {"id": rid, "success": True, "errors": []}
        except SfError as err:
            out: dict[str, Any] = {"success": False, "errors": [err.result()]}
            if rid:
                out = {"id": rid, **out}
            if op == "upsert":
                out["created"] = False
            return out
        except MultipleMatches as mm:
            return {"success": False, "errors": [mm.record_error().result()], "created": False}

    # ---- query --------------------------------------------------------------------------

    def _query(
        self, p: list[str], q: dict[str, str], headers: Any, v: str, include_deleted: bool
    ) -> _Response:
        if len(p) == 2:
            locator, _, offset = p[1].rpartition("-")
            cursor = self._cursors.get(locator)
            if cursor is None or not offset.isdigit():
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            total, rows, _ = cursor
            return _json(200, self._page(locator, total, rows, int(offset), v, headers))
        if len(p) != 1:
            raise not_found()
        if "q" not in q:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        parsed = soql.parse(self.store, q["q"])
        total, rows = soql.execute(self.store, parsed, v, include_deleted)
        return _json(200, self._page(None, total, rows, 0, v, headers))

    def _page(
        self,
        locator: str | None,
        total: int,
        rows: list[dict[str, Any]],
        start: int,
        v: str,
        headers: Any,
    ) -> dict[str, Any]:
        size = QUERY_BATCH
        opts = headers.get("Sforce-Query-Options", "")
        m = re.search(r"batchSize=(\d+)", opts)
        if m:
            size = min(max(int(m.group(1)), 200), QUERY_BATCH)
        chunk = rows[start : start + size]
        out: dict[str, Any] = {
            "totalSize": total,
            "done": start + size >= len(rows),
            "records": chunk,
        }
        if not out["done"]:
            if locator is None:
                locator = self.ids.new("01g")
                self._cursors[locator] = (total, rows, v)
                while len(self._cursors) > MAX_CURSORS:  # Salesforce also expires old cursors
                    self._cursors.pop(next(iter(self._cursors)))
            out["nextRecordsUrl"] = f"/services/data/v{v}/query/{locator}-{start + size}"
        return out

    # ---- Bulk API 2.0 query jobs -------------------------------------------------------

    def _query_jobs(
        self, method: str, p: list[str], q: dict[str, str], body: bytes, v: str
    ) -> _Response:
        """Create a query job (the result is computed at creation), poll it, page its CSV."""
        import csv
        import io

        if not p and method == "POST":
            data = self._body(body)
            op = data.get("operation", "query") if isinstance(data, dict) else None
            if op not in ("query", "queryAll") or not isinstance(data.get("query"), str):
                raise ApiError(
                    400, "INVALIDJOB", "InvalidJob : operation must be query or queryAll"
                )
            parsed = soql.parse(self.store, data["query"])
            if any(len(path) > 1 for path in parsed.select):
                raise ApiError(
                    400, "INVALIDJOB", "relationship fields are not emulated in query jobs"
                )
            _, rows = soql.execute(self.store, parsed, v, include_deleted=op == "queryAll")
            header = [path[0].name for path in parsed.select]
            job_id = self.ids.new("750")
            info = {
                "id": job_id,
                "operation": op,
                "object": parsed.obj.name,
                "createdById": API_USER_ID,
                "state": "UploadComplete",
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(v),
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
            }
            table = [[_csv_value(r.get(h)) for h in header] for r in rows]
            self._query_jobs_[job_id] = (info, header, table, time.monotonic())
            return _json(200, info)
        if not p:
            raise _method(method)
        job = self._query_jobs_.get(p[0])
        if job is None:
            raise ApiError(404, "NOT_FOUND", "Could not find the job")
        info, header, table, created = job
        done = time.monotonic() - created >= self._bulk_delay
        if len(p) == 1 and method == "GET":
            state = "JobComplete" if done else "InProgress"
            return _json(
                200,
                {**info, "state": state, "numberRecordsProcessed": len(table) if done else 0},
            )
        if len(p) == 1 and method == "DELETE":
            self._query_jobs_.pop(p[0], None)
            return _Response(204, b"")
        if len(p) == 2 and p[1] == "results" and method == "GET":
            if not done:
                raise ApiError(400, "INVALIDJOBSTATE", "job not complete")
            start = int(q.get("locator") or 0)
            size = int(q.get("maxRecords") or 50000)
            page = table[start : start + size]
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerow(header)
            w.writerows(page)
            nxt = start + size
            return _Response(
                200,
                out.getvalue().encode(),
                "text/csv",
                {
                    "Sforce-Locator": str(nxt) if nxt < len(table) else "null",
                    "Sforce-NumberOfRecords": str(len(page)),
                },
            )
        raise not_found()

    # ---- Bulk API 2.0 -------------------------------------------------------------------

    def _jobs(self, method: str, p: list[str], headers: Any, body: bytes, v: str) -> _Response:
        bulk = self.bulk
        if not p:
            if method == "POST":
                return _json(200, bulk.create(self._body(body), v).info(full=False))
            if method == "GET":
                return _json(
                    200,
                    {
                        "done": True,
                        "records": [j.info(full=False) for j in bulk.jobs.values()],
                        "nextRecordsUrl": None,
                    },
                )
            raise _method(method)
        job_id = p[0]
        if len(p) == 1:
            if method == "GET":
                return _json(200, bulk.get(job_id).info(full=True))
            if method == "PATCH":
                return _json(200, bulk.set_state(job_id, self._body(body)).info(full=False))
            if method == "DELETE":
                bulk.delete(job_id)
                return _Response(204, b"")
            raise _method(method)
        if len(p) == 2 and p[1] == "batches" and method == "PUT":
            bulk.upload(job_id, body, headers.get("Content-Type", ""))
            return _Response(201, b"")
        if len(p) == 2 and method == "GET":
            kinds = {
                "successfulresults": "successfulResults",
                "failedresults": "failedResults",
                "unprocessedrecords": "unprocessedrecords",
            }
            kind = kinds.get(p[1].lower())
            if kind is None:
                raise not_found()
            return _Response(200, bulk.results(job_id, kind).encode(), "text/csv")
        raise not_found()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _convert(f: Any, value: str) -> Any:
    from .coerce import from_json

    return from_json(f, value)


def _method(method: str) -> ApiError:
    return ApiError(
        405,
        "METHOD_NOT_ALLOWED",
        f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE,POST",
    )


def _make_handler(emu: SalesforceEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = (
            True  # header and body are two writes: avoid 40 ms delayed-ACK stalls
        )
        server_version = "SalesforceEmulator/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _do(self) -> None:
            body = self._read_body()
            try:
                resp, extra = emu.handle(self.command, self.path, self.headers, body)
            except Exception as exc:  # an emulator bug: answer like Salesforce's UNKNOWN_EXCEPTION
                resp = _json(
                    500, [{"message": f"emulator error: {exc!r}", "errorCode": "UNKNOWN_EXCEPTION"}]
                )
                extra = {}
            self.send_response(resp.status)
            for k, val in extra.items():
                self.send_header(k, val)
            if resp.status != 204:
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if resp.status != 204 and resp.body:
                self.wfile.write(resp.body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _do

    return Handler


__all__ = ["Call", "FaultConfig", "SalesforceEmulator"]
