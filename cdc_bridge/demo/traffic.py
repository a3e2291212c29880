"""The demo's workload: inserts, updates, deletes, key changes and schema changes on every source.

One thread per source writes small transactions at ``rate / 4`` operations per second. Each run
also makes, once, a primary-key change (an invoice renumbered in ``billing``, a product SKU
renamed in ``inventory``, which changes the composite key of its stock rows too) and a schema
change (``ALTER TABLE ... ADD COLUMN`` on ``orders.customers`` and ``inventory.products``), at
fixed points of the run. The generator only writes changes every target can represent: order
totals never change (the notification route filters on them), and only customers that never
had an order are deleted (Salesforce Opportunities look their Account up).

With the Salesforce emulator given, a fifth worker plays sales reps editing Accounts in the
Salesforce UI (the emulator's UI test API: another commitUser, no changeOrigin): names and
industries of odd-numbered customers, each once, while the shop itself only updates even ones,
so the two directions of the two-way sync never edit the same record at the same time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdc_bridge.demo import schema
from cdc_bridge.demo.schema import INSERT, WAREHOUSES, SeedCounts

__all__ = ["Tally", "Traffic"]

log = logging.getLogger(__name__)

#: The demo's Salesforce source (reps' Account edits).
REPS = "salesforce"
STATUS_NEXT = {"new": "paid", "paid": "shipped", "shipped": "delivered"}
SEGMENTS = ["smb", "mid-market", "enterprise"]


@dataclass
class Tally:
    """What the generator did to one source."""

    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    key_changes: int = 0
    schema_changes: int = 0
    errors: int = 0

    @property
    def changes(self) -> int:
        """Transactions written (one may change several rows: a payment also marks its
        invoice paid, a new product gets stock rows; a key change counts once)."""
        return self.inserts + self.updates + self.deletes + self.key_changes


@dataclass
class _Schedule:
    """When (seconds into the run) the one-off changes happen."""

    key_change_at: float
    schema_change_at: float


@dataclass
class _Worker:
    name: str
    ops: list[tuple[float, Callable[[Any], str]]]
    connect: Callable[[], Any]
    one_offs: list[tuple[str, float, Callable[[Any], str]]] = field(default_factory=list)


class Traffic:
    """Writes continuous changes to the four demo sources until stopped (or for ``duration``)."""

    def __init__(
        self,
        pg: Any,
        maria: Any,
        seed: SeedCounts,
        *,
        rate: float = 20.0,
        duration: float | None = 60.0,
        random_seed: int = 8,
        mongo: Any = None,
        salesforce: Any = None,
    ) -> None:
        """``mongo``: (uri, ActivityState) when the `activity` source is MongoDB;
        ``salesforce``: the emulator, for the reps' Account edits (source `salesforce`)."""
        self.pg = pg
        self.salesforce = salesforce
        self.seed_customers = seed.ids.get("customers", 0)
        #: customer id -> (name, industry) of the last rep edit of its Account
        self.rep_edits: dict[int, tuple[str, str]] = {}
        self.mongo = mongo
        self.maria = maria
        self.rate = max(rate, 0.5)
        self.duration = duration
        self.ids = dict(seed.ids)
        self._ids_lock = threading.Lock()
        self.rng = random.Random(random_seed)
        self.tallies: dict[str, Tally] = {s.name: Tally() for s in schema.SOURCES}
        if salesforce is not None:
            self.tallies[REPS] = Tally()
        self.notes: list[str] = []
        # monotonic time of each source's last committed write (for the dashboard's lag)
        self.last_write: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.stopped_at: float | None = None
        self.customer_segment = False
        self.product_weight = False
        # Customers that never had an order: the only ones the generator deletes.
        self._orderless: set[int] = set()
        # Customers added during the run that got an order (never deleted; reps may edit them).
        self._with_orders: set[int] = set()
        if duration is None:
            self.schedule = _Schedule(key_change_at=15.0, schema_change_at=30.0)
        else:
            self.schedule = _Schedule(key_change_at=duration * 0.3, schema_change_at=duration * 0.5)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.monotonic()
        for worker in self._workers():
            t = threading.Thread(target=self._run, args=(worker,), name=f"traffic-{worker.name}")
            t.daemon = True
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop writing; returns when every worker finished its current transaction."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds; True once the configured duration has passed.

        With no duration (``--follow``) it only returns True after :meth:`stop`.
        """
        if self.duration is None:
            return self._stop.wait(timeout)
        end = self.started_at + self.duration
        limit = time.monotonic() + timeout if timeout is not None else end
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            pause = min(left, limit - time.monotonic())
            if pause <= 0 or self._stop.wait(pause):
                return False

    @property
    def elapsed(self) -> float:
        end = self.stopped_at or time.monotonic()
        return end - self.started_at if self.started_at else 0.0

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def note(self, text: str) -> None:
        self.notes.append(f"{self.elapsed:5.1f}s  {text}")
        log.info("traffic: %s", text)

    # -- worker loop -------------------------------------------------------------------------

    def _next_id(self, name: str) -> int:
        with self._ids_lock:
            self.ids[name] = self.ids.get(name, 0) + 1
            return self.ids[name]

    def _run(self, worker: _Worker) -> None:
        rng = random.Random(self.rng.random())
        interval = len(schema.SOURCES) / self.rate
        tally = self.tallies[worker.name]
        weights = [w for w, _ in worker.ops]
        fns = [f for _, f in worker.ops]
        pending = list(worker.one_offs)
        conn = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = worker.connect()
                now = time.monotonic() - self.started_at
                due = [p for p in pending if p[1] <= now]
                for item in due:
                    pending.remove(item)
                    kind, _at, fn = item
                    text = fn(conn)
                    if kind == "key":
                        tally.key_changes += 1
                    else:
                        tally.schema_changes += 1
                    self.note(f"{worker.name}: {text}")
                op = rng.choices(fns, weights)[0]
                kind = op(conn)
                if kind == "c":
                    tally.inserts += 1
                elif kind == "u":
                    tally.updates += 1
                elif kind == "d":
                    tally.deletes += 1
                self.last_write[worker.name] = time.monotonic()
            except Exception as exc:  # a lost connection or a race: count it, reconnect
                tally.errors += 1
                log.warning("traffic %s: %s", worker.name, exc)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                conn = None
                self._stop.wait(0.5)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        if conn is not None:
            conn.close()

    def _workers(self) -> list[_Worker]:
        pg, maria = self.pg, self.maria
        key_at, schema_at = self.schedule.key_change_at, self.schedule.schema_change_at
        return [
            _Worker(
                "orders",
                [
                    (1, self._new_customer),
                    (4, self._new_order),
                    (4, self._advance_order),
                    (1.5, self._update_customer),
                    (1, self._delete_order),
                    (0.7, self._delete_customer),
                ],
                lambda: _pg(pg.dsn_for(schema.ORDERS_DB)),
                [("schema", schema_at, self._add_segment)],
            ),
            _Worker(
                "billing",
                [
                    (3, self._new_invoice),
                    (3, self._pay_invoice),
                    (1, self._postpone_invoice),
                    (1, self._refund_payment),
                    (1, self._delete_invoice),
                ],
                lambda: _pg(pg.dsn_for(schema.BILLING_DB)),
                [("key", key_at, self._renumber_invoice)],
            ),
            _Worker(
                "inventory",
                [
                    (1.5, self._new_product),
                    (3, self._reprice),
                    (4, self._restock),
                    (1, self._delete_stock),
                    (0.5, self._delete_product),
                ],
                lambda: maria.connect(schema.INVENTORY_DB),
                [
                    ("key", key_at, self._rename_sku),
                    ("schema", schema_at, self._add_weight),
                ],
            ),
            self._activity_worker(),
            *([self._reps_worker()] if self.salesforce is not None else []),
        ]

    def _reps_worker(self) -> _Worker:
        emu = self.salesforce
        return _Worker(REPS, [(1, self._rep_edit)], lambda: _Reps(emu))

    # -- salesforce (reps in the emulator's UI) ---------------------------------------------------

    def _rep_edit(self, reps: _Reps) -> str:
        """A rep renames the Account of an odd-numbered customer and sets its industry.

        Each Account is edited once: a rep's edit travels to Postgres and comes back to
        Salesforce as the same values (the write-back whose change event is dropped as an
        echo); a second edit of the same Account within that round trip would be overwritten
        by the first one's write-back (two-way sync is last-writer-wins per hop). Only
        customers that are never deleted qualify: seed customers and those with an order.
        """
        emu = reps.emulator
        edited = set(self.rep_edits)
        odd = [
            c
            for c in (*range(1, self.seed_customers + 1), *sorted(self._with_orders.copy()))
            if c % 2 and c not in edited
        ]
        if not odd:
            return ""
        cid = self.rng.choice(odd)
        accounts = {
            r["External_Id__c"]: r["Id"] for r in emu.records("Account") if r.get("External_Id__c")
        }
        rid = accounts.get(str(cid))
        if rid is None:  # not in Salesforce yet (the snapshot is still being written)
            return ""
        name = f"{schema.company(self.rng, cid)} (edited by a rep)"
        industry = self.rng.choice(schema.INDUSTRIES)
        emu.ui_update("Account", rid, {"Name": name, "Industry": industry})
        self.rep_edits[cid] = (name, industry)
        return "u"

    def _activity_worker(self) -> _Worker:
        if self.mongo is not None:
            from cdc_bridge.demo.mongo import MongoActivity, plan_op

            uri, state = self.mongo
            lock = threading.Lock()

            def step(conn: Any) -> str:
                with lock:
                    ops = plan_op(self.rng, state)
                return str(conn.apply(ops))

            return _Worker("activity", [(1, step)], lambda: MongoActivity(uri))
        maria = self.maria
        return _Worker(
            "activity",
            [
                (2, self._new_session),
                (6, self._page_view),
                (1, self._delete_page_view),
                (0.5, self._delete_session),
            ],
            lambda: maria.connect(schema.ACTIVITY_DB),
        )

    # -- orders (Postgres) ---------------------------------------------------------------------

    def _new_customer(self, conn: Any) -> str:
        cid = self._next_id("customers")
        row = schema.customer_row(self.rng, cid)
        if self.customer_segment:
            conn.execute(
                "INSERT INTO customers (id, name, email, country, city, industry, created_at, "
                "segment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (*row, self.rng.choice(SEGMENTS)),
            )
        else:
            conn.execute(INSERT["customers"], row)
        self._orderless.add(cid)
        return "c"

    def _new_order(self, conn: Any) -> str:
        got = conn.execute("SELECT id FROM customers ORDER BY random() LIMIT 1").fetchone()
        if got is None:
            return self._new_customer(conn)
        oid = self._next_id("orders")
        self._orderless.discard(got[0])
        self._with_orders.add(got[0])
        conn.execute(INSERT["orders"], schema.order_row(self.rng, oid, got[0]))
        return "c"

    def _advance_order(self, conn: Any) -> str:
        row = conn.execute(
            "SELECT id, status FROM orders WHERE status <> 'delivered' ORDER BY random() LIMIT 1"
        ).fetchone()
        if row is None:
            return self._new_order(conn)
        conn.execute(
            "UPDATE orders SET status = %s, updated_at = %s WHERE id = %s",
            (STATUS_NEXT[row[1]], schema.utcnow(), row[0]),
        )
        return "u"

    def _update_customer(self, conn: Any) -> str:
        country, city = self.rng.choice(schema.COUNTRIES)
        # even ids only: reps edit odd ones in Salesforce (see the module docstring)
        target = "(SELECT id FROM customers WHERE id %% 2 = 0 ORDER BY random() LIMIT 1)"
        if self.customer_segment:
            conn.execute(
                f"UPDATE customers SET country = %s, city = %s, segment = %s WHERE id = {target}",
                (country, city, self.rng.choice(SEGMENTS)),
            )
        else:
            conn.execute(
                f"UPDATE customers SET country = %s, city = %s WHERE id = {target}",
                (country, city),
            )
        return "u"

    def _delete_order(self, conn: Any) -> str:
        conn.execute(
            "DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)"
        )
        return "d"

    def _delete_customer(self, conn: Any) -> str:
        if not self._orderless:
            return self._new_customer(conn)
        cid = self.rng.choice(sorted(self._orderless))
        self._orderless.discard(cid)
        conn.execute("DELETE FROM customers WHERE id = %s", (cid,))
        return "d"

    def _add_segment(self, conn: Any) -> str:
        conn.execute("ALTER TABLE customers ADD COLUMN segment text")
        self.customer_segment = True
        return "schema change: ALTER TABLE customers ADD COLUMN segment text"

    # -- billing (Postgres) --------------------------------------------------------------------

    def _new_invoice(self, conn: Any) -> str:
        iid = self._next_id("invoices")
        order_id = self.rng.randint(1, max(self.ids.get("orders", 1), 1))
        conn.execute(INSERT["invoices"], schema.invoice_row(self.rng, iid, order_id))
        return "c"

    def _pay_invoice(self, conn: Any) -> str:
        with conn.transaction():
            row = conn.execute(
                "SELECT id, amount FROM invoices WHERE NOT paid ORDER BY random() LIMIT 1"
            ).fetchone()
            if row is None:
                return self._new_invoice(conn)
            pid = self._next_id("payments")
            method = self.rng.choice(("card", "sepa", "wire"))
            conn.execute(INSERT["payments"], (pid, row[0], row[1], method, schema.utcnow()))
            conn.execute(
                "UPDATE invoices SET status = 'paid', paid = true WHERE id = %s", (row[0],)
            )
        return "c"

    def _postpone_invoice(self, conn: Any) -> str:
        conn.execute(
            "UPDATE invoices SET due_on = due_on + 14, status = 'postponed' WHERE id = "
            "(SELECT id FROM invoices WHERE NOT paid ORDER BY random() LIMIT 1)"
        )
        return "u"

    def _refund_payment(self, conn: Any) -> str:
        with conn.transaction():
            row = conn.execute(
                "SELECT id, invoice_id FROM payments ORDER BY random() LIMIT 1"
            ).fetchone()
            if row is None:
                return self._pay_invoice(conn)
            conn.execute("DELETE FROM payments WHERE id = %s", (row[0],))
            conn.execute(
                "UPDATE invoices SET status = 'refunded', paid = false WHERE id = %s", (row[1],)
            )
        return "d"

    def _delete_invoice(self, conn: Any) -> str:
        conn.execute(
            "DELETE FROM invoices WHERE id = (SELECT id FROM invoices WHERE NOT paid "
            "ORDER BY random() LIMIT 1)"
        )
        return "d"

    def _renumber_invoice(self, conn: Any) -> str:
        row = conn.execute("SELECT id FROM invoices ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return "key change skipped (no invoices)"
        new = 900_000 + row[0]
        conn.execute("UPDATE invoices SET id = %s WHERE id = %s", (new, row[0]))
        conn.execute("UPDATE payments SET invoice_id = %s WHERE invoice_id = %s", (new, row[0]))
        return f"primary-key change: invoice {row[0]} renumbered to {new}"

    # -- inventory (MariaDB) -------------------------------------------------------------------

    def _new_product(self, conn: Any) -> str:
        n = self._next_id("products")
        row = schema.product_row(self.rng, n)
        with conn.cursor() as cur:
            if self.product_weight:
                cur.execute(
                    "INSERT INTO products (sku, name, category, price, updated_at, weight_g) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (*row, self.rng.randint(10, 5000)),
                )
            else:
                cur.execute(INSERT["products"], row)
            for w in WAREHOUSES[: self.rng.randint(1, len(WAREHOUSES))]:
                cur.execute(INSERT["stock"], (w, row[0], self.rng.randint(0, 500)))
        conn.commit()
        return "c"

    def _reprice(self, conn: Any) -> str:
        factor = self.rng.choice(("0.95", "1.05", "1.10", "0.90"))
        now = schema.utcnow().replace(tzinfo=None)
        with conn.cursor() as cur:
            if self.product_weight:
                cur.execute(
                    "UPDATE products SET price = ROUND(price * %s, 2), updated_at = %s, "
                    "weight_g = %s ORDER BY RAND() LIMIT 1",
                    (factor, now, self.rng.randint(10, 5000)),
                )
            else:
                cur.execute(
                    "UPDATE products SET price = ROUND(price * %s, 2), updated_at = %s "
                    "ORDER BY RAND() LIMIT 1",
                    (factor, now),
                )
        conn.commit()
        return "u"

    def _restock(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE stock SET quantity = GREATEST(quantity + %s, 0) ORDER BY RAND() LIMIT 1",
                (self.rng.randint(-40, 80),),
            )
        conn.commit()
        return "u"

    def _delete_stock(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM stock ORDER BY RAND() LIMIT 1")
        conn.commit()
        return "d"

    def _delete_product(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT sku FROM products ORDER BY RAND() LIMIT 1")
            row = cur.fetchone()
            if row is not None:
                cur.execute("DELETE FROM stock WHERE sku = %s", (row[0],))
                cur.execute("DELETE FROM products WHERE sku = %s", (row[0],))
        conn.commit()
        return "d"

    def _rename_sku(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT sku FROM products ORDER BY sku LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return "key change skipped (no products)"
            old = row[0]
            new = f"{old}-R"
            cur.execute("UPDATE products SET sku = %s WHERE sku = %s", (new, old))
            cur.execute("UPDATE stock SET sku = %s WHERE sku = %s", (new, old))
        conn.commit()
        return f"primary-key change: product {old} renamed to {new} (and its stock rows)"

    def _add_weight(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE products ADD COLUMN weight_g int NULL")
        self.product_weight = True
        return "schema change: ALTER TABLE products ADD COLUMN weight_g int"

    # -- activity (MariaDB) --------------------------------------------------------------------

    def _new_session(self, conn: Any) -> str:
        sid = self._next_id("sessions")
        with conn.cursor() as cur:
            cur.execute(INSERT["sessions"], schema.session_row(self.rng, sid))
        conn.commit()
        return "c"

    def _page_view(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM sessions ORDER BY RAND() LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return self._new_session(conn)
            pid = self._next_id("page_views")
            cur.execute(INSERT["page_views"], schema.page_view_row(self.rng, pid, row[0]))
            cur.execute("UPDATE sessions SET page_views = page_views + 1 WHERE id = %s", (row[0],))
        conn.commit()
        return "c"

    def _delete_page_view(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT id, session_id FROM page_views ORDER BY id LIMIT 1")
            row = cur.fetchone()
            if row is not None:
                cur.execute("DELETE FROM page_views WHERE id = %s", (row[0],))
                cur.execute(
                    "UPDATE sessions SET page_views = GREATEST(page_views - 1, 0) WHERE id = %s",
                    (row[1],),
                )
        conn.commit()
        return "d"

    def _delete_session(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM sessions ORDER BY id LIMIT 1")
            row = cur.fetchone()
            if row is not None:
                cur.execute("DELETE FROM page_views WHERE session_id = %s", (row[0],))
                cur.execute("DELETE FROM sessions WHERE id = %s", (row[0],))
        conn.commit()
        return "d"


class _Reps:
    """The reps' "connection": the emulator's UI test API (nothing to close)."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator

    def close(self) -> None:
        pass


def _pg(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)
