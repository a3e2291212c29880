"""Opening the change stream: watch target, include/exclude pipeline, start position, errors."""

from __future__ import annotations

from typing import Any

from bson import Timestamp
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.errors import OperationFailure

from cdc_bridge.sources.mongodb.config import SYSTEM_DATABASES, MongoSourceConfig
from cdc_bridge.sources.mongodb.offset import MongoOffset

__all__ = [
    "HISTORY_LOST_CODES",
    "build_pipeline",
    "is_history_lost",
    "open_change_stream",
    "watch_database",
]

# ChangeStreamHistoryLost (286), InvalidResumeToken (260), CappedPositionLost (136), and the
# ChangeStreamFatalError (280) older servers raise when the resume point left the oplog.
HISTORY_LOST_CODES = frozenset({286, 260, 136})


def is_history_lost(exc: BaseException) -> bool:
    """Does this error mean the stored resume point is no longer in the oplog?"""
    if not isinstance(exc, OperationFailure):
        return False
    if exc.code in HISTORY_LOST_CODES:
        return True
    text = str(exc).lower()
    return exc.code == 280 and ("resume" in text or "oplog" in text)


def watch_database(config: MongoSourceConfig) -> str | None:
    """The one database to watch when every captured collection lives in it, else None."""
    dbs = set(config.databases or ())
    dbs.update(c.split(".", 1)[0] for c in config.collections or ())
    if config.signal_table:
        dbs.add(config.signal_table.split(".", 1)[0])
    if len(dbs) == 1 and (config.databases is not None or config.collections is not None):
        return dbs.pop()
    return None


def build_pipeline(config: MongoSourceConfig) -> list[dict[str, Any]]:
    """A ``$match`` stage keeping the configured namespaces (and invalidate events).

    Exact names only; drop/rename/dropDatabase events of captured namespaces pass too, so the
    stream loop can report them. Inserts into the signal collection (incremental snapshots'
    signals and watermarks) pass whatever the filters say.
    """
    include: list[dict[str, Any]] = []
    if config.databases is None and config.collections is None:
        include.append({"ns.db": {"$nin": sorted(SYSTEM_DATABASES)}})
    else:
        if config.databases:
            include.append({"ns.db": {"$in": list(config.databases)}})
        for ns in config.collections or ():
            db, coll = ns.split(".", 1)
            include.append({"ns.db": db, "ns.coll": coll})
            include.append({"ns.db": db, "operationType": "dropDatabase"})
    exclude: list[dict[str, Any]] = [{"ns.coll": {"$regex": r"^system\."}}]
    if config.exclude_databases:
        exclude.append({"ns.db": {"$in": list(config.exclude_databases)}})
    for ns in config.exclude_collections:
        db, coll = ns.split(".", 1)
        exclude.append({"ns.db": db, "ns.coll": coll})
    match: dict[str, Any] = {
        "$or": [{"operationType": "invalidate"}, {"$and": [{"$or": include}, {"$nor": exclude}]}]
    }
    if config.signal_table:
        db, coll = config.signal_table.split(".", 1)
        match["$or"].append({"ns.db": db, "ns.coll": coll, "operationType": "insert"})
    return [{"$match": match}]


def open_change_stream(
    client: MongoClient[dict[str, Any]],
    config: MongoSourceConfig,
    offset: MongoOffset | None,
    *,
    batch_size: int | None = None,
) -> ChangeStream[dict[str, Any]]:
    """Open the stream after ``offset`` (``resume_after``; ``start_after`` past an invalidate;
    ``start_at_operation_time`` for an offset that has only a cluster time).

    Without an offset the stream starts now; its ``resume_token`` (the post-batch resume
    token) is then already the position to note before a snapshot.
    """
    kwargs: dict[str, Any] = {
        "full_document": config.full_document_mode
        if config.full_document_mode != "default"
        else None,
        "max_await_time_ms": config.heartbeat_interval_ms,
        "batch_size": batch_size or config.stream_batch_size,
    }
    pre = config.pre_image_mode
    if pre != "off":
        kwargs["full_document_before_change"] = pre
    if offset is not None and offset.resume_token is not None:
        if offset.start_after:
            kwargs["start_after"] = offset.resume_token
        else:
            kwargs["resume_after"] = offset.resume_token
    elif offset is not None and offset.cluster_time is not None:
        # A position known only by its cluster time (e.g. set by hand): start there, inclusive.
        kwargs["start_at_operation_time"] = Timestamp(*offset.cluster_time)
    pipeline = build_pipeline(config)
    db = watch_database(config)
    if db is not None:
        return client[db].watch(pipeline, **kwargs)
    return client.watch(pipeline, **kwargs)
