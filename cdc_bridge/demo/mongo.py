"""The demo's MongoDB variant of the `activity` source: config, seed, traffic plan, verification.

Used when a MongoDB replica set is reachable (``$CDC_TEST_MONGODB_URI`` or testcontainers).
Documents hold scalar fields only (timestamps as ISO strings) so the SQL data mart can take
them as rows; the routes rename ``_id`` to ``id`` and select a fixed column set, so fields the
traffic adds and removes with ``$set``/``$unset`` (``campaign``) never reach the mart. The
parts that need no server (config text, traffic plan, document comparison) are pure functions.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc_bridge.demo.schema import ACTIVITY_DB, PAGES

__all__ = [
    "COLLECTIONS",
    "PAGE_VIEW_FIELDS",
    "SESSION_FIELDS",
    "ActivityState",
    "MongoActivity",
    "MongoOp",
    "create_activity",
    "create_mart_tables",
    "mongo_config_text",
    "page_view_doc",
    "plan_op",
    "seed_documents",
    "session_doc",
    "state_from_documents",
]

COLLECTIONS = ("sessions", "page_views")
#: Fields the mart receives (source names; ``_id`` becomes ``id``).
SESSION_FIELDS = ("_id", "customer_id", "device", "page_views", "started_at")
PAGE_VIEW_FIELDS = ("_id", "session_id", "path", "duration_ms", "viewed_at")
FIELDS = {"sessions": SESSION_FIELDS, "page_views": PAGE_VIEW_FIELDS}
CAMPAIGNS = ("spring", "newsletter", "retargeting")
#: A session is deleted only when no update touched it for this many steps (~10 s at the
#: default rate): an update's full document is looked up when the change stream is read
#: (updateLookup), and a document deleted by then comes back as null, which no SQL target
#: can apply. Real workloads rarely update and delete one document within seconds.
DELETE_COOLDOWN = 40

# -- routes.toml ----------------------------------------------------------------------------

_MARIADB_SOURCE = """[[sources]]
name = "activity"                               # customer activity (MongoDB in production)
kind = "mysql"
dsn = "mysql://root@${DEMO_MARIADB_HOST:-127.0.0.1}:${DEMO_MARIADB_PORT:-3306}/"
server_id = 5402
tables = ["activity.sessions", "activity.page_views"]
skip_ops = ["t"]                                # never publish TRUNCATEs of activity data
"""

_MONGO_SOURCE = """[[sources]]
name = "activity"                               # customer activity on MongoDB (change streams)
kind = "mongodb"
dsn = "${DEMO_MONGODB_URI:-mongodb://127.0.0.1:27017/?replicaSet=rs0}"
collections = ["activity.sessions", "activity.page_views"]
json_output = "relaxed"                         # plain numbers in before/after, not $numberLong
"""

_MARIADB_ROUTES = {
    "sessions": 'table = "sessions"\n',
    "page_views": "filter = 'op == \"d\" or after.duration_ms >= 1000'\n",
}


def _mapping(collection: str) -> str:
    include = ", ".join(f'"{f}"' for f in FIELDS[collection])
    return (
        "[routes.mapping]                                # scalar fields -> the mart's columns\n"
        "# (documents carry no column types: the demo creates the mart's activity tables)\n"
        f"include = [{include}]\n"
        'rename = { _id = "id" }\n'
    )


def mongo_config_text(mariadb_text: str) -> str:
    """The demo's routes.toml with the `activity` source on MongoDB instead of MariaDB.

    ``mariadb_text`` is the shipped file; its activity source block is swapped and the two
    activity routes get a mapping that selects the documents' scalar fields.
    """
    text = mariadb_text
    if _MARIADB_SOURCE not in text:
        raise ValueError("the demo's routes.toml has no MariaDB activity source block to replace")
    text = text.replace(_MARIADB_SOURCE, _MONGO_SOURCE)
    for collection, anchor in _MARIADB_ROUTES.items():
        marker = f'from = "activity.activity.{collection}"\n'
        start = text.find(marker)
        end = text.find(anchor, start)
        if start < 0 or end < 0:
            raise ValueError(f"the demo's routes.toml has no route for activity.{collection}")
        end += len(anchor)
        text = text[:end] + _mapping(collection) + text[end:]
    text = text.replace(
        "#   activity  (MariaDB)   ─┘", "#   activity  (MongoDB)   ─┘"
    )  # the diagram at the top
    return text


# -- the mart's tables ---------------------------------------------------------------------

#: Documents carry no column types (``before``/``after`` are JSON strings), so the database
#: sink cannot create these tables from the topic: the demo creates them in the mart first.
MART_DDL = {
    "sessions": """CREATE TABLE IF NOT EXISTS sessions (
        id INTEGER NOT NULL PRIMARY KEY,
        customer_id INTEGER,
        device TEXT,
        page_views INTEGER,
        started_at TEXT
    )""",
    "page_views": """CREATE TABLE IF NOT EXISTS page_views (
        id INTEGER NOT NULL PRIMARY KEY,
        session_id INTEGER,
        path TEXT,
        duration_ms INTEGER,
        viewed_at TEXT
    )""",
}


def create_mart_tables(path: str) -> None:
    """Create the activity tables of the SQLite data mart (see :data:`MART_DDL`)."""
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for ddl in MART_DDL.values():
            conn.execute(ddl)


# -- documents ------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def session_doc(rng: random.Random, sid: int) -> dict[str, Any]:
    return {
        "_id": sid,
        "customer_id": rng.randint(1, 40),
        "device": rng.choice(("desktop", "mobile", "tablet")),
        "page_views": 0,
        "started_at": _now(),
    }


def page_view_doc(rng: random.Random, pid: int, sid: int) -> dict[str, Any]:
    return {
        "_id": pid,
        "session_id": sid,
        "path": rng.choice(PAGES),
        "duration_ms": rng.randint(200, 60000),
        "viewed_at": _now(),
    }


def seed_documents(
    rng: random.Random, scale: int = 5
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seed sessions and page views (same sizes as the MariaDB seed), view counts consistent."""
    sessions = [session_doc(rng, i) for i in range(1, 3 * scale + 1)]
    views = [page_view_doc(rng, i, rng.randint(1, len(sessions))) for i in range(1, 8 * scale + 1)]
    for s in sessions:
        s["page_views"] = sum(1 for v in views if v["session_id"] == s["_id"])
    return sessions, views


# -- traffic plan ---------------------------------------------------------------------------


@dataclass
class ActivityState:
    """What the traffic generator knows of the collections (ids in insertion order)."""

    sessions: list[int] = field(default_factory=list)
    views: dict[int, int] = field(default_factory=dict)  # page view id -> session id
    tagged: set[int] = field(default_factory=set)  # sessions with a `campaign` field
    next_session: int = 0
    next_view: int = 0
    step: int = 0
    touched: dict[int, int] = field(default_factory=dict)  # session id -> step of last update


@dataclass(frozen=True)
class MongoOp:
    """One write: ``kind`` is the op the bridge will publish (c/u/d)."""

    kind: str
    action: str  # insert_one / update_one / delete_one / delete_many
    collection: str
    document: Mapping[str, Any] | None = None
    filter: Mapping[str, Any] | None = None
    update: Mapping[str, Any] | None = None


WEIGHTS = (
    ("new_session", 2.0),
    ("page_view", 6.0),
    ("tag_campaign", 1.0),
    ("untag_campaign", 1.0),
    ("delete_page_view", 1.0),
    ("delete_session", 0.5),
)


def plan_op(rng: random.Random, state: ActivityState) -> list[MongoOp]:
    """The writes of one traffic step; ``state`` is updated as if they succeeded."""
    state.step += 1
    return _plan(rng, state)


def _plan(rng: random.Random, state: ActivityState) -> list[MongoOp]:
    names = [n for n, _ in WEIGHTS]
    choice = rng.choices(names, [w for _, w in WEIGHTS])[0]
    if choice != "new_session" and not state.sessions:
        choice = "new_session"
    if choice == "new_session":
        state.next_session += 1
        sid = state.next_session
        state.sessions.append(sid)
        return [MongoOp("c", "insert_one", "sessions", document=session_doc(rng, sid))]
    if choice == "page_view":
        sid = rng.choice(state.sessions)
        state.next_view += 1
        pid = state.next_view
        state.views[pid] = sid
        state.touched[sid] = state.step
        return [
            MongoOp("c", "insert_one", "page_views", document=page_view_doc(rng, pid, sid)),
            MongoOp(
                "u",
                "update_one",
                "sessions",
                filter={"_id": sid},
                update={"$inc": {"page_views": 1}},
            ),
        ]
    if choice == "tag_campaign":
        sid = rng.choice(state.sessions)
        state.tagged.add(sid)
        state.touched[sid] = state.step
        return [
            MongoOp(
                "u",
                "update_one",
                "sessions",
                filter={"_id": sid},
                update={"$set": {"campaign": rng.choice(CAMPAIGNS), "device": "mobile"}},
            )
        ]
    if choice == "untag_campaign":
        if not state.tagged:
            return _plan(rng, state)
        sid = min(state.tagged)
        state.tagged.discard(sid)
        state.touched[sid] = state.step
        return [
            MongoOp(
                "u",
                "update_one",
                "sessions",
                filter={"_id": sid},
                update={"$unset": {"campaign": ""}},
            )
        ]
    if choice == "delete_page_view":
        if not state.views:
            return _plan(rng, state)
        pid = min(state.views)
        sid = state.views.pop(pid)
        state.touched[sid] = state.step
        return [
            MongoOp("d", "delete_one", "page_views", filter={"_id": pid}),
            MongoOp(
                "u",
                "update_one",
                "sessions",
                filter={"_id": sid, "page_views": {"$gt": 0}},
                update={"$inc": {"page_views": -1}},
            ),
        ]
    # delete_session (its page views first): the oldest one no recent update touched
    quiet = [
        s
        for s in state.sessions
        if state.step - state.touched.get(s, -DELETE_COOLDOWN) > DELETE_COOLDOWN
    ]
    if not quiet:
        return _plan(rng, state)
    sid = quiet[0]
    state.sessions.remove(sid)
    state.tagged.discard(sid)
    state.touched.pop(sid, None)
    gone = [p for p, s in state.views.items() if s == sid]
    for p in gone:
        del state.views[p]
    return [
        MongoOp("d", "delete_many", "page_views", filter={"session_id": sid}),
        MongoOp("d", "delete_one", "sessions", filter={"_id": sid}),
    ]


class MongoActivity:
    """A pymongo connection to the demo's `activity` database (a traffic worker's "conn")."""

    def __init__(self, uri: str) -> None:
        import pymongo

        self.client: Any = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
        self.db = self.client[ACTIVITY_DB]

    def apply(self, ops: Iterable[MongoOp]) -> str:
        """Run the writes; returns the kind of the first (what the step counts as)."""
        kind = ""
        for op in ops:
            coll = self.db[op.collection]
            if op.action == "insert_one":
                coll.insert_one(dict(op.document or {}))
            elif op.action == "update_one":
                coll.update_one(dict(op.filter or {}), dict(op.update or {}))
            elif op.action == "delete_one":
                coll.delete_one(dict(op.filter or {}))
            elif op.action == "delete_many":
                coll.delete_many(dict(op.filter or {}))
            else:  # pragma: no cover - plan_op never builds another
                raise ValueError(f"unknown action {op.action!r}")
            kind = kind or op.kind
        return kind

    def documents(self, collection: str) -> list[dict[str, Any]]:
        return list(self.db[collection].find())

    def close(self) -> None:
        self.client.close()


def create_activity(
    uri: str, rng: random.Random, scale: int = 5
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Re)create the `activity` database's two collections with seed documents; returns them."""
    sessions, views = seed_documents(rng, scale)
    conn = MongoActivity(uri)
    try:
        for name in COLLECTIONS:  # only the demo's own collections, never the whole database
            conn.db.drop_collection(name)
        conn.db["sessions"].insert_many(sessions)
        conn.db["page_views"].insert_many(views)
    finally:
        conn.close()
    return sessions, views


def state_from_documents(
    sessions: Iterable[Mapping[str, Any]], views: Iterable[Mapping[str, Any]]
) -> ActivityState:
    """The traffic's view of existing collections (after the seed)."""
    state = ActivityState()
    state.sessions = sorted(int(s["_id"]) for s in sessions)
    state.views = {int(v["_id"]): int(v["session_id"]) for v in views}
    state.next_session = max(state.sessions, default=0)
    state.next_view = max(state.views, default=0)
    return state
