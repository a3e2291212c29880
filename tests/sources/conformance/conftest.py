"""Drivers for the source conformance suite: one per registered source kind, each knowing how
to make a table, write to it, read its topic back and lose the source's position on purpose.

The suite itself (``test_source_conformance.py``) is written once against the :class:`Driver`
interface; ``driver`` is parametrised over every kind in ``cdc_bridge.registry.SOURCE_KINDS``;
a kind without a driver here is skipped with a reason that says so (every run lists it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from confluent_kafka import Consumer, TopicPartition

from cdc_bridge.registry import SOURCE_KINDS
from tests.connect_schema import decode_json_record

_SERVER_IDS = itertools.count(8100)
SIGNAL_DDL = (
    "CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, "
    "data varchar(2048) NULL)"
)


class Driver:
    """Per-kind pieces: ``table``/``topic`` names, the source config, a writer, a position
    to lose. Rows are ``(id int primary key, v int)``."""

    kind: str
    #: Why this kind cannot take incremental snapshots (the case is skipped with it); None
    #: when it can: then ``table`` and ``incremental_config`` are implemented.
    no_incremental_snapshot: str | None = None
    #: Why this kind's stored position cannot be made unreadable on demand (the lost-position
    #: case is skipped with it); None when ``lose_position`` is implemented.
    no_lost_position: str | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def config(self, **kw: Any) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def table(self) -> str:
        """The table as ``request_snapshot`` (``cdc-bridge snapshot --table``) names it."""
        raise NotImplementedError

    @property
    def topic(self) -> str:
        return f"{self.name}.{self.table}"

    def incremental_config(self, chunk_size: int) -> dict[str, Any]:
        """Make the signal table; the config keys of incremental snapshots."""
        raise NotImplementedError

    def insert(self, ids: range, v: int = 0) -> None:
        raise NotImplementedError

    def update(self, i: int, v: int) -> None:
        raise NotImplementedError

    def delete(self, i: int) -> None:
        raise NotImplementedError

    def rows(self) -> dict[int, int]:
        raise NotImplementedError

    def lose_position(self) -> str:
        """Make the stored position unreadable; returns words the error must name."""
        raise NotImplementedError

    def row_of(self, key: Any, value: Any) -> tuple[int, int | None, str, str]:
        """(id, v or None for a delete, op, source.snapshot) of one decoded record."""
        payload = value
        after = payload["after"]
        return (
            int(key["id"]) if after is None else int(after["id"]),
            None if after is None else int(after["v"]),
            payload["op"],
            str(payload["source"]["snapshot"]),
        )

    def close(self) -> None:
        pass


class PostgresDriver(Driver):
    kind = "postgres"

    def __init__(self, name: str, dsn: str) -> None:
        import psycopg

        super().__init__(name)
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)")

    def config(self, **kw: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "postgres",
            "dsn": self.dsn,
            "tables": ["public.t"],
            "status_interval_ms": 100,
            "snapshot_batch_size": 200,
            "retry_initial_delay_ms": 200,
            **kw,
        }

    @property
    def table(self) -> str:
        return "public.t"

    def incremental_config(self, chunk_size: int) -> dict[str, Any]:
        self.conn.execute(SIGNAL_DDL)
        return {"signal_table": "public.debezium_signal", "incremental_chunk_size": chunk_size}

    def insert(self, ids: range, v: int = 0) -> None:
        self.conn.execute(
            "INSERT INTO t SELECT g, %s FROM generate_series(%s::int, %s::int) g",
            (v, ids.start, ids.stop - 1),
        )

    def update(self, i: int, v: int) -> None:
        self.conn.execute("UPDATE t SET v = %s WHERE id = %s", (v, i))

    def delete(self, i: int) -> None:
        self.conn.execute("DELETE FROM t WHERE id = %s", (i,))

    def rows(self) -> dict[int, int]:
        return dict(self.conn.execute("SELECT id, v FROM t").fetchall())

    def lose_position(self) -> str:
        from cdc_bridge.sources.postgres.config import PostgresSourceConfig

        slot = PostgresSourceConfig.model_validate(self.config()).slot
        self.conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        return f"replication slot {slot!r} no longer exists"

    def close(self) -> None:
        self.conn.close()


class MariaDBDriver(Driver):
    kind = "mysql"

    def __init__(self, name: str, db: Any) -> None:
        import pymysql

        super().__init__(name)
        self.db = db
        self.conn = pymysql.connect(**db.connect_kwargs(), autocommit=True)
        self._exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)")
        self.server_id = next(_SERVER_IDS)

    def _exec(self, sql: str, args: Any = None) -> list[Any]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def config(self, **kw: Any) -> dict[str, Any]:
        db = self.db
        return {
            "name": self.name,
            "kind": "mysql",
            "dsn": f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/",
            "tables": [f"{db.name}.t"],
            "server_id": self.server_id,
            "snapshot_batch_size": 200,
            "heartbeat_interval_ms": 500,
            "retry_initial_delay_ms": 200,
            **kw,
        }

    @property
    def table(self) -> str:
        return f"{self.db.name}.t"

    def incremental_config(self, chunk_size: int) -> dict[str, Any]:
        self._exec(SIGNAL_DDL)
        return {
            "signal_table": f"{self.db.name}.debezium_signal",
            "incremental_chunk_size": chunk_size,
        }

    def insert(self, ids: range, v: int = 0) -> None:
        values = ",".join(f"({i},{v})" for i in ids)
        self._exec(f"INSERT INTO t VALUES {values}")

    def update(self, i: int, v: int) -> None:
        self._exec("UPDATE t SET v = %s WHERE id = %s", (v, i))

    def delete(self, i: int) -> None:
        self._exec("DELETE FROM t WHERE id = %s", (i,))

    def rows(self) -> dict[int, int]:
        return {int(i): int(v) for i, v in self._exec("SELECT id, v FROM t")}

    def lose_position(self) -> str:
        """Purge every binlog but a new current one (MariaDB keeps a file until its binlog
        checkpoint passed, so retry briefly)."""
        self._exec("FLUSH BINARY LOGS")
        current = self._exec("SHOW MASTER STATUS")[0][0]
        deadline = time.monotonic() + 20
        while True:
            self._exec(f"PURGE BINARY LOGS TO '{current}'")
            if [r[0] for r in self._exec("SHOW BINARY LOGS")] == [current]:
                return "binlogs were purged"
            assert time.monotonic() < deadline, "binlogs not purged"
            time.sleep(0.2)

    def close(self) -> None:
        self.conn.close()


class MongoDriver(Driver):
    kind = "mongodb"
    no_lost_position = "a resume token cannot be expired on demand (tests/sources/test_mongodb_*)"

    def __init__(self, name: str, uri: str) -> None:
        from pymongo import MongoClient

        super().__init__(name)
        self.uri = uri
        self.client: Any = MongoClient(uri)
        self.database = f"conf_{uuid.uuid4().hex[:8]}"
        self.coll = self.client[self.database]["t"]

    def config(self, **kw: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "mongodb",
            "dsn": self.uri,
            "collections": [f"{self.database}.t"],
            "snapshot_batch_size": 200,
            "heartbeat_interval_ms": 100,
            "retry_initial_delay_ms": 200,
            **kw,
        }

    @property
    def table(self) -> str:
        return f"{self.database}.t"

    def incremental_config(self, chunk_size: int) -> dict[str, Any]:
        self.client[self.database]["debezium_signal"].insert_one({"_id": "init", "type": "noop"})
        return {
            "signal_table": f"{self.database}.debezium_signal",
            "incremental_chunk_size": chunk_size,
        }

    def insert(self, ids: range, v: int = 0) -> None:
        self.coll.insert_many([{"_id": i, "v": v} for i in ids])

    def update(self, i: int, v: int) -> None:
        self.coll.update_one({"_id": i}, {"$set": {"v": v}})

    def delete(self, i: int) -> None:
        self.coll.delete_one({"_id": i})

    def rows(self) -> dict[int, int]:
        return {int(d["_id"]): int(d["v"]) for d in self.coll.find()}

    def lose_position(self) -> str:
        raise NotImplementedError(
            "a resume token cannot be expired on demand; see the MongoDB tests"
        )

    def row_of(self, key: Any, value: Any) -> tuple[int, int | None, str, str]:
        after = json.loads(value["after"]) if value.get("after") else None
        ident = json.loads(key["id"])
        i = (
            ident
            if isinstance(ident, int)
            else int(ident.get("$numberInt", ident.get("$numberLong")))
        )
        v = None
        if after is not None:
            raw = after["v"]
            v = int(raw if isinstance(raw, int) else raw.get("$numberInt", raw.get("$numberLong")))
        return i, v, value["op"], str(value["source"]["snapshot"])

    def close(self) -> None:
        self.client.drop_database(self.database)
        self.client.close()


class SalesforceDriver(Driver):
    """Rows as records of a custom object ``Row__c`` (external id ``Key__c``, ``V__c``) in
    the Salesforce emulator, written as UI edits; a lost position is a replay id the
    emulator's Pub/Sub API no longer retains."""

    kind = "salesforce"
    no_incremental_snapshot = "Salesforce sources take no incremental snapshots"
    OBJECT: ClassVar[dict[str, Any]] = {
        "name": "Row__c",
        "fields": [
            {"name": "Key__c", "type": "int", "externalId": True, "unique": True},
            {"name": "V__c", "type": "int"},
        ],
    }

    def __init__(self, name: str) -> None:
        from cdc_bridge.testing.salesforce import SalesforceEmulator

        super().__init__(name)
        self.emu = SalesforceEmulator(
            [self.OBJECT], include_defaults=False, bulk_delay=0.02, pubsub_keepalive_s=0.5
        ).start()
        self.rid: dict[int, str] = {}  # Key__c -> record Id
        self.key: dict[str, int] = {}  # record Id -> Key__c (a delete's key has only the Id)

    def config(self, **kw: Any) -> dict[str, Any]:
        if "snapshot_batch_size" in kw:  # one Bulk API result page is one snapshot chunk
            kw["snapshot_page_size"] = max(100, kw.pop("snapshot_batch_size"))
        return {
            "name": self.name,
            "kind": "salesforce",
            **self.emu.login_settings(),
            "pubsub_endpoint": self.emu.pubsub_endpoint,
            "objects": ["Row__c"],
            "fields": {"Row__c": ["Key__c", "V__c"]},
            "max_wait_ms": 50,
            "retry_initial_delay_ms": 200,
            **kw,
        }

    @property
    def table(self) -> str:
        return "Row__c"

    def insert(self, ids: range, v: int = 0) -> None:
        obj = self.emu.store.schema("Row__c")
        assert obj is not None
        with self.emu.ui_transaction() as tx:
            made = [(i, self.emu.store.insert(tx, obj, {"Key__c": i, "V__c": v})) for i in ids]
        for i, rid in made:
            self.rid[i], self.key[rid] = rid, i

    def update(self, i: int, v: int) -> None:
        self.emu.ui_update("Row__c", self.rid[i], {"V__c": v})

    def delete(self, i: int) -> None:
        self.emu.ui_delete("Row__c", self.rid[i])

    def rows(self) -> dict[int, int]:
        return {int(r["Key__c"]): int(r["V__c"]) for r in self.emu.records("Row__c")}

    def lose_position(self) -> str:
        self.emu.bus.expire()  # retention drops every change event
        return "outside the Pub/Sub API's retention window"

    def row_of(self, key: Any, value: Any) -> tuple[int, int | None, str, str]:
        after = value["after"]
        i = self.key[key["Id"]] if after is None else int(after["Key__c"])
        v = None if after is None else int(after["V__c"])
        return i, v, value["op"], str(value["source"]["snapshot"])

    def close(self) -> None:
        self.emu.stop()


@pytest.fixture(params=sorted(SOURCE_KINDS))
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """A driver for one registered source kind, on a fresh database and source name."""
    kind = request.param
    name = f"conf-{uuid.uuid4().hex[:8]}"
    made: Driver
    if kind == "postgres":
        made = PostgresDriver(name, request.getfixturevalue("pg_database"))
    elif kind == "mysql":
        made = MariaDBDriver(name, request.getfixturevalue("mariadb_database"))
    elif kind == "mongodb":
        made = MongoDriver(name, request.getfixturevalue("mongodb_uri"))
    elif kind == "salesforce":
        made = SalesforceDriver(name)
    else:  # visible in every run's summary until the kind brings its driver
        pytest.skip(f"source kind {kind!r} has no conformance driver yet: add one to {__file__}")
    try:
        yield made
    finally:
        made.close()


class TopicTail:
    """Every record of a topic from the beginning, decoded: ``(id, v, op, snapshot)``."""

    def __init__(self, bootstrap: str, driver: Driver) -> None:
        self.driver = driver
        self.topic = driver.topic
        self.records: list[tuple[int, int | None, str, str]] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"conf-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self._assigned = False

    def _assign(self, deadline: float) -> None:
        while not self._assigned:
            md = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if md is not None and md.partitions and md.error is None:
                self.consumer.assign([TopicPartition(self.topic, p, 0) for p in md.partitions])
                self._assigned = True
                return
            assert time.monotonic() < deadline, f"topic {self.topic} never appeared"
            time.sleep(0.1)

    def until(
        self, done: Callable[[list[tuple[int, int | None, str, str]]], bool], timeout: float = 60
    ) -> list[tuple[int, int | None, str, str]]:
        deadline = time.monotonic() + timeout
        self._assign(deadline)
        while not done(self.records):
            assert time.monotonic() < deadline, (
                f"timed out on {self.topic}: {len(self.records)} records, "
                f"{len({r[0] for r in self.records})} distinct ids"
            )
            for m in self.consumer.consume(2000, 0.2):
                if m.error() or m.value() is None:
                    continue
                key = decode_json_record(m.key())
                self.records.append(self.driver.row_of(key, decode_json_record(m.value())))
        return self.records

    def latest(self) -> dict[int, int | None]:
        """The last version of every row, in topic order (per-key order holds per partition)."""
        out: dict[int, int | None] = {}
        for i, v, _op, _snap in self.records:
            out[i] = v
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


@pytest.fixture
def tail(kafka: Any, driver: Driver) -> Iterator[TopicTail]:
    t = TopicTail(kafka.bootstrap, driver)
    yield t
    t.close()
