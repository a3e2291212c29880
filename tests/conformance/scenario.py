"""One conformance run, shared by the source suites: the same workload captured by real Debezium
and by cdc-bridge (snapshot first, then the streamed transactions), both captures collected,
every cdc-bridge record fed through Kafka Connect's JsonConverter, the two compared event by
event, and a check that the workload really produced reads, inserts, updates, deletes and
tombstones (not two empty captures).

Also the small pieces the suites share: :func:`snapshot_done` (enough ``op: r`` records) and
:func:`pg_dsn_parts` (a Postgres DSN as Debezium's connection properties).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from tests.conformance.bridge import read_prefix
from tests.conformance.compare import assert_conform
from tests.conformance.debezium import DebeziumEngine, Record, connect_check

__all__ = ["conform", "pg_dsn_parts", "snapshot_done"]

Until = Callable[[list[Record]], bool]


def snapshot_done(rows: int) -> Until:
    """``until`` condition: at least ``rows`` snapshot (``op: r``) records."""

    def done(records: list[Record]) -> bool:
        return sum(1 for _, _, v in records if v is not None and b'"op":"r"' in v) >= rows

    return done


def pg_dsn_parts(dsn: str) -> Mapping[str, Any]:
    """host, port, user, password and dbname of a Postgres DSN (for ``postgres_properties``)."""
    d = conninfo_to_dict(dsn)
    return {
        "host": d.get("host", "127.0.0.1"),
        "port": d.get("port", 5432),
        "user": d.get("user", "postgres"),
        "password": d.get("password", ""),
        "dbname": d["dbname"],
    }


def conform(
    engine: DebeziumEngine,
    bridge: AbstractContextManager[Any],
    *,
    bootstrap: str,
    debezium_prefix: str,
    our_prefix: str,
    snapshot_rows: int,
    stream: Callable[[], None],
    done: Until,
    **compare: Any,
) -> list[dict[str, Any]]:
    """Run the capture and compare; returns the payloads of cdc-bridge's value records.

    ``engine``: the started Debezium engine. ``bridge``: the context manager that runs the
    cdc-bridge source (writing under ``our_prefix`` to ``bootstrap``). Both must have snapshotted
    ``snapshot_rows`` rows before ``stream()`` runs the streamed transactions; ``done`` says when
    a capture holds all of them (the last one's event). ``compare``: the comparator's options
    (``ignore``, ``exact_streaming_source``). Fails with the comparator's report.
    """
    snapshotted = snapshot_done(snapshot_rows)
    with bridge:
        engine.wait(snapshotted, timeout=60, settle=0)
        read_prefix(bootstrap, our_prefix, snapshotted, timeout=30, settle=0)
        stream()
        debezium_records = engine.wait(done, timeout=60, settle=1.0)
        our_records = read_prefix(bootstrap, our_prefix, done, timeout=30, settle=1.0)

    for record in our_records:
        connect_check(record)
    assert_conform(
        debezium_records,
        our_records,
        debezium_prefix=debezium_prefix,
        our_prefix=our_prefix,
        **compare,
    )
    # the workload really exercised what it claims (not two empty captures)
    payloads = [json.loads(v)["payload"] for _, _, v in our_records if v is not None]
    assert {"r", "c", "u", "d"} <= {p.get("op") for p in payloads}
    assert any(v is None for _, _, v in our_records)  # tombstones
    return payloads
