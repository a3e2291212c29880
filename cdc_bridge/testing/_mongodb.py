"""MongoDB for tests: an external replica set or a testcontainers one (no private mode)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cdc_bridge.testing._common import (
    ENV_MONGODB,
    ENV_TESTCONTAINERS,
    Handle,
    ServiceUnavailable,
    redact,
    track,
    use_testcontainers,
)
from cdc_bridge.testing._process import ServiceError


def mongodb_uri_from_env() -> str | None:
    """$CDC_TEST_MONGODB_URI (a replica set: change streams need one), or None."""
    return os.environ.get(ENV_MONGODB, "").strip() or None


@dataclass(eq=False)
class MongoDBService(Handle):
    """A MongoDB replica set; `uri` is a connection string usable with pymongo."""

    uri: str
    external: bool = False
    _container: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _shutdown(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()


def _mongo_ping(uri: str, timeout_ms: int = 2000) -> dict[str, Any] | None:
    """The server's `hello` reply, or None when it does not answer."""
    import pymongo
    import pymongo.errors

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        return dict(client.admin.command("hello"))
    except pymongo.errors.PyMongoError:
        return None
    finally:
        client.close()


def start_mongodb(timeout: float = 90) -> MongoDBService:
    """A MongoDB replica set: $CDC_TEST_MONGODB_URI or a testcontainers one.

    Raises ServiceUnavailable when neither can be had (there is no private mongod mode).
    """
    uri = mongodb_uri_from_env()
    if uri:
        hello = _mongo_ping(uri, timeout_ms=10000)
        if hello is None:
            raise ServiceError(f"{ENV_MONGODB}: cannot reach {redact(uri)}")
        if not hello.get("setName"):
            raise ServiceError(
                f"{ENV_MONGODB} points at a standalone server; change streams need a replica "
                "set (start mongod with --replSet rs0 and run rs.initiate())"
            )
        return MongoDBService(uri=uri, external=True)
    if use_testcontainers():
        return _mongodb_container(timeout)
    raise ServiceUnavailable(
        f"no MongoDB replica set: set {ENV_MONGODB} or {ENV_TESTCONTAINERS}=1 with a Docker engine"
    )


def _mongodb_container(timeout: float) -> MongoDBService:
    import pymongo
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer("mongo:7")
        .with_exposed_ports(27017)
        .with_command("--replSet rs0 --bind_ip_all")
    )
    container.start()
    host = container.get_container_host_ip()
    port = int(container.get_exposed_port(27017))
    uri = f"mongodb://{host}:{port}/?directConnection=true"
    deadline = time.monotonic() + timeout
    try:
        while _mongo_ping(uri) is None:
            if time.monotonic() > deadline:
                raise ServiceError("mongodb container did not answer")
            time.sleep(0.5)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
        try:
            # The member's address is the container's own view; clients use directConnection.
            client.admin.command(
                "replSetInitiate",
                {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]},
            )
            while not (_mongo_ping(uri) or {}).get("isWritablePrimary"):
                if time.monotonic() > deadline:
                    raise ServiceError("mongodb container never became replica-set primary")
                time.sleep(0.3)
        finally:
            client.close()
    except BaseException as exc:
        logs = b"".join(container.get_logs()).decode(errors="replace")[-3000:]
        container.stop()
        if isinstance(exc, ServiceError):
            raise ServiceError(f"{exc}; logs:\n{logs}") from exc
        raise
    service = MongoDBService(uri=uri, _container=container)
    track(service)
    return service
