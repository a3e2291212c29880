"""The demo's four source databases and two target databases: DDL, seed data, connections."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "ACTIVITY_DB",
    "ANALYTICS_DB",
    "BILLING_DB",
    "COUNTRIES",
    "INVENTORY_DB",
    "ORDERS_DB",
    "REPORTING_DB",
    "SOURCES",
    "SourceSpec",
    "TableSpec",
    "create_sources",
    "create_targets",
    "maria_conn",
    "pg_conn",
]

ORDERS_DB = "orders"
BILLING_DB = "billing"
INVENTORY_DB = "inventory"
ACTIVITY_DB = "activity"
ANALYTICS_DB = "analytics"
REPORTING_DB = "reporting"

COUNTRIES = [
    ("Germany", "Berlin"),
    ("France", "Lyon"),
    ("Netherlands", "Utrecht"),
    ("Spain", "Valencia"),
    ("Italy", "Milan"),
    ("Poland", "Krakow"),
]
INDUSTRIES = ["Technology", "Retail", "Banking", "Agriculture", "Other"]
COMPANY_WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"]
COMPANY_KINDS = ["GmbH", "SA", "BV", "SL", "SpA", "Ltd"]
PRODUCT_WORDS = ["Widget", "Gadget", "Sprocket", "Bracket", "Valve", "Sensor", "Cable", "Hinge"]
WAREHOUSES = ["AMS", "BER", "MAD"]
PAGES = ["/", "/pricing", "/docs", "/cart", "/checkout", "/account"]


@dataclass(frozen=True)
class TableSpec:
    """One captured table: its name, key columns and the DDL that creates it."""

    name: str
    key: tuple[str, ...]
    ddl: str


@dataclass(frozen=True)
class SourceSpec:
    """One demo source: bridge source name, engine, database and tables."""

    name: str
    engine: str  # "postgres" | "mariadb"
    database: str
    tables: tuple[TableSpec, ...]
    description: str

    def topic(self, table: str) -> str:
        namespace = "public" if self.engine == "postgres" else self.database
        return f"{self.name}.{namespace}.{table}"

    def qualified(self, table: str) -> str:
        """`schema.table` (Postgres) or `database.table` (MariaDB) as the source config lists it."""
        return f"public.{table}" if self.engine == "postgres" else f"{self.database}.{table}"

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)


_ORDERS = SourceSpec(
    name="orders",
    engine="postgres",
    database=ORDERS_DB,
    description="web shop: customers and their orders",
    tables=(
        TableSpec(
            "customers",
            ("id",),
            """CREATE TABLE customers (
                id integer PRIMARY KEY,
                name text NOT NULL,
                email text NOT NULL DEFAULT '',
                country text NOT NULL,
                city text,
                industry text,
                created_at timestamptz NOT NULL DEFAULT now()
            )""",
        ),
        TableSpec(
            "orders",
            ("id",),
            """CREATE TABLE orders (
                id integer PRIMARY KEY,
                customer_id integer NOT NULL REFERENCES customers (id),
                status text NOT NULL,
                total numeric(12, 2) NOT NULL,
                currency char(3) NOT NULL,
                placed_on date NOT NULL,
                updated_at timestamptz NOT NULL
            )""",
        ),
    ),
)

_BILLING = SourceSpec(
    name="billing",
    engine="postgres",
    database=BILLING_DB,
    description="invoicing: invoices and payments",
    tables=(
        TableSpec(
            "invoices",
            ("id",),
            """CREATE TABLE invoices (
                id integer PRIMARY KEY,
                order_id integer NOT NULL,
                amount numeric(12, 2) NOT NULL,
                status text NOT NULL,
                due_on date NOT NULL,
                paid boolean NOT NULL
            )""",
        ),
        TableSpec(
            "payments",
            ("id",),
            """CREATE TABLE payments (
                id integer PRIMARY KEY,
                invoice_id integer NOT NULL,
                amount numeric(12, 2) NOT NULL,
                method text NOT NULL,
                received_at timestamptz NOT NULL
            )""",
        ),
    ),
)

_INVENTORY = SourceSpec(
    name="inventory",
    engine="mariadb",
    database=INVENTORY_DB,
    description="warehouse stock: products and stock levels",
    tables=(
        TableSpec(
            "products",
            ("sku",),
            """CREATE TABLE products (
                sku varchar(32) NOT NULL PRIMARY KEY,
                name varchar(120) NOT NULL,
                category varchar(40) NOT NULL,
                price decimal(10, 2) NOT NULL,
                updated_at datetime(6) NOT NULL
            ) ENGINE=InnoDB""",
        ),
        TableSpec(
            "stock",
            ("warehouse", "sku"),
            """CREATE TABLE stock (
                warehouse char(3) NOT NULL,
                sku varchar(32) NOT NULL,
                quantity int NOT NULL,
                PRIMARY KEY (warehouse, sku)
            ) ENGINE=InnoDB""",
        ),
    ),
)

_ACTIVITY = SourceSpec(
    name="activity",
    engine="mariadb",
    database=ACTIVITY_DB,
    description="customer activity: sessions and page views",
    tables=(
        TableSpec(
            "sessions",
            ("id",),
            """CREATE TABLE sessions (
                id bigint NOT NULL PRIMARY KEY,
                customer_id int NOT NULL,
                device varchar(16) NOT NULL,
                page_views int NOT NULL,
                started_at datetime(6) NOT NULL
            ) ENGINE=InnoDB""",
        ),
        TableSpec(
            "page_views",
            ("id",),
            """CREATE TABLE page_views (
                id bigint NOT NULL PRIMARY KEY,
                session_id bigint NOT NULL,
                path varchar(64) NOT NULL,
                duration_ms int NOT NULL,
                viewed_at datetime(6) NOT NULL
            ) ENGINE=InnoDB""",
        ),
    ),
)

#: The four sources, in display order.
SOURCES: tuple[SourceSpec, ...] = (_ORDERS, _BILLING, _INVENTORY, _ACTIVITY)


# -- connections --------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_conn(dsn: str) -> Iterator[Any]:
    """An autocommit psycopg connection."""
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def maria_conn(service: Any, database: str | None = None) -> Iterator[Any]:
    """An autocommit PyMySQL connection to the demo's MariaDB server."""
    conn = service.connect(database)
    try:
        yield conn
    finally:
        conn.close()


# -- seed data ----------------------------------------------------------------------------------


def utcnow() -> dt.datetime:
    """Now in UTC, microsecond precision (the databases keep microseconds)."""
    return dt.datetime.now(dt.UTC)


def money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)).scaleb(-2)


def company(rng: random.Random, n: int) -> str:
    return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)} #{n}"


@dataclass
class SeedCounts:
    """Highest ids used by the seed, so the traffic generator continues from there."""

    ids: dict[str, int] = field(default_factory=dict)


def customer_row(rng: random.Random, cid: int) -> tuple[Any, ...]:
    country, city = rng.choice(COUNTRIES)
    name = company(rng, cid)
    email = f"contact{cid}@{name.split()[0].lower()}.example"
    return (cid, name, email, country, city, rng.choice(INDUSTRIES), utcnow())


def order_row(rng: random.Random, oid: int, customer_id: int) -> tuple[Any, ...]:
    # One in five orders is "high value" (>= 1000), the notification route's filter.
    total = money(rng, 1000, 5000) if rng.random() < 0.2 else money(rng, 20, 900)
    placed = dt.date.today() - dt.timedelta(days=rng.randint(0, 30))
    return (oid, customer_id, "new", total, "EUR", placed, utcnow())


def invoice_row(rng: random.Random, iid: int, order_id: int) -> tuple[Any, ...]:
    due = dt.date.today() + dt.timedelta(days=rng.choice((14, 30, 45)))
    return (iid, order_id, money(rng, 20, 4000), "open", due, False)


def product_row(rng: random.Random, n: int) -> tuple[Any, ...]:
    word = rng.choice(PRODUCT_WORDS)
    sku = f"{word[:3].upper()}-{n:05d}"
    return (sku, f"{word} {n}", word.lower(), money(rng, 2, 300), utcnow().replace(tzinfo=None))


def session_row(rng: random.Random, sid: int) -> tuple[Any, ...]:
    device = rng.choice(("desktop", "mobile", "tablet"))
    return (sid, rng.randint(1, 40), device, 0, utcnow().replace(tzinfo=None))


def page_view_row(rng: random.Random, pid: int, sid: int) -> tuple[Any, ...]:
    return (pid, sid, rng.choice(PAGES), rng.randint(200, 60000), utcnow().replace(tzinfo=None))


INSERT = {
    "customers": "INSERT INTO customers (id, name, email, country, city, industry, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
    "orders": "INSERT INTO orders (id, customer_id, status, total, currency, placed_on, "
    "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
    "invoices": "INSERT INTO invoices (id, order_id, amount, status, due_on, paid) "
    "VALUES (%s, %s, %s, %s, %s, %s)",
    "payments": "INSERT INTO payments (id, invoice_id, amount, method, received_at) "
    "VALUES (%s, %s, %s, %s, %s)",
    "products": "INSERT INTO products (sku, name, category, price, updated_at) "
    "VALUES (%s, %s, %s, %s, %s)",
    "stock": "INSERT INTO stock (warehouse, sku, quantity) VALUES (%s, %s, %s)",
    "sessions": "INSERT INTO sessions (id, customer_id, device, page_views, started_at) "
    "VALUES (%s, %s, %s, %s, %s)",
    "page_views": "INSERT INTO page_views (id, session_id, path, duration_ms, viewed_at) "
    "VALUES (%s, %s, %s, %s, %s)",
}


def _seed_orders(cur: Any, rng: random.Random, seed: SeedCounts, scale: int) -> None:
    customers = [customer_row(rng, i) for i in range(1, 4 * scale + 1)]
    cur.executemany(INSERT["customers"], customers)
    orders = [order_row(rng, i, rng.randint(1, len(customers))) for i in range(1, 8 * scale + 1)]
    cur.executemany(INSERT["orders"], orders)
    seed.ids["customers"] = len(customers)
    seed.ids["orders"] = len(orders)


def _seed_billing(cur: Any, rng: random.Random, seed: SeedCounts, scale: int) -> None:
    invoices = [invoice_row(rng, i, i) for i in range(1, 6 * scale + 1)]
    cur.executemany(INSERT["invoices"], invoices)
    payments = [
        (i, i, invoices[i - 1][2], rng.choice(("card", "sepa", "wire")), utcnow())
        for i in range(1, 2 * scale + 1)
    ]
    cur.executemany(INSERT["payments"], payments)
    cur.execute("UPDATE invoices SET status = 'paid', paid = true WHERE id <= %s", (len(payments),))
    seed.ids["invoices"] = len(invoices)
    seed.ids["payments"] = len(payments)


def _seed_inventory(cur: Any, rng: random.Random, seed: SeedCounts, scale: int) -> None:
    products = [product_row(rng, i) for i in range(1, 5 * scale + 1)]
    cur.executemany(INSERT["products"], products)
    stock = [(w, p[0], rng.randint(0, 500)) for p in products for w in WAREHOUSES[:2]]
    cur.executemany(INSERT["stock"], stock)
    seed.ids["products"] = len(products)


def _seed_activity(cur: Any, rng: random.Random, seed: SeedCounts, scale: int) -> None:
    sessions = [session_row(rng, i) for i in range(1, 3 * scale + 1)]
    cur.executemany(INSERT["sessions"], sessions)
    views = [page_view_row(rng, i, rng.randint(1, len(sessions))) for i in range(1, 8 * scale + 1)]
    cur.executemany(INSERT["page_views"], views)
    cur.execute(
        "UPDATE sessions s SET page_views = "
        "(SELECT COUNT(*) FROM page_views v WHERE v.session_id = s.id)"
    )
    seed.ids["sessions"] = len(sessions)
    seed.ids["page_views"] = len(views)


_SEEDERS = {
    ORDERS_DB: _seed_orders,
    BILLING_DB: _seed_billing,
    INVENTORY_DB: _seed_inventory,
    ACTIVITY_DB: _seed_activity,
}


def create_sources(
    pg: Any, maria: Any, rng: random.Random, scale: int = 5, skip: tuple[str, ...] = ()
) -> SeedCounts:
    """Create the four source databases with their tables and seed rows; returns the ids used.

    ``pg``/``maria`` are the demo's `PostgresService` and `MariaDBService`; ``scale`` sizes the
    seed (scale 5: 20 customers, 40 orders, 30 invoices, 25 products, 15 sessions...).
    """
    seed = SeedCounts()
    for spec in SOURCES:
        if spec.name in skip:  # created elsewhere (the MongoDB variant of `activity`)
            continue
        if spec.engine == "postgres":
            dsn = pg.create_database(spec.database)
            with pg_conn(dsn) as conn, conn.cursor() as cur:
                for table in spec.tables:
                    cur.execute(table.ddl)
                _SEEDERS[spec.database](cur, rng, seed, scale)
        else:
            maria.create_database(spec.database)
            with maria_conn(maria, spec.database) as conn, conn.cursor() as cur:
                for table in spec.tables:
                    cur.execute(table.ddl)
                _SEEDERS[spec.database](cur, rng, seed, scale)
    return seed


def create_targets(pg: Any, maria: Any) -> tuple[str, str]:
    """Create the empty target databases (analytics on Postgres, reporting on MariaDB).

    Their tables are created by the database sink (``schema_evolution = "basic"``). Returns
    the SQLAlchemy URLs of both.
    """
    pg.create_database(ANALYTICS_DB)
    maria.create_database(REPORTING_DB)
    return sqlalchemy_pg_url(pg.dsn_for(ANALYTICS_DB)), sqlalchemy_maria_url(maria, REPORTING_DB)


def sqlalchemy_pg_url(dsn: str) -> str:
    return "postgresql+psycopg://" + dsn.split("://", 1)[1]


def sqlalchemy_maria_url(maria: Any, database: str) -> str:
    return "mysql+pymysql://" + maria.dsn_for(database).split("://", 1)[1]
