"""The database sink against real SQLite, PostgreSQL and MariaDB targets (no Kafka here):
types, per-key collapse, key changes, soft deletes, schema evolution, hostile identifiers,
failure isolation and the offsets stored with each batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_bridge.decode import EnvelopeDecoder
from cdc_bridge.events import ChangeEvent, TableSchema
from cdc_bridge.routes import compile_route
from cdc_bridge.sinks.base import SinkContext, SinkRecord
from cdc_bridge.sinks.database.config import DatabaseRouteConfig, DatabaseSinkConfig
from cdc_bridge.sinks.database.sink import DatabaseSink, normalize_url
from tests.routes_support import col, encode, event, expected_row, norm_row, row, table


def make_sink(url: str, **route: Any) -> DatabaseSink:
    cfg = DatabaseSinkConfig(name="db", kind="database", url=url)
    rcfg = DatabaseRouteConfig.model_validate({"from": "shop.public.*", "to": "db", **route})
    sink = DatabaseSink(cfg, rcfg, SinkContext("test", "r", "test.r"))
    sink.open()
    return sink


@pytest.fixture
def sink_factory(target_url: str) -> Iterator[Any]:
    sinks: list[DatabaseSink] = []

    def make(**route: Any) -> DatabaseSink:
        s = make_sink(target_url, **route)
        sinks.append(s)
        return s

    yield make
    for s in sinks:
        s.close()


class Feed:
    """Encodes events like a source and decodes them like a route, offsets counting up."""

    def __init__(self, **route: Any) -> None:
        self.decoder = EnvelopeDecoder()
        self.offset = 0
        self.route = compile_route(
            DatabaseRouteConfig.model_validate({"from": "x", "to": "db", **route}), "test"
        )

    def __call__(self, events: Sequence[ChangeEvent], schemas: bool = True) -> list[SinkRecord]:
        out = []
        for topic, k, v in encode(events, schemas=schemas):
            rec = self.decoder.decode(topic, 0, self.offset, 0, k, v)
            self.offset += 1
            prepared = self.route.prepare(rec)
            if prepared is not None:
                out.append(prepared)
        return out


def rows_of(sink: DatabaseSink, name: str, order: str = "id") -> list[dict[str, Any]]:
    assert sink.engine is not None
    with sink.engine.connect() as conn:
        q = conn.dialect.identifier_preparer.quote
        result = conn.exec_driver_sql(f"SELECT * FROM {q(name)} ORDER BY {q(order)}")
        return [norm_row(dict(r._mapping)) for r in result]


def test_every_type_round_trips(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table()
    feed = Feed()
    batch = feed([event(t, "c", None, row(i)) for i in range(1, 6)])
    assert sink.apply(batch, {("shop.public.customers", 0): 5}).ok
    assert rows_of(sink, "customers") == [norm_row(expected_row(i)) for i in range(1, 6)]
    assert sink.committed_offsets("test.r", [("shop.public.customers", 0)]) == {
        ("shop.public.customers", 0): 5
    }


def test_collapse_keeps_last_state_and_deletes(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table()
    feed = Feed()
    assert sink.apply(feed([event(t, "c", None, row(1)), event(t, "c", None, row(2))])).ok
    batch = feed(
        [
            event(t, "u", row(1), row(1, name="one")),
            event(t, "u", row(1, name="one"), row(1, name="uno")),
            event(t, "d", row(2), None),  # + tombstone
            event(t, "c", None, row(2, name="two again")),
            event(t, "c", None, row(3)),
            event(t, "d", row(3), None),
        ]
    )
    assert [r.op for r in batch] == ["u", "u", "d", "d", "c", "c", "d", "d"]
    assert sink.apply(batch).ok
    got = rows_of(sink, "customers")
    assert [(r["id"], r["name"]) for r in got] == [(1, "uno"), (2, "two again")]


def test_delete_then_create_resets_columns_not_in_the_event(sink_factory: Any) -> None:
    # A delete in between must delete: the re-created row does not keep old extra values.
    sink = sink_factory(deletes="delete")
    t = table()
    feed = Feed()
    assert sink.apply(feed([event(t, "c", None, row(1))])).ok
    assert sink.engine is not None
    with sink.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE customers ADD COLUMN note VARCHAR(20)"))
        conn.execute(sa.text("UPDATE customers SET note = 'keep?'"))
    sink._tables.clear()
    assert sink.apply(feed([event(t, "d", row(1), None), event(t, "c", None, row(1))])).ok
    assert rows_of(sink, "customers")[0]["note"] is None


def test_primary_key_change(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table()
    feed = Feed()
    assert sink.apply(feed([event(t, "c", None, row(1))])).ok
    assert sink.apply(feed([event(t, "u", row(1), row(10, name="moved"))])).ok
    assert [(r["id"], r["name"]) for r in rows_of(sink, "customers")] == [(10, "moved")]


def test_soft_deletes(sink_factory: Any) -> None:
    sink = sink_factory(deletes="soft", soft_delete_column="is_deleted")
    t = table()
    feed = Feed()
    assert sink.apply(feed([event(t, "c", None, row(1)), event(t, "c", None, row(2))])).ok
    assert sink.apply(feed([event(t, "d", row(1), None)])).ok
    got = {r["id"]: bool(r["is_deleted"]) for r in rows_of(sink, "customers")}
    assert got == {1: True, 2: False}
    assert sink.apply(feed([event(t, "c", None, row(1, name="back"))])).ok
    got = {r["id"]: (bool(r["is_deleted"]), r["name"]) for r in rows_of(sink, "customers")}
    assert got == {1: (False, "back"), 2: (False, "name 2")}


def test_deletes_ignored(sink_factory: Any) -> None:
    sink = sink_factory(deletes="ignore")
    t = table()
    feed = Feed()
    assert sink.apply(feed([event(t, "c", None, row(1)), event(t, "d", row(1), None)])).ok
    assert [r["id"] for r in rows_of(sink, "customers")] == [1]


def test_schema_evolution_adds_columns(sink_factory: Any) -> None:
    sink = sink_factory()
    small = table(columns=(col("id", "int32", False), col("name", "string")))
    feed = Feed()
    assert sink.apply(feed([event(small, "c", None, {"id": 1, "name": "a"})])).ok
    wider = table(
        columns=(
            col("id", "int32", False),
            col("name", "string"),
            col("email", "string"),
            col("born", "int32", name="io.debezium.time.Date", version=1),
        )
    )
    assert sink.apply(
        feed([event(wider, "c", None, {"id": 2, "name": "b", "email": "b@x", "born": 1})])
    ).ok
    assert rows_of(sink, "customers") == [
        {"id": 1, "name": "a", "email": None, "born": None},
        {"id": 2, "name": "b", "email": "b@x", "born": "1970-01-02"},
    ]


def test_schema_evolution_none_reports_missing_table(sink_factory: Any) -> None:
    sink = sink_factory(schema_evolution="none")
    t = table()
    result = sink.apply(Feed()([event(t, "c", None, row(1))]))
    assert list(result.failed) == [0]
    assert "does not exist" in str(result.failed[0])
    assert result.failed[0].code == "missing_table"


HOSTILE_TABLE = 'x"; DROP TABLE victims; --`'
HOSTILE_COLUMN = "c') ; DELETE FROM victims; --\"`"
PERCENT_COLUMN = "p%s %(x)s :y ?"


def test_hostile_identifiers_cannot_inject(sink_factory: Any) -> None:
    sink = sink_factory()
    assert sink.engine is not None
    with sink.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE victims (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO victims VALUES (1)"))
    t = table(
        name=HOSTILE_TABLE[:40],
        columns=(
            col("id", "int32", False),
            col(HOSTILE_COLUMN, "string"),
            col("a b", "string"),
            col(PERCENT_COLUMN, "string"),
        ),
    )
    feed = Feed()
    batch = feed(
        [
            event(t, "c", None, {"id": 1, HOSTILE_COLUMN: "v1", "a b": "x", PERCENT_COLUMN: "%s"}),
            event(t, "c", None, {"id": 2, HOSTILE_COLUMN: "v2", "a b": "y", PERCENT_COLUMN: "p"}),
            event(t, "d", {"id": 2, HOSTILE_COLUMN: "v2", "a b": "y", PERCENT_COLUMN: "p"}, None),
        ]
    )
    assert sink.apply(batch).ok
    got = rows_of(sink, HOSTILE_TABLE[:40])
    assert got == [{"id": 1, HOSTILE_COLUMN: "v1", "a b": "x", PERCENT_COLUMN: "%s"}]
    # the same again through the bulk path (many rows in one batch)
    many = feed(
        [
            event(t, "c", None, {"id": i, HOSTILE_COLUMN: "m", "a b": "m", PERCENT_COLUMN: "%"})
            for i in range(10, 210)
        ]
    )
    assert sink.apply(many).ok
    assert len(rows_of(sink, HOSTILE_TABLE[:40])) == 201
    assert rows_of(sink, "victims") == [{"id": 1}]


def test_failing_record_is_isolated_and_nothing_committed(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table(columns=(col("id", "int32", False), col("n", "int32")))
    feed = Feed()
    assert sink.engine is not None
    with sink.engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, n INTEGER CHECK (n < 100))")
        )
    assert sink.apply(
        feed([event(t, "c", None, {"id": 1, "n": 1})]), {("shop.public.customers", 0): 1}
    ).ok
    batch = feed(
        [
            event(t, "c", None, {"id": 2, "n": 2}),
            event(t, "c", None, {"id": 3, "n": 1000}),  # violates the check constraint
            event(t, "c", None, {"id": 4, "n": 4}),
        ]
    )
    result = sink.apply(batch, {("shop.public.customers", 0): 4})
    assert list(result.failed) == [1]
    assert result.failed[1].code
    # all or nothing: neither the other rows nor the offsets were committed
    assert [r["id"] for r in rows_of(sink, "customers")] == [1]
    assert sink.committed_offsets("test.r", [("shop.public.customers", 0)]) == {
        ("shop.public.customers", 0): 1
    }
    ok = sink.apply([batch[0], batch[2]], {("shop.public.customers", 0): 4})
    assert ok.ok
    assert [r["id"] for r in rows_of(sink, "customers")] == [1, 2, 4]


def test_large_batch_uses_the_fast_path(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table()
    feed = Feed()
    n = 300
    assert sink.apply(feed([event(t, "r", None, row(i)) for i in range(n)])).ok
    assert sink.apply(feed([event(t, "u", row(i), row(i, name="x")) for i in range(0, n, 2)])).ok
    got = rows_of(sink, "customers")
    assert len(got) == n
    assert got[:2] == [
        norm_row(expected_row(0, name="x", wake=None) | {"wake": got[0]["wake"]}),
        norm_row(expected_row(1)),
    ]
    assert sum(1 for r in got if r["name"] == "x") == n // 2


def test_schemaless_topics_write_into_existing_tables(sink_factory: Any) -> None:
    sink = sink_factory()
    assert sink.engine is not None
    with sink.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(50))"))
    t = table(columns=(col("id", "int32", False), col("name", "string")))
    feed = Feed()
    batch = feed(
        [
            event(t, "c", None, {"id": 1, "name": "a"}),
            event(t, "u", {"id": 1, "name": "a"}, {"id": 1, "name": "b"}),
        ],
        schemas=False,
    )
    assert sink.apply(batch).ok
    assert rows_of(sink, "customers") == [{"id": 1, "name": "b"}]


def test_url_gets_the_shipped_drivers() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("mysql://u@h/db").drivername == "mysql+pymysql"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_zombie_consumers_are_fenced(sink_factory: Any) -> None:
    # Two consumers of one group believe they own the partition (the first one's session
    # expired while it was still writing): only the one whose view of the stored offsets is
    # current may write; the other one's batch is rolled back, nothing applied twice.
    from cdc_bridge.sinks.base import FencedError

    a, b = sink_factory(), sink_factory()
    t = table(columns=(col("id", "int32", False), col("n", "int32")))
    feed = Feed()
    tp = ("shop.public.customers", 0)
    first = feed([event(t, "c", None, {"id": 1, "n": 1})])
    assert b.apply(first, {tp: 1}, previous={tp: None}).ok
    with pytest.raises(FencedError):
        a.apply(first, {tp: 1}, previous={tp: None})
    second = feed([event(t, "u", {"id": 1, "n": 1}, {"id": 1, "n": 2})])
    assert b.apply(second, {tp: 2}, previous={tp: 1}).ok
    third = feed([event(t, "u", {"id": 1, "n": 2}, {"id": 1, "n": 3})])
    with pytest.raises(FencedError):
        a.apply(third, {tp: 3}, previous={tp: 1})  # a is stale: the target has 2
    assert rows_of(b, "customers") == [{"id": 1, "n": 2}]
    stored = rows_of(b, "cdc_bridge_offsets", order="partition")
    assert [(r["next_offset"], r["applied"]) for r in stored] == [(2, 2)]


def test_unavailable_toast_values_keep_the_target_value(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table(columns=(col("id", "int32", False), col("code", "string"), col("blob", "string")))
    feed = Feed()
    placeholder = "__debezium_unavailable_value"
    big = "x" * 5000
    # the full row and an update without the TOASTed value in one batch (collapsed) ...
    batch = feed(
        [
            event(t, "r", None, {"id": 1, "code": "a", "blob": big}),
            event(t, "u", None, {"id": 1, "code": "b", "blob": placeholder}),
            event(t, "r", None, {"id": 2, "code": "a", "blob": big}),
        ]
    )
    assert sink.apply(batch).ok
    # ... and in a later batch (upsert of the other columns only)
    assert sink.apply(feed([event(t, "u", None, {"id": 2, "code": "c", "blob": placeholder})])).ok
    assert rows_of(sink, "customers") == [
        {"id": 1, "code": "b", "blob": big},
        {"id": 2, "code": "c", "blob": big},
    ]


def test_connect_float_types_map_to_floating_columns(sink_factory: Any) -> None:
    sink = sink_factory()
    t = table(columns=(col("id", "int32", False), col("f", "float"), col("d", "double")))
    assert sink.apply(Feed()([event(t, "c", None, {"id": 1, "f": 1.5, "d": 1 / 3})])).ok
    assert rows_of(sink, "customers") == [{"id": 1, "f": 1.5, "d": 1 / 3}]


def test_too_long_names_are_reported_not_truncated(sink_factory: Any) -> None:
    sink = sink_factory()
    assert sink.engine is not None
    long = "c" * 80
    t = table(columns=(col("id", "int32", False), col(long, "string")))
    result = sink.apply(Feed()([event(t, "c", None, {"id": 1, long: "x"})]))
    if sink.engine.dialect.name == "sqlite":  # no limit: the name is kept whole
        assert result.ok
        assert rows_of(sink, "customers") == [{"id": 1, long: "x"}]
    else:
        assert result.failed[0].code == "identifier_too_long"
        assert "mapping.rename" in str(result.failed[0])


def test_concurrent_sinks_create_bookkeeping_and_tables_once(
    target_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Routes opening the same fresh target at once (the offsets table and a data table are
    created by whichever wins) neither fail nor log the loser's "already exists"."""
    import threading
    import warnings

    threads_n = 4
    errors: list[BaseException] = []
    for round_ in range(3):
        cfg = DatabaseSinkConfig(
            name="db", kind="database", url=target_url, offsets_table=f"offsets_{round_}"
        )
        rcfg = DatabaseRouteConfig.model_validate(
            {"from": "shop.public.*", "to": "db", "table": f"customers_{round_}"}
        )
        sinks = [
            DatabaseSink(cfg, rcfg, SinkContext("test", f"r{i}", f"test.r{i}"))
            for i in range(threads_n)
        ]
        barrier = threading.Barrier(threads_n)
        t = table()

        def run(i: int, sink: DatabaseSink, barrier: threading.Barrier, t: TableSchema) -> None:
            try:
                barrier.wait()
                sink.open()
                batch = Feed()([event(t, "c", None, row(i + 1))])
                result = sink.apply(batch)  # creates the data table too
                assert result.ok, result.failed
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING"):
            warnings.simplefilter("always")
            workers = [
                threading.Thread(target=run, args=(i, s, barrier, t)) for i, s in enumerate(sinks)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        try:
            assert errors == []
            assert [str(w.message) for w in caught] == []
            assert [r.getMessage() for r in caplog.records if r.levelname != "INFO"] == []
            assert len(rows_of(sinks[0], f"customers_{round_}")) == threads_n
            for i, sink in enumerate(sinks):  # the offsets table is usable by every route
                assert sink.apply([], {("shop.public.customers", 0): i + 1}).ok
                assert sink.committed_offsets(f"test.r{i}", [("shop.public.customers", 0)]) == {
                    ("shop.public.customers", 0): i + 1
                }
        finally:
            for sink in sinks:
                sink.close()
