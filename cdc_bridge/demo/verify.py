"""Checks every demo target against its source, value by value, with the route's mapping applied.

The expected shape of each target is written out here, independently of the route engine: which
columns a route drops, renames or adds, which rows its filter keeps, how deletes look. Values
are compared after normalising what the databases legitimately change (a Postgres ``numeric``
read back from SQLite as a float, a ``datetime`` as a string, a boolean as 0/1).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

__all__ = [
    "CHECKS",
    "CheckResult",
    "Echoes",
    "Endpoints",
    "TableCheck",
    "compare_rows",
    "compare_target",
    "mongo_checks",
    "normalise",
    "verify_all",
]

Row = dict[str, Any]
Key = tuple[Any, ...]


# -- values ---------------------------------------------------------------------------------------


def _to_decimal(v: Any) -> Decimal | None:
    try:
        if isinstance(v, float):
            return Decimal(repr(v)).normalize()
        return Decimal(str(v)).normalize()
    except (InvalidOperation, ValueError):
        return None


def _to_utc_naive(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v


def normalise(expected: Any, actual: Any) -> tuple[Any, Any]:
    """Bring a target value into the source value's type (and both into one canonical form)."""
    if expected is None or actual is None:
        return expected, actual
    if isinstance(expected, bool):
        if isinstance(actual, str):
            actual = actual.strip().lower() in ("1", "true", "t", "yes")
        return int(expected), int(bool(actual))
    if isinstance(expected, int | float | Decimal) and not isinstance(expected, bool):
        return _to_decimal(expected), _to_decimal(actual)
    if isinstance(expected, dt.datetime):
        if isinstance(actual, str):
            try:
                actual = dt.datetime.fromisoformat(actual.replace("Z", "+00:00"))
            except ValueError:
                return expected, actual
        if isinstance(actual, dt.datetime):
            return _to_utc_naive(expected), _to_utc_naive(actual)
        return expected, actual
    if isinstance(expected, dt.date):
        if isinstance(actual, dt.datetime):
            actual = actual.date()
        elif isinstance(actual, str):
            try:
                actual = dt.date.fromisoformat(actual[:10])
            except ValueError:
                return expected, actual
        return expected, actual
    if isinstance(expected, str):
        return expected.rstrip(), str(actual).rstrip()  # char(n) padding
    return expected, actual


def compare_rows(
    expected: Mapping[Key, Row], actual: Mapping[Key, Row], limit: int = 3
) -> tuple[int, int, int, list[str]]:
    """(missing, extra, different, examples) between two keyed row sets."""
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    different = 0
    examples: list[str] = []
    for k in missing[:limit]:
        examples.append(f"missing {_fmt_key(k)}")
    for k in extra[:limit]:
        examples.append(f"unexpected {_fmt_key(k)}")
    for k, want in expected.items():
        got = actual.get(k)
        if got is None:
            continue
        diffs = []
        for col, value in want.items():
            if col not in got:
                diffs.append(f"{col}: column missing")
                continue
            a, b = normalise(value, got[col])
            if a != b:
                diffs.append(f"{col}: {value!r} != {got[col]!r}")
        if diffs:
            different += 1
            if len(examples) < limit * 3:
                examples.append(f"{_fmt_key(k)} " + "; ".join(diffs[:3]))
    return len(missing), len(extra), different, examples


def _fmt_key(k: Key) -> str:
    return "key=" + ",".join(str(x) for x in k)


# -- where things are -------------------------------------------------------------------------


@dataclass
class Endpoints:
    """How to reach the demo's sources and targets (filled by the demo runner)."""

    pg: Any  # PostgresService
    maria: Any  # MariaDBService
    mart_path: str
    kafka_bootstrap: str
    salesforce: Any  # SalesforceEmulator
    mongo_uri: str | None = None  # set: the `activity` source is MongoDB
    #: customer id -> (name, industry) of the reps' last Account edit (the reverse direction)
    rep_edits: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    echoes: Echoes | None = None  # what the two-way sync's echo suppression saw
    echo_topic: str = "salesforce.Account"  # the demo's Salesforce source topic


@dataclass
class Echoes:
    """The two-way sync's echoes: ``dropped`` change events of the bridge's own Salesforce
    writes (dropped by the source, as they should be); ``passed``: such events that reached
    Kafka anyway; ``after_quiet``: events published by Salesforce or captured by any source
    during a quiet period after the routes drained (ping-pong keeps these above zero)."""

    dropped: int = 0
    passed: int = 0
    after_quiet: int = 0
    quiet_s: float = 0.0


def _pg_rows(pg: Any, database: str, table: str) -> list[Row] | None:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(pg.dsn_for(database), autocommit=True, row_factory=dict_row) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f'public."{table}"',)).fetchone()
        if exists is None or next(iter(exists.values())) is None:
            return None
        return list(conn.execute(f'SELECT * FROM public."{table}"').fetchall())


def _maria_rows(maria: Any, database: str, table: str) -> list[Row] | None:
    import pymysql
    import pymysql.cursors

    conn = pymysql.connect(
        **maria.connect_kwargs(database), autocommit=True, cursorclass=pymysql.cursors.DictCursor
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) AS n FROM information_schema.tables "
                "WHERE table_schema = %s AND table_name = %s",
                (database, table),
            )
            got = cur.fetchone()
            if not got or not got["n"]:
                return None
            cur.execute(f"SELECT * FROM `{table}`")
            return list(cur.fetchall())
    finally:
        conn.close()


def _sqlite_rows(path: str, table: str) -> list[Row] | None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        got = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if got is None:
            return None
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]


def _topic_rows(bootstrap: str, topic: str) -> list[tuple[Any, Any]] | None:
    """Every (key, value) of ``topic`` in partition order, read to the end of each partition."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "demo-verify-" + uuid.uuid4().hex[:8],
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        out: list[tuple[Any, Any]] = []
        for p in sorted(meta.partitions):
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            while True:
                msg = consumer.poll(10)
                if msg is None:
                    raise TimeoutError(f"reading {topic}[{p}] timed out")
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    raise RuntimeError(f"reading {topic}[{p}]: {err.str()}")
                key, value = msg.key(), msg.value()
                out.append(
                    (
                        orjson.loads(key) if key else None,
                        orjson.loads(value) if value is not None else None,
                    )
                )
        return out
    finally:
        consumer.close()


# -- what each target should hold -------------------------------------------------------------


@dataclass(frozen=True)
class TableCheck:
    """One target table (or SObject, or topic) and the source table it must equal.

    ``include``/``exclude``/``rename``/``constants``: the route's mapping. ``keep``: the route's
    filter (rows that must be present). ``soft_delete``: the soft-delete column (deleted rows
    stay with it set; only live rows are compared, and none may be live without a source row).
    """

    target: str  # display name of the target (one of the six)
    sink: str  # "warehouse", "reporting", "mart", "salesforce", "topic"
    table: str  # table, SObject or topic name in the target
    source: str  # source name (orders, billing, inventory, activity)
    source_table: str
    key: tuple[str, ...]
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    keep: Callable[[Row], bool] | None = None
    soft_delete: str | None = None

    def expected_row(self, row: Row) -> Row:
        out = {
            self.rename.get(k, k): v
            for k, v in row.items()
            if (self.include is None or k in self.include) and k not in self.exclude
        }
        out.update(self.constants)
        return out

    def target_key(self) -> tuple[str, ...]:
        return tuple(self.rename.get(k, k) for k in self.key)


WAREHOUSE = "warehouse (Postgres)"
REPORTING = "reporting (MariaDB)"
MART = "data mart (SQLite)"
ACCOUNTS = "Salesforce Accounts"
OPPORTUNITIES = "Salesforce Opportunities"
NOTIFY = "notify topic (Kafka)"
REVERSE = "shop customers (Postgres)"
ECHO = "two-way echoes"

NOTIFY_TOPIC = "notifications.high-value-orders"

CHECKS: tuple[TableCheck, ...] = (
    TableCheck(ACCOUNTS, "salesforce", "Account", "orders", "customers", ("id",)),
    TableCheck(OPPORTUNITIES, "salesforce", "Opportunity", "orders", "orders", ("id",)),
    *(
        TableCheck(
            WAREHOUSE,
            "warehouse",
            f"{source}_{table}",
            source,
            table,
            ("id",),
            exclude=("email",),
            constants={"loaded_by": "cdc-bridge"},
            soft_delete="is_deleted",
        )
        for source, table in (
            ("orders", "customers"),
            ("orders", "orders"),
            ("billing", "invoices"),
            ("billing", "payments"),
        )
    ),
    TableCheck(REPORTING, "reporting", "products", "inventory", "products", ("sku",)),
    TableCheck(
        REPORTING,
        "reporting",
        "stock",
        "inventory",
        "stock",
        ("warehouse", "sku"),
        rename={"quantity": "on_hand"},
    ),
    TableCheck(REPORTING, "reporting", "invoices", "billing", "invoices", ("id",)),
    TableCheck(MART, "mart", "sessions", "activity", "sessions", ("id",)),
    TableCheck(
        MART,
        "mart",
        "page_views",
        "activity",
        "page_views",
        ("id",),
        keep=lambda r: r["duration_ms"] >= 1000,
    ),
    TableCheck(
        MART,
        "mart",
        "products",
        "inventory",
        "products",
        ("sku",),
        include=("sku", "name", "category", "price"),
    ),
    TableCheck(
        NOTIFY,
        "topic",
        NOTIFY_TOPIC,
        "orders",
        "orders",
        ("id",),
        include=("id", "customer_id", "total", "currency", "status"),
        constants={"kind": "high_value_order"},
        keep=lambda r: r["total"] >= 1000,
    ),
    # The reverse direction: the reps' last edit of every Account is in the shop's customers.
    TableCheck(REVERSE, "reverse", "customers", "salesforce", "Account", ("id",)),
    # Two-way sync: no echo of the bridge's own writes, nothing flows once traffic stops.
    TableCheck(ECHO, "echo", "Account <-> customers", "salesforce", "Account", ("Id",)),
)


def mongo_checks(checks: Iterable[TableCheck] = CHECKS) -> tuple[TableCheck, ...]:
    """``checks`` with the `activity` ones for MongoDB documents: ``_id`` becomes ``id`` and
    only the scalar fields the routes include reach the mart."""
    from cdc_bridge.demo.mongo import FIELDS

    out = []
    for c in checks:
        if c.source == "activity":
            c = replace(c, key=("_id",), include=FIELDS[c.source_table], rename={"_id": "id"})
        out.append(c)
    return tuple(out)


#: The six targets and the two-way checks, in display order.
TARGETS = (ACCOUNTS, OPPORTUNITIES, WAREHOUSE, REPORTING, MART, NOTIFY, REVERSE, ECHO)


@dataclass
class CheckResult:
    """The outcome of one :class:`TableCheck`."""

    check: TableCheck
    source_rows: int
    target_rows: int
    missing: int = 0
    extra: int = 0
    different: int = 0
    soft_deleted: int = 0
    examples: list[str] = field(default_factory=list)
    error: str | None = None
    note: str = ""  # said after "match" (e.g. how many echoes were dropped)

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.missing or self.extra or self.different)


def _source_rows(ep: Endpoints, check: TableCheck) -> list[Row]:
    from cdc_bridge.demo.schema import SOURCES

    if check.source == "salesforce":
        return []  # the reverse checks read Salesforce themselves
    spec = next(s for s in SOURCES if s.name == check.source)
    if check.source == "activity" and ep.mongo_uri:
        from cdc_bridge.demo.mongo import MongoActivity

        conn = MongoActivity(ep.mongo_uri)
        try:
            return conn.documents(check.source_table)
        finally:
            conn.close()
    if spec.engine == "postgres":
        rows = _pg_rows(ep.pg, spec.database, check.source_table)
    else:
        rows = _maria_rows(ep.maria, spec.database, check.source_table)
    if rows is None:
        raise RuntimeError(f"source table {spec.database}.{check.source_table} is missing")
    return rows


def _keyed(rows: Iterable[Row], key: tuple[str, ...]) -> dict[Key, Row]:
    return {tuple(_key_value(r[k]) for k in key): r for r in rows}


def _key_value(v: Any) -> Any:
    return v.rstrip() if isinstance(v, str) else v


def _check_database(ep: Endpoints, check: TableCheck, source: list[Row]) -> CheckResult:
    from cdc_bridge.demo.schema import ANALYTICS_DB, REPORTING_DB

    if check.sink == "warehouse":
        got = _pg_rows(ep.pg, ANALYTICS_DB, check.table)
    elif check.sink == "reporting":
        got = _maria_rows(ep.maria, REPORTING_DB, check.table)
    else:
        got = _sqlite_rows(ep.mart_path, check.table)
    return compare_target(check, source, got)


def compare_target(check: TableCheck, source: list[Row], got: list[Row] | None) -> CheckResult:
    """Compare a database target's rows (None: no such table) with the source rows or
    documents, through the route's mapping, filter and soft-delete rule."""
    wanted = [check.expected_row(r) for r in source if check.keep is None or check.keep(r)]
    expected = _keyed(wanted, check.target_key())
    if got is None:
        return CheckResult(
            check,
            len(expected),
            0,
            missing=len(expected),
            error=f"table {check.table} does not exist in the target",
        )
    soft_deleted = 0
    live = got
    revived: set[Key] = set()
    if check.soft_delete:
        live = [r for r in got if not r.get(check.soft_delete)]
        soft_deleted = len(got) - len(live)
        dead_keys = set(_keyed([r for r in got if r.get(check.soft_delete)], check.target_key()))
        revived = dead_keys & set(expected)
    actual = _keyed(live, check.target_key())
    missing, extra, different, examples = compare_rows(expected, actual)
    result = CheckResult(
        check, len(expected), len(live), missing, extra, different, soft_deleted, examples
    )
    if check.soft_delete and revived:
        result.examples.append(f"{len(revived)} live source row(s) marked deleted in the target")
    return result


def _check_topic(ep: Endpoints, check: TableCheck, source: list[Row]) -> CheckResult:
    wanted = [check.expected_row(r) for r in source if check.keep is None or check.keep(r)]
    expected = _keyed(wanted, check.target_key())
    records = _topic_rows(ep.kafka_bootstrap, check.table)
    if records is None:
        return CheckResult(
            check, len(expected), 0, missing=len(expected), error="topic does not exist"
        )
    state: dict[Key, Row] = {}
    for key, value in records:  # the topic read as a table: last value per key, tombstones drop
        k = tuple(key[c] for c in check.target_key())
        if value is None:
            state.pop(k, None)
        else:
            state[k] = value
    missing, extra, different, examples = compare_rows(expected, state)
    return CheckResult(check, len(expected), len(state), missing, extra, different, 0, examples)


def _check_accounts(ep: Endpoints, check: TableCheck, source: list[Row]) -> CheckResult:
    expected = {
        (str(r["id"]),): {
            "Name": r["name"],
            "BillingCountry": r["country"],
            "BillingCity": r["city"],
            "Industry": r["industry"],
        }
        for r in source
    }
    records = ep.salesforce.records("Account")
    actual = {(str(r.get("External_Id__c")),): r for r in records if r.get("External_Id__c")}
    missing, extra, different, examples = compare_rows(expected, actual)
    return CheckResult(check, len(expected), len(actual), missing, extra, different, 0, examples)


def _check_opportunities(ep: Endpoints, check: TableCheck, source: list[Row]) -> CheckResult:
    accounts = {
        str(r["External_Id__c"]): r["Id"]
        for r in ep.salesforce.records("Account")
        if r.get("External_Id__c")
    }
    expected = {
        (str(r["id"]),): {
            "Name": f"Order #{r['id']}",
            "StageName": "Closed Won",
            "CloseDate": r["placed_on"],
            "Amount": r["total"],
            "Description": r["status"],
            "AccountId": accounts.get(str(r["customer_id"]), "<no Account>"),
        }
        for r in source
    }
    records = ep.salesforce.records("Opportunity")
    actual = {(str(r.get("External_Id__c")),): r for r in records if r.get("External_Id__c")}
    missing, extra, different, examples = compare_rows(expected, actual)
    return CheckResult(check, len(expected), len(actual), missing, extra, different, 0, examples)


def _check_reverse(ep: Endpoints, check: TableCheck) -> CheckResult:
    """Every Account a rep edited: its customer row holds the rep's last name and industry,
    and the Account itself still does (the edit was not overwritten on its way back)."""
    from cdc_bridge.demo.schema import ORDERS_DB

    expected = {
        (cid,): {"name": name, "industry": industry}
        for cid, (name, industry) in ep.rep_edits.items()
    }
    accounts = {
        str(r["External_Id__c"]): r
        for r in ep.salesforce.records("Account")
        if r.get("External_Id__c")
    }
    rows = _pg_rows(ep.pg, ORDERS_DB, "customers") or []
    actual = {(r["id"],): r for r in rows if (r["id"],) in expected}
    missing, extra, different, examples = compare_rows(expected, actual)
    for cid, (name, industry) in ep.rep_edits.items():
        acc = accounts.get(str(cid))
        if acc is None or (acc.get("Name"), acc.get("Industry")) != (name, industry):
            different += 1
            examples.append(f"Account of customer {cid} no longer holds the rep's edit")
    return CheckResult(check, len(expected), len(actual), missing, extra, different, 0, examples)


def _check_echo(ep: Endpoints, check: TableCheck) -> CheckResult:
    """Zero echoes: none of the bridge's own writes came back through Salesforce (its
    `salesforce.Account` topic holds no event with the bridge's client in changeOrigin), and
    nothing flowed during the quiet period after draining (no ping-pong)."""
    echoes = ep.echoes or Echoes()
    records = _topic_rows(ep.kafka_bootstrap, ep.echo_topic) or []
    passed = 0
    for _key, value in records:
        event = (value or {}).get("payload", value) or {}
        origin = str((event.get("source") or {}).get("change_origin") or "")
        if "client=cdc-bridge" in origin.split(";"):  # the crm sink's call_options_client
            passed += 1
    echoes.passed = passed
    result = CheckResult(check, 0, passed + echoes.after_quiet, extra=passed + echoes.after_quiet)
    result.note = f"0 echoes, {echoes.dropped} dropped"
    if passed:
        result.examples.append(f"{passed} event(s) of the bridge's own writes on Kafka")
    if echoes.after_quiet:
        result.examples.append(
            f"{echoes.after_quiet} event(s) in {echoes.quiet_s:.0f} s after draining (ping-pong)"
        )
    return result


def verify_one(ep: Endpoints, check: TableCheck) -> CheckResult:
    """Compare one target table with its source; errors become a failed result, not a crash."""
    try:
        if check.sink == "reverse":
            return _check_reverse(ep, check)
        if check.sink == "echo":
            return _check_echo(ep, check)
        source = _source_rows(ep, check)
        if check.sink == "salesforce":
            if check.table == "Account":
                return _check_accounts(ep, check, source)
            return _check_opportunities(ep, check, source)
        if check.sink == "topic":
            return _check_topic(ep, check, source)
        return _check_database(ep, check, source)
    except Exception as exc:
        return CheckResult(check, 0, 0, error=f"{type(exc).__name__}: {exc}")


def verify_all(ep: Endpoints, checks: Iterable[TableCheck] = CHECKS) -> list[CheckResult]:
    return [verify_one(ep, c) for c in checks]
