"""Setup checks for a MongoDB source: topology, privileges, captured collections, pre-images.

Each problem becomes a ``ConfigError`` whose message says what is wrong and how to fix it.
The pure helpers (``topology_problem``, ``missing_privileges``) take server replies, so they
are tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from cdc_bridge.errors import ConfigError, ConfigProblem, RetriableError
from cdc_bridge.sources.mongodb.config import SYSTEM_DATABASES, MongoSourceConfig
from cdc_bridge.sources.mongodb.stream import watch_database

__all__ = ["captured_collections", "missing_privileges", "run_checks", "topology_problem"]

REQUIRED_ACTIONS = ("find", "changeStream")


def topology_problem(hello: Mapping[str, Any]) -> str | None:
    """Why this server cannot serve change streams (None when it can)."""
    if hello.get("msg") == "isdbgrid" or hello.get("setName"):
        return None
    return (
        "the server is a standalone mongod; change streams need a replica set or a sharded "
        "cluster. Convert it to a one-member replica set: restart mongod with "
        "`--replSet rs0` and run `rs.initiate()` once, then add `?replicaSet=rs0` to the dsn"
    )


def _grants(privileges: Iterable[Mapping[str, Any]], db: str, action: str) -> bool:
    for p in privileges:
        if action not in p.get("actions", ()):
            continue
        res = p.get("resource", {})
        if res.get("anyResource"):
            return True
        if res.get("db") in ("", db) and "collection" in res:
            return True
    return False


def missing_privileges(status: Mapping[str, Any], databases: Iterable[str]) -> list[str]:
    """``"<action> on <db>"`` for each privilege the authenticated user lacks.

    ``""`` in ``databases`` stands for a deployment-wide stream (every database). ``status`` is the reply of ``connectionStatus`` with ``showPrivileges``. Without
    authentication (no authenticated users) everything is allowed.
    """
    auth = status.get("authInfo", {})
    if not auth.get("authenticatedUsers"):
        return []
    privileges = auth.get("authenticatedUserPrivileges", [])
    return [
        f"{action} on {db or 'all databases'}"
        for db in databases
        for action in REQUIRED_ACTIONS
        if not _grants(privileges, db, action)
    ]


def captured_collections(
    client: MongoClient[dict[str, Any]], config: MongoSourceConfig
) -> list[tuple[str, str]]:
    """The existing collections this source captures, sorted (views and system ones excluded)."""
    if config.databases is None and config.collections is None:
        dbs = [d for d in client.list_database_names() if d not in SYSTEM_DATABASES]
    else:
        dbs = sorted(
            {*(config.databases or ()), *(c.split(".", 1)[0] for c in config.collections or ())}
        )
    out = []
    for db in dbs:
        for coll in client[db].list_collection_names(filter={"type": "collection"}):
            if config.includes(db, coll):
                out.append((db, coll))
    return sorted(out)


def run_checks(client: MongoClient[dict[str, Any]], config: MongoSourceConfig) -> dict[str, Any]:
    """Verify the source can run; returns the server's ``hello`` reply. Raises ConfigError."""
    where = f"sources.{config.name}"
    try:
        hello = client.admin.command("hello")
    except OperationFailure as exc:
        raise ConfigError(f"{where}.dsn: MongoDB refused `hello`: {exc.details or exc}") from exc
    except PyMongoError as exc:
        raise RetriableError(
            f"{where}.dsn: cannot reach MongoDB ({exc}); check the host, port, replicaSet and TLS options"
        ) from exc
    problems: list[ConfigProblem] = []
    topo = topology_problem(hello)
    if topo:
        raise ConfigError(f"{where}.dsn: {topo}")

    try:
        existing_dbs = set(client.list_database_names())
    except OperationFailure as exc:
        raise ConfigError(
            f"{where}.dsn: the user may not list databases ({(exc.details and exc.details.get('errmsg')) or exc}); "
            "grant it the `read` role on the captured databases (or `readAnyDatabase`)"
        ) from exc
    for db in config.databases or ():
        if db not in existing_dbs:
            problems.append(ConfigProblem(f"{where}.databases", f"database {db!r} does not exist"))
    for ns in config.collections or ():
        db, coll = ns.split(".", 1)
        if db not in existing_dbs or coll not in client[db].list_collection_names(
            filter={"name": coll}
        ):
            problems.append(
                ConfigProblem(
                    f"{where}.collections",
                    f"collection {ns!r} does not exist (create it, or fix the name)",
                )
            )

    single = watch_database(config)
    dbs = [single] if single is not None else [""]  # "" = a deployment-wide change stream
    status = client.admin.command("connectionStatus", showPrivileges=True)
    missing = missing_privileges(status, dbs)
    if missing:
        fix = (
            f"grant the `read` role on {single!r} (it includes find and changeStream): "
            f"db.grantRolesToUser('<user>', [{{role: 'read', db: '{single}'}}])"
            if single is not None
            else "this source watches the whole deployment (its collections span several "
            "databases, or none is named), which needs `readAnyDatabase`: "
            "db.grantRolesToUser('<user>', [{role: 'readAnyDatabase', db: 'admin'}])"
        )
        problems.append(
            ConfigProblem(f"{where}.dsn", f"the user lacks {', '.join(missing)}; {fix}")
        )

    if config.pre_image_mode != "off" or config.full_document_mode in ("whenAvailable", "required"):
        version = client.admin.command("buildInfo").get("versionArray", [0])
        if list(version[:2]) < [6, 0]:
            problems.append(
                ConfigProblem(
                    f"{where}.capture_mode",
                    f"pre- and post-images need MongoDB 6.0 or newer (the server runs "
                    f"{'.'.join(map(str, version[:3]))}); use capture_mode = "
                    '"change_streams_update_full" (full_document = "updateLookup")',
                )
            )
    if config.pre_image_mode == "required":
        for db, coll in captured_collections(client, config):
            info = next(iter(client[db].list_collections(filter={"name": coll})), {})
            enabled = info.get("options", {}).get("changeStreamPreAndPostImages", {}).get("enabled")
            if not enabled:
                problems.append(
                    ConfigProblem(
                        f"{where}.full_document_before_change",
                        f"pre-images are required but not enabled on {db}.{coll}: run "
                        f"db.getSiblingDB('{db}').runCommand({{collMod: '{coll}', "
                        "changeStreamPreAndPostImages: {enabled: true}}) (MongoDB 6.0+)",
                    )
                )
    if problems:
        raise ConfigError(f"MongoDB source {config.name!r} is not ready", problems)
    return hello
