"""The demo dashboard renders every state a run goes through (no servers needed)."""

from __future__ import annotations

from rich.console import Console

from cdc_bridge.demo.dashboard import RouteStats, Snapshot, SourceStats, render


def _text(snap: Snapshot) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(render(snap))
    return console.export_text()


def test_dashboard_shows_sources_routes_dead_letters_and_salesforce_calls() -> None:
    snap = Snapshot(
        phase="traffic",
        elapsed=12.5,
        duration=60,
        rate=20,
        sources=[SourceStats("orders", "Postgres orders", 40, 100, 0.4, "streaming")],
        routes=[
            RouteStats("customers-to-accounts", "crm", 31, 0, 0, 2, "running"),
            RouteStats("high-value-orders", "notify", 5, 17, 3, None, "failed"),
        ],
        sf_calls=42,
        sf_limit=15000,
        notes=["  6.0s  billing: primary-key change: invoice 1 renumbered to 900001"],
        config_path="/tmp/x/routes.toml",
        fourth_source="activity runs on MariaDB",
        metrics_url="http://127.0.0.1:9464/metrics",
    )
    text = _text(snap)
    for expected in (
        "12.5s / 60s",
        "orders",
        "Postgres orders",
        "0.4s",
        "customers-to-accounts",
        "high-value-orders",
        "failed",
        "dead letters: 3",
        "route lag: 2 records",
        "Salesforce API calls: 42 of 15000/day",
        "primary-key change",
        "activity runs on MariaDB",
        "/tmp/x/routes.toml",
        "http://127.0.0.1:9464/metrics",
    ):
        assert expected in text, expected
    assert snap.dead_letters == 3 and snap.route_lag == 2


def test_dashboard_follow_mode_says_how_to_stop() -> None:
    text = _text(Snapshot(phase="traffic", elapsed=3.0, duration=None, rate=5))
    assert "Ctrl-C" in text
