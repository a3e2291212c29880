"""Logging setup: human-readable lines by default, one JSON object per line for machines.

Every line carries the component it comes from (``source=orders``, ``route=to-crm``): the
runtime tags each worker thread with :func:`set_component`, a filter copies the tag onto every
record logged from that thread (whatever library logged it), and ``extra={"component": ...}``
overrides it for one call.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import orjson

__all__ = [
    "LogFormat",
    "component",
    "get_component",
    "set_component",
    "setup_logging",
    "without_component",
]

LogFormat = Literal["text", "json"]

_local = threading.local()


def set_component(name: str | None) -> None:
    """Tag log lines of the current thread with ``name`` (e.g. ``source=orders``)."""
    _local.component = name


def get_component() -> str | None:
    return getattr(_local, "component", None)


@contextmanager
def component(name: str) -> Iterator[None]:
    """Tag log lines of the current thread for the duration of the block."""
    before = get_component()
    set_component(name)
    try:
        yield
    finally:
        set_component(before)


class ComponentFilter(logging.Filter):
    """Puts ``record.component`` on every record (the thread's tag unless given in extra)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "component", None):
            record.component = get_component() or ""
        return True


# user:password@ in any URL (a DSN in an exception text, a traceback): the password is masked.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
# libpq keyword DSNs: password=secret
_KW_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Mask passwords in URLs and ``password=`` pairs, wherever a message carries them."""
    return _KW_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def _iso(created: float) -> str:
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


def without_component(component: str, message: str) -> str:
    """The message without a leading copy of its component: under ``source=shop``, the line
    ``source shop: streaming`` (or ``source=shop failed``) reads ``streaming`` (``failed``)."""
    kind, _, name = component.partition("=")
    if not name:
        return message
    for prefix in (f"{kind} {name}: ", f"{component}: ", f"{kind} {name} ", f"{component} "):
        if message.startswith(prefix) and len(message) > len(prefix):
            return message[len(prefix) :]
    return message


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO  source=orders  message``"""

    def format(self, record: logging.LogRecord) -> str:
        tag = getattr(record, "component", "")
        comp = tag or record.name.removeprefix("cdc_bridge.")
        msg = without_component(tag, record.getMessage()) if tag else record.getMessage()
        line = f"{_iso(record.created)} {record.levelname:<5} {comp}  {msg}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "component"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, component, msg (+ extras, exc)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "component": getattr(record, "component", "") or None,
            "msg": redact(without_component(getattr(record, "component", ""), record.getMessage())),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(doc, default=str).decode()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(fmt: LogFormat = "text", level: str | int = "INFO") -> None:
    """Configure the root logger (stderr) once per process; calling again replaces it."""
    handler = _StderrHandler()
    handler.addFilter(ComponentFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_cdc_bridge", False):
            root.removeHandler(old)
    handler._cdc_bridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # librdkafka/kafka internals and SQL echo are noisy at INFO
    for noisy in ("alembic",):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
