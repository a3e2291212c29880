"""The demo's dashboard and verification table fit an 80-column terminal: no name, row count
or result is cut (rich marks a cut with "…"), and no line is wider than the terminal."""

from __future__ import annotations

from rich.console import Console

from cdc_bridge.demo import verify
from cdc_bridge.demo.dashboard import RouteStats, Snapshot, SourceStats, render
from cdc_bridge.demo.run import _summary_table, _verification_table

ROUTES = (
    "customers-to-accounts",
    "orders-to-opportunities",
    "shop-to-warehouse",
    "inventory-to-reporting",
    "invoices-to-reporting",
    "sessions-to-mart",
    "page-views-to-mart",
    "products-to-mart",
    "high-value-orders",
    "accounts-to-customers",
)


def _render(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    text = console.export_text()
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width, text
    return text


def test_dashboard_fits_80_columns() -> None:
    snap = Snapshot(
        phase="traffic",
        elapsed=16.7,
        duration=20,
        rate=20,
        sources=[
            SourceStats("orders", "Postgres orders", 12345, 123456, 0.4, "streaming"),
            SourceStats("inventory", "MariaDB inventory", 12345, 123456, 12.5, "snapshot"),
            SourceStats("salesforce", "Salesforce Account", 12345, 123456, 0.2, "streaming"),
        ],
        routes=[RouteStats(n, "reporting", 1234567, 123456, 12, 12345, "running") for n in ROUTES],
        sf_calls=15000,
        sf_limit=15000,
        notes=["  6.0s  inventory: primary-key change: product BRA-00008 renamed to BRA-00008-R"],
        config_path="/tmp/cdc-bridge-demo-nty5up57/routes.toml",
        metrics_url="http://127.0.0.1:46339/metrics",
    )
    text = _render(render(snap))
    for expected in (
        *ROUTES,
        "MariaDB inventory",
        "Salesforce Account",
        "123456",
        "1234567",
        "12345",
        "streaming",
    ):
        assert expected in text, expected


def test_verification_table_fits_80_columns_with_rows_and_results() -> None:
    results = [
        verify.CheckResult(c, 1234, 1234, soft_deleted=123 if i % 2 else 0)
        for i, c in enumerate(verify.CHECKS)
    ]
    echo = next(i for i, c in enumerate(verify.CHECKS) if c.target == verify.ECHO)
    results[echo] = verify.CheckResult(verify.CHECKS[echo], 0, 0, note="0 echoes, 12345 dropped")
    results[-2] = verify.CheckResult(verify.CHECKS[-2], 111, 109, missing=2)
    text = _render(_verification_table(results, 80))
    assert text.count("1234 = 1234") == len(verify.CHECKS) - 2
    assert "111 / 109" in text and "MISMATCH: 2 missing" in text
    assert "0 = 0" in text and "0 echoes, 12345 dropped" in text
    assert text.count("match, 123 soft-deleted") == sum(
        1 for i, r in enumerate(results) if i % 2 and r.soft_deleted
    )
    for check in verify.CHECKS:
        assert check.target in text
    summary, ok = _summary_table(results)
    assert not ok
    _render(summary)


def test_wide_terminals_keep_one_line_per_table() -> None:
    results = [verify.CheckResult(c, 10, 10) for c in verify.CHECKS]
    text = _render(_verification_table(results, 140), width=140)
    assert "table / object" in text
    assert len([line for line in text.splitlines() if "10 = 10" in line]) == len(verify.CHECKS)
