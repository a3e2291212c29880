"""The error classes of cdc-bridge, grouped by what the caller should do about them.

- ``ConfigError``: the user's configuration or setup is wrong; stop and say how to fix it.
- ``RetriableError``: a passing condition (network, lock, throttling); retry with backoff.
  ``SetupError`` is the kind that needs a person (a password or privilege changed while
  running): still retried, since it can be fixed outside, but reported as an error.
- ``FatalError``: the component cannot go on (lost position, fatal producer error); stop it
  without acknowledging anything that was not delivered.
- ``RecordError``: one record cannot be applied; send it to the dead-letter topic, go on.

Every message is written for the user: what is wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ConfigError",
    "ConfigProblem",
    "FatalError",
    "RecordError",
    "RetriableError",
    "RouteHalted",
    "SetupError",
]


class BridgeError(Exception):
    """Root of every error cdc-bridge raises on purpose (anything else is a bug)."""


class ConfigProblem:
    """One validation problem: where it is (key path, file, line) and what is wrong."""

    __slots__ = ("line", "message", "path", "source_file")

    def __init__(
        self, path: str, message: str, *, source_file: str | None = None, line: int | None = None
    ) -> None:
        self.path = path
        self.message = message
        self.source_file = source_file
        self.line = line

    def __str__(self) -> str:
        where = self.source_file or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.path}: {self.message}" if self.path else f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self!s})"


class ConfigError(BridgeError):
    """Bad configuration or setup; carries every problem found, not just the first."""

    def __init__(self, message: str, problems: list[ConfigProblem] | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{message}\n{lines}"
        super().__init__(message)


class RetriableError(BridgeError):
    """A passing failure: the same operation may succeed later."""


class SetupError(RetriableError):
    """Credentials, privileges or a path that stopped working while running: retried (it can
    be fixed outside), but logged as an error and reported by ``/readyz``. At start the same
    problem is a :class:`ConfigError`."""


class FatalError(BridgeError):
    """The component must stop; nothing undelivered may be acknowledged."""


class RouteHalted(FatalError):
    """One route cannot go on safely (its topic was re-created or truncated below the offsets
    it stored): that route stops -- loudly, reported by ``/readyz`` and ``status`` -- while the
    rest of the bridge runs on. The message names the recovery command."""


class RecordError(BridgeError):
    """One record cannot be applied; it goes to the dead-letter topic with this reason."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)
