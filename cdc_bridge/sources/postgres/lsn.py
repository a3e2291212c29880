"""Postgres log sequence numbers: parse/format "16/B374D848", order and do arithmetic."""

from __future__ import annotations

__all__ = ["INVALID_LSN", "LSN"]

_MAX = (1 << 64) - 1


class LSN(int):
    """A WAL position (unsigned 64-bit), printed the way Postgres prints it (``16/B374D848``).

    It is an ``int`` so comparisons, ``max()``, sorting and arithmetic cost nothing; ``+``/``-``
    with an int return an ``LSN`` (or the byte distance for ``LSN - LSN``).
    """

    __slots__ = ()

    def __new__(cls, value: int | str | LSN = 0) -> LSN:
        if isinstance(value, str):
            return cls.parse(value)
        v = int(value)
        if v < 0 or v > _MAX:
            raise ValueError(f"LSN out of range: {v}")
        return int.__new__(cls, v)

    @classmethod
    def parse(cls, text: str) -> LSN:
        """Parse ``"XXX/XXX"`` (hex high and low 32-bit halves)."""
        hi, sep, lo = text.strip().partition("/")
        if not sep or not hi or not lo or len(hi) > 8 or len(lo) > 8:
            raise ValueError(f"not a Postgres LSN: {text!r} (expected e.g. '16/B374D848')")
        try:
            return int.__new__(cls, (int(hi, 16) << 32) | int(lo, 16))
        except ValueError:
            raise ValueError(
                f"not a Postgres LSN: {text!r} (expected e.g. '16/B374D848')"
            ) from None

    def __str__(self) -> str:
        v = int(self)
        return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"LSN('{self}')"

    def __add__(self, other: int) -> LSN:
        return LSN(int(self) + int(other))

    __radd__ = __add__

    def __sub__(self, other: int) -> int:
        """``LSN - LSN`` is a byte distance (int); ``LSN - int`` is an LSN."""
        if isinstance(other, LSN):
            return int(self) - int(other)
        return LSN(int(self) - int(other))


INVALID_LSN = LSN(0)
