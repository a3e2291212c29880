"""What every test service shares: env variable names, the handle base class, Docker probe."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from cdc_bridge.testing._process import ServiceError

ENV_KAFKA = "CDC_TEST_KAFKA_BOOTSTRAP"
ENV_POSTGRES = "CDC_TEST_POSTGRES_DSN"
ENV_MYSQL = "CDC_TEST_MYSQL_DSN"
ENV_MONGODB = "CDC_TEST_MONGODB_URI"
ENV_TESTCONTAINERS = "CDC_TEST_USE_TESTCONTAINERS"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ServiceUnavailable(ServiceError):
    """No such service can be had here (e.g. MongoDB without a URI or Docker engine)."""


def check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"database name {name!r} must match {_IDENT.pattern}")
    return name


# --------------------------------------------------------------------------- lifecycle


class Handle:
    """Shared stop/context-manager behaviour; subclasses implement `_shutdown`."""

    _stopped: bool = False
    _lock: threading.Lock

    def _shutdown(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service and remove its files; safe to call twice. No-op for external ones."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        _live.discard(self)
        self._shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_live: set[Handle] = set()


@atexit.register
def _stop_all() -> None:
    """Never leave servers behind when the interpreter exits normally."""
    for handle in list(_live):
        with contextlib.suppress(Exception):
            handle.stop()


def track(handle: Handle) -> None:
    _live.add(handle)


# --------------------------------------------------------------------------- testcontainers


def use_testcontainers() -> bool:
    """True when CDC_TEST_USE_TESTCONTAINERS=1 and a Docker engine answers."""
    if os.environ.get(ENV_TESTCONTAINERS, "").strip().lower() not in {"1", "true", "yes"}:
        return False
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


def redact(url: str) -> str:
    """A URL without its password, for messages."""
    if "://" not in url:
        return re.sub(r"password=\S+", "password=***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
