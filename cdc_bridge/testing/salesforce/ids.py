"""Salesforce record ids: 15/18-character ids with key prefixes and the case-safe suffix."""

from __future__ import annotations

import itertools
import re
import threading

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The three-character suffix that makes a 15-character id case-insensitive-safe."""
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = 0
        for i, ch in enumerate(chunk):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(value: str) -> str | None:
    """Normalise a 15- or 18-character id to 18 characters; None when malformed."""
    if not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + checksum(value)
    if checksum(value[:15]) != value[15:]:
        # an 18-char id is case-insensitive: recover the case from the suffix
        fixed = _recase(value)
        return fixed
    return value


def _recase(value: str) -> str | None:
    chars = list(value[:15].lower())
    for block in range(3):
        bits = (
            _SUFFIX.index(value[15 + block].upper()) if value[15 + block].upper() in _SUFFIX else -1
        )
        if bits < 0:
            return None
        for i in range(5):
            if bits & (1 << i):
                chars[block * 5 + i] = chars[block * 5 + i].upper()
    id15 = "".join(chars)
    return id15 + checksum(id15)


def is_id(value: object) -> bool:
    """True for a syntactically valid 15/18-character id."""
    return isinstance(value, str) and to18(value) is not None


def _b62(n: int, width: int) -> str:
    chars = []
    while n:
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return "".join(reversed(chars)).rjust(width, "0")


class IdFactory:
    """Thread-safe generator of realistic ids: prefix + pod '5g' + '0' + base62 counter."""

    def __init__(self, pod: str = "8d") -> None:
        self._pod = pod
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counter)
        id15 = f"{prefix}{self._pod}0{_b62(n * 7919 + 1_000_000, 9)}"
        return id15 + checksum(id15)


def custom_prefix(index: int) -> str:
    """Key prefix for the index-th custom object: a0A, a0B, ..., a1A, ..."""
    return "a" + _B62[(index // 52) % 62] + _B62[10 + index % 52]
