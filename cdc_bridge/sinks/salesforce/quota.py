"""Daily API quota guard: reads `Sforce-Limit-Info`, slows down, pauses before the quota runs out.

Salesforce counts API requests over a rolling 24 hours and reports the count on every REST
response (``Sforce-Limit-Info: api-usage=1234/15000``). The guard keeps a reserve for the
org's other integrations: past ``slowdown`` of the usable quota it spaces calls out, at the
usable limit (or on REQUEST_LIMIT_EXCEEDED) it pauses, probing ``/limits`` every
``pause_s`` until usage has dropped, then resumes by itself. Each transition is one log line
and a metric.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from cdc_bridge import metrics
from cdc_bridge.errors import RetriableError

__all__ = ["QuotaGuard", "parse_limit_info"]

log = logging.getLogger(__name__)

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")

# The sink's metrics are defined once, in cdc_bridge.metrics; short local names for the sink.
API_USAGE = metrics.salesforce_api_usage
API_LIMIT = metrics.salesforce_api_limit
API_REMAINING = metrics.salesforce_api_remaining
QUOTA_PAUSED = metrics.salesforce_quota_paused
BULK_MODE = metrics.salesforce_bulk_mode
RECORDS = metrics.salesforce_records
API_CALLS = metrics.salesforce_api_calls


def parse_limit_info(header: str | None) -> tuple[int, int] | None:
    """``"api-usage=25/5000"`` -> ``(25, 5000)``."""
    if not header:
        return None
    m = _USAGE.search(header)
    return (int(m.group(1)), int(m.group(2))) if m else None


class QuotaGuard:
    """Decides, before each call, whether to go, wait a little, or pause until the quota resets."""

    def __init__(
        self,
        sink: str,
        *,
        reserve: float = 0.1,
        slowdown: float = 0.8,
        pause_s: float = 300.0,
        max_delay_s: float = 30.0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.sink = sink
        self.reserve = reserve
        self.slowdown = slowdown
        self.pause_s = pause_s
        self.max_delay_s = max_delay_s
        self.stopping = stopping or threading.Event()
        self.used: int | None = None
        self.limit: int | None = None
        self.paused = False
        self.pauses = 0
        self._resumed = 0
        self._next_probe = 0.0
        self._probing = False
        self._refused = False
        self._lock = threading.Lock()

    # -- observations ----------------------------------------------------------------------

    def observe(self, header: str | None) -> None:
        """Record the usage reported on a response."""
        parsed = parse_limit_info(header)
        if parsed is None:
            return
        with self._lock:
            self.used, self.limit = parsed
        API_USAGE.labels(self.sink).set(parsed[0])
        API_LIMIT.labels(self.sink).set(parsed[1])
        API_REMAINING.labels(self.sink).set(max(0, parsed[1] - parsed[0]))

    def exhausted(self) -> None:
        """Salesforce answered REQUEST_LIMIT_EXCEEDED: pause now."""
        with self._lock:
            if self.limit is not None:
                self.used = max(self.used or 0, self.limit)
            self._refused = True
            self._enter_pause("Salesforce answered REQUEST_LIMIT_EXCEEDED")

    @property
    def usable(self) -> int | None:
        return None if self.limit is None else int(self.limit * (1 - self.reserve))

    def _enter_pause(self, why: str) -> None:
        if not self.paused:
            self.paused = True
            self.pauses += 1
            self._next_probe = time.monotonic() + self.pause_s
            QUOTA_PAUSED.labels(self.sink).set(1)
            log.warning(
                "salesforce %s: PAUSED writing: %s (API usage %s/%s, reserve %.0f%%); "
                "checking again every %gs, resuming by itself when the rolling 24h usage drops",
                self.sink,
                why,
                self.used,
                self.limit,
                self.reserve * 100,
                self.pause_s,
            )

    # -- gate ------------------------------------------------------------------------------

    def delay(self) -> float:
        """Seconds to wait before the next call (0: go now; -1: paused)."""
        with self._lock:
            if self.paused:
                return -1.0
            usable = self.usable
            if self.used is None or usable is None:
                return 0.0
            if self.used >= usable:
                self._enter_pause(f"daily API usage reached {usable} (limit minus reserve)")
                return -1.0
            soft = usable * self.slowdown
            if self.used < soft:
                return 0.0
            remaining = max(usable - self.used, 1)
            # Spread what is left over the rolling day, within bounds.
            return min(self.max_delay_s, 86_400.0 / remaining)

    def wait(
        self,
        probe: Callable[[], None],
        stopping: threading.Event | None = None,
        max_block_s: float | None = None,
    ) -> None:
        """Block until a call may be made. ``probe`` makes a cheap call that refreshes usage.

        ``stopping``: the caller's stop event (the guard is shared by several routes).
        ``max_block_s``: while paused, give up after this long with :class:`RetriableError`,
        so the caller (the route engine) gets control back and can stop; calling again
        continues the same pause (probes stay ``pause_s`` apart).
        """
        stopping = stopping or self.stopping
        give_up = None if max_block_s is None else time.monotonic() + max_block_s
        while True:
            d = self.delay()
            if d == 0:
                return
            if d > 0:
                # Sleep in slices: other routes' calls may bring a fresher reading meanwhile.
                until = time.monotonic() + d
                while (left := until - time.monotonic()) > 0:
                    if stopping.wait(min(left, 1.0)):
                        raise RetriableError("stopping while throttled by the API quota")
                    fresh = self.delay()
                    if fresh <= 0:
                        break
                    until = min(until, time.monotonic() + fresh)
                if self.delay() >= 0:
                    return
                continue
            now = time.monotonic()
            with self._lock:
                due = self._next_probe - now
                mine = due <= 0 and not self._probing
                if mine:
                    self._probing = True
                    self._refused = False
                    self._next_probe = now + self.pause_s
            if not mine:
                if give_up is not None and now >= give_up:
                    raise RetriableError(
                        f"paused by the daily API quota (usage {self.used}/{self.limit}); "
                        "the batch is retried when the quota is back"
                    )
                if stopping.wait(min(max(due, 0.05), 1.0)):
                    raise RetriableError("stopping while paused by the API quota")
                continue
            try:
                probe()  # bypasses this gate; observe() / exhausted() record what it saw
            except RetriableError:
                with self._lock:
                    self._refused = True
            finally:
                with self._lock:
                    self._probing = False
            with self._lock:
                usable = self.usable
                if self._refused or (
                    self.used is not None and usable is not None and self.used >= usable
                ):
                    continue
                self.paused = False
                first = self._resumed != self.pauses
                self._resumed = self.pauses
            if first:  # several routes may be waiting on this guard: one line per pause
                QUOTA_PAUSED.labels(self.sink).set(0)
                log.warning(
                    "salesforce %s: RESUMED writing: API usage back to %s/%s",
                    self.sink,
                    self.used,
                    self.limit,
                )
            return
