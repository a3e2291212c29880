"""The replication protocol client against a real server: slot commands, the CopyBoth stream,
keepalives and standby status updates that move the slot's confirmed position."""

from __future__ import annotations

import time

import psycopg

from cdc_bridge.sources.postgres.lsn import LSN
from cdc_bridge.sources.postgres.pgoutput import Commit, Insert, PgOutputDecoder, Relation
from cdc_bridge.sources.postgres.replication import Keepalive, ReplicationConnection, XLogData


def confirmed(dsn: str, slot: str) -> LSN:
    with psycopg.connect(dsn) as c:
        row = c.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
        assert row is not None
        return LSN.parse(row[0])


def test_stream_status_updates_and_keepalive(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("CREATE PUBLICATION p FOR TABLE t")
    with ReplicationConnection(pg_database) as r:
        info = r.identify_system()
        assert info.dbname == pg_database.rsplit("/", 1)[1] and info.timeline >= 1
        slot = r.create_slot("s", snapshot="export")
        assert slot.snapshot_name and slot.output_plugin == "pgoutput"
        assert slot.consistent_point >= info.xlogpos
        with psycopg.connect(pg_database, autocommit=True) as c:
            c.execute("INSERT INTO t VALUES (1), (2)")
        r.start_replication("s", 0, publications=["p"], proto_version=1)
        dec = PgOutputDecoder()
        got: list[object] = []
        deadline = time.monotonic() + 10
        while not any(isinstance(m, Commit) for m in got) and time.monotonic() < deadline:
            msg = r.read(1.0)
            if isinstance(msg, XLogData):
                got.append(dec.decode(msg.payload))
        assert [type(m) for m in got[1:4]] == [Relation, Insert, Insert]
        commit = got[-1]
        assert isinstance(commit, Commit)
        assert confirmed(pg_database, "s") < commit.end_lsn
        r.set_flushed(commit.end_lsn)
        r.set_flushed(commit.commit_lsn)  # never moves backwards
        assert r.flushed == commit.end_lsn
        r.send_status(reply=True)  # the server answers with a keepalive
        ka = None
        while ka is None and time.monotonic() < deadline:
            msg = r.read(1.0)
            if isinstance(msg, Keepalive):
                ka = msg
        assert ka is not None and ka.wal_end >= commit.end_lsn
        deadline = time.monotonic() + 5
        while confirmed(pg_database, "s") != commit.end_lsn and time.monotonic() < deadline:
            time.sleep(0.05)
        assert confirmed(pg_database, "s") == commit.end_lsn
        t0 = time.monotonic()
        while (m := r.read(0.3)) is not None:
            assert isinstance(m, Keepalive)
        assert time.monotonic() - t0 < 5
