"""Fault tests of setup mistakes on the source side, under the real ``cdc-bridge`` commands:
a wrong broker address (no orphan replication slot; the error names the address and the
key), and configs that can do nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from cdc_bridge.testing.services import KafkaService
from tests.faults.support import BridgeProcess, bridge_config, cli, free_port, write_config


def test_wrong_broker_address_fails_before_touching_the_source(
    pg_database: str,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    name = f"wrb{time.monotonic_ns() % 10**9}"
    wrong = f"127.0.0.1:{free_port()}"  # nothing listens there
    source = {"name": name, "kind": "postgres", "dsn": pg_database, "tables": ["public.items"]}
    conf = bridge_config(tmp_path, wrong, sources=[source], kafka={"connect_timeout_s": 3})
    bridge = bridge_process(conf)
    assert bridge.wait_exit(30) == 1, bridge.log_tail()
    log = bridge.log()
    assert f"cannot reach Kafka at {wrong} ([kafka] bootstrap_servers)" in log, log
    assert "Traceback" not in log, log
    with psycopg.connect(pg_database) as c:
        slots = c.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
        pubs = c.execute("SELECT pubname FROM pg_publication").fetchall()
    assert slots == [] and pubs == [], (slots, pubs)


def test_routes_only_bridge_reports_an_unreachable_broker_within_seconds(
    bridge_process: Callable[..., BridgeProcess], tmp_path: Path
) -> None:
    wrong = f"127.0.0.1:{free_port()}"
    conf = bridge_config(
        tmp_path,
        wrong,
        sinks=[{"name": "dw", "kind": "database", "url": f"sqlite:///{tmp_path / 't.db'}"}],
        routes=[{"name": "r", "from": "shop.public.items", "to": "dw"}],
    )
    bridge = bridge_process(conf)  # the default [kafka] connect_timeout_s
    bridge.wait_log(f"cannot reach Kafka at {wrong} ([kafka] bootstrap_servers)", 15)
    assert "ERROR" in bridge.log(), bridge.log()
    assert bridge.stop() == 0, bridge.log_tail()  # stopping while it waits is a clean stop


@pytest.fixture
def limited_user(pg_database: str) -> Iterator[str]:
    """A role with LOGIN and REPLICATION and SELECT on ``items``, owning nothing: its DSN."""
    role = f"lim_{time.monotonic_ns() % 10**9}"
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        c.execute(f"CREATE ROLE {role} LOGIN REPLICATION")
        c.execute(f"GRANT SELECT ON items TO {role}")
    yield make_conninfo(pg_database, user=role)
    with psycopg.connect(pg_database, autocommit=True) as c:
        for (slot,) in c.execute("SELECT slot_name FROM pg_replication_slots").fetchall():
            c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        c.execute("DROP TABLE items")
        c.execute(f"DROP OWNED BY {role}")
        c.execute(f"DROP ROLE {role}")


def test_check_connect_checks_the_privileges_start_needs(
    pg_database: str, limited_user: str, kafka: KafkaService, tmp_path: Path
) -> None:
    """Defect 13: the user cannot create the publication (it owns no table): `check
    --connect` must say so, as `start` would fail on it."""
    dsn = limited_user
    source = {"name": "limited", "kind": "postgres", "dsn": dsn, "tables": ["public.items"]}
    conf = write_config(
        tmp_path / "c.toml", bridge_config(tmp_path, kafka.bootstrap, sources=[source])
    )
    done = cli("check", "--connect", "--config", str(conf))
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "prerequisites met" not in out, out
    assert "cdc_bridge_limited" in out and "public.items" in out and "owner" in out, out
    assert "CREATE PUBLICATION" in out, out
    # Once the owner created the publication, the same user passes (start needs no more).
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE PUBLICATION cdc_bridge_limited FOR TABLE items")
    done = cli("check", "--connect", "--config", str(conf))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prerequisites met" in done.stdout, done.stdout


def test_drop_slot_as_a_non_owner_of_the_publication_drops_neither(
    pg_database: str, limited_user: str
) -> None:
    dsn = limited_user
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE PUBLICATION cdc_bridge_dropper FOR TABLE items")
        c.execute("SELECT pg_create_logical_replication_slot('cdc_bridge_dropper', 'pgoutput')")

    def left() -> tuple[int, int]:
        with psycopg.connect(pg_database) as c:
            slots = c.execute("SELECT count(*) FROM pg_replication_slots").fetchone()
            pubs = c.execute("SELECT count(*) FROM pg_publication").fetchone()
        assert slots is not None and pubs is not None
        return int(slots[0]), int(pubs[0])

    done = cli("postgres", "drop-slot", "--source", "dropper", "--dsn", dsn, "--yes")
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out, out
    assert "nothing was dropped" in out and "cdc_bridge_dropper" in out, out
    assert "OWNER TO" in out, out
    assert left() == (1, 1)  # both or neither: neither
    done = cli("postgres", "drop-slot", "--source", "dropper", "--dsn", pg_database, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert left() == (0, 0)


def test_configs_that_can_do_nothing_are_flagged(
    kafka: KafkaService,
    bridge_process: Callable[..., BridgeProcess],
    tmp_path: Path,
    topic_name: Callable[..., str],
) -> None:
    """Defect 15: `check` warns, and /readyz says so in its notes."""
    empty = write_config(tmp_path / "empty.toml", bridge_config(tmp_path, kafka.bootstrap))
    done = cli("check", "--config", str(empty))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no [[sources]] and no [[routes]]" in done.stderr, done.stderr

    # A routes-only bridge whose route reads a topic that no source writes and Kafka lacks.
    missing = topic_name("nobody.writes")
    sink = {"name": "dw", "kind": "database", "url": f"sqlite:///{tmp_path / 't.db'}"}
    route = {"name": "orphan", "from": missing, "to": "dw"}
    conf = bridge_config(tmp_path, kafka.bootstrap, sinks=[sink], routes=[route])
    path = write_config(tmp_path / "orphan.toml", conf)
    done = cli("check", "--connect", "--config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"no topic on Kafka matches '{missing}'" in done.stderr, done.stderr

    bridge = bridge_process(conf)
    body = bridge.wait_readyz(
        lambda _code, b: any("route orphan" in n for n in b.get("notes", [])),
        30,
        "a note about the route with nothing to read",
    )
    assert missing in " ".join(body["notes"]), body
    assert bridge.stop() == 0, bridge.log_tail()

    idle = bridge_process(bridge_config(tmp_path, kafka.bootstrap), name="idle")
    body = idle.wait_readyz(lambda _c, b: bool(b.get("notes")), 30, "the do-nothing note")
    assert "captures and delivers nothing" in body["notes"][0], body
    assert idle.stop() == 0, idle.log_tail()
