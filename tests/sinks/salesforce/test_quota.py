"""The daily quota guard: usage from Sforce-Limit-Info, slow down, pause, resume by itself."""

from __future__ import annotations

import logging
import threading

import pytest

from cdc_bridge.errors import RetriableError
from cdc_bridge.sinks.salesforce.quota import QuotaGuard, parse_limit_info


def test_parse_limit_info() -> None:
    assert parse_limit_info("api-usage=25/5000") == (25, 5000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=3/100(appName=x)") == (25, 5000)
    assert parse_limit_info(None) is None
    assert parse_limit_info("garbage") is None


def test_delays_grow_then_pause() -> None:
    g = QuotaGuard("crm", reserve=0.1, slowdown=0.8, max_delay_s=30)
    assert g.delay() == 0  # nothing known yet
    g.observe("api-usage=100/10000")
    assert g.delay() == 0
    g.observe("api-usage=7300/10000")  # past 80% of the usable 9000
    d = g.delay()
    assert 0 < d <= 30
    g.observe("api-usage=9000/10000")
    assert g.delay() == -1 and g.paused and g.pauses == 1


def test_pause_then_resume_when_usage_drops(caplog: pytest.LogCaptureFixture) -> None:
    g = QuotaGuard("crm", reserve=0.0, slowdown=1.0, pause_s=0.01)
    g.observe("api-usage=50/50")
    probes = []

    def probe() -> None:
        probes.append(1)
        g.observe("api-usage=50/50" if len(probes) < 3 else "api-usage=1/50")

    with caplog.at_level(logging.WARNING):
        g.wait(probe)
    assert len(probes) == 3 and not g.paused
    text = caplog.text
    assert "PAUSED" in text and "RESUMED" in text


def test_request_limit_exceeded_pauses_even_without_a_reading() -> None:
    stop = threading.Event()
    g = QuotaGuard("crm", pause_s=0.01, stopping=stop)
    g.exhausted()
    assert g.delay() == -1

    calls = []

    def probe() -> None:  # still refused: stays paused until we stop
        calls.append(1)
        g.exhausted()
        if len(calls) == 2:
            stop.set()

    with pytest.raises(RetriableError, match="stopping"):
        g.wait(probe)
    assert len(calls) == 2 and g.paused


def test_a_successful_probe_without_a_reading_resumes() -> None:
    g = QuotaGuard("crm", pause_s=0.01)
    g.exhausted()
    g.wait(lambda: None)
    assert not g.paused


def test_a_fresher_reading_from_another_route_ends_the_slowdown_early() -> None:
    import time

    g = QuotaGuard("crm", reserve=0.0, slowdown=0.5, max_delay_s=30)
    g.observe("api-usage=90/100")
    assert g.delay() == 30
    threading.Timer(0.3, lambda: g.observe("api-usage=1/100000")).start()
    start = time.monotonic()
    g.wait(lambda: None)
    assert time.monotonic() - start < 3


def test_routes_of_one_org_share_login_and_quota() -> None:
    from cdc_bridge.sinks.salesforce.client import SalesforceClient
    from cdc_bridge.sinks.salesforce.config import SalesforceSinkConfig

    def cfg(secret: str) -> SalesforceSinkConfig:
        return SalesforceSinkConfig.model_validate(
            {
                "name": "org1",
                "auth": "client_credentials",
                "client_id": "x",
                "client_secret": secret,
            }
        )

    a, b, c = SalesforceClient(cfg("s")), SalesforceClient(cfg("s")), SalesforceClient(cfg("t"))
    assert a.auth is b.auth and a.quota is b.quota
    assert c.auth is not a.auth
    assert a.http is not b.http
