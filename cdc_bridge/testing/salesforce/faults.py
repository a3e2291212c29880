"""Fault injection for the emulator: lock errors, 503 bursts, session expiry, latency (seeded)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from .errors import ApiError, SfError


@dataclass(frozen=True)
class FaultConfig:
    """What to break, and how often; the same seed gives the same faults for the same calls.

    lock_row_probability: chance per written record of UNABLE_TO_LOCK_ROW.
    unavailable_every / unavailable_burst: calls N..N+K-1, 2N..2N+K-1, ... answer 503.
    unavailable_probability: chance per call of a 503.
    session_expire_after: a session dies after serving this many calls (then 401).
    latency: seconds added to every call.
    daily_limit: when set, replaces the emulator's daily API request quota (usage is kept).
    handshake_resets: the next N TLS connections are cut during the handshake (after the
        ClientHello arrives): odd ones with a TCP reset, even ones with a plain close (EOF).
    """

    lock_row_probability: float = 0.0
    unavailable_every: int = 0
    unavailable_burst: int = 1
    unavailable_probability: float = 0.0
    session_expire_after: int | None = None
    latency: float = 0.0
    daily_limit: int | None = None
    handshake_resets: int = 0
    seed: int = 0


class FaultInjector:
    """Applies a FaultConfig; counts calls itself so bursts are deterministic."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._calls = 0
            self._resets = 0

    def handshake_reset(self) -> str | None:
        """For a new TLS connection: ``"rst"`` or ``"eof"`` to cut its handshake, else None."""
        with self._lock:
            if self._resets >= self.config.handshake_resets:
                return None
            self._resets += 1
            return "rst" if self._resets % 2 else "eof"

    def on_call(self) -> ApiError | None:
        """Called once per API call (not auth); returns the 503 to answer, if any."""
        c = self.config
        with self._lock:
            self._calls += 1
            n = self._calls
            roll = self._rng.random() if c.unavailable_probability else 1.0
        if (
            c.unavailable_every
            and n >= c.unavailable_every
            and n % c.unavailable_every < c.unavailable_burst
        ):
            return unavailable()
        if roll < c.unavailable_probability:
            return unavailable()
        return None

    def lock_row(self, rid: str | None) -> SfError | None:
        """Per-record UNABLE_TO_LOCK_ROW decision."""
        p = self.config.lock_row_probability
        if not p:
            return None
        with self._lock:
            hit = self._rng.random() < p
        if not hit:
            return None
        return SfError(
            "UNABLE_TO_LOCK_ROW",
            f"unable to obtain exclusive access to this record or 1 records: {rid or 'new'}",
            [],
        )


def unavailable() -> ApiError:
    return ApiError(
        503, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry later."
    )
