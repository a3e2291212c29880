"""Tests for the Postgres LSN type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc_bridge.sources.postgres.lsn import LSN


def test_parse_and_format() -> None:
    lsn = LSN.parse("16/B374D848")
    assert int(lsn) == (0x16 << 32) | 0xB374D848
    assert str(lsn) == "16/B374D848"
    assert repr(lsn) == "LSN('16/B374D848')"
    assert LSN("0/0") == 0
    assert str(LSN(0)) == "0/0"
    assert LSN("0/157c8d8") == 0x157C8D8


@pytest.mark.parametrize("bad", ["", "16", "/1", "1/", "x/1", "1/123456789", "1/2/3"])
def test_parse_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Postgres LSN"):
        LSN.parse(bad)


def test_range() -> None:
    with pytest.raises(ValueError):
        LSN(-1)
    with pytest.raises(ValueError):
        LSN(1 << 64)


def test_arithmetic_and_order() -> None:
    a, b = LSN("0/100"), LSN("0/180")
    assert a < b and max(a, b) is b
    assert b - a == 0x80 and not isinstance(b - a, LSN)
    assert isinstance(a + 0x80, LSN) and a + 0x80 == b
    assert isinstance(b - 0x80, LSN) and b - 0x80 == a
    assert str(LSN("0/FFFFFFFF") + 1) == "1/0"


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_roundtrip(v: int) -> None:
    assert LSN.parse(str(LSN(v))) == v


@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_order_matches_int(a: int, b: int) -> None:
    assert (LSN(a) < LSN(b)) == (a < b)
    assert sorted([LSN(a), LSN(b)]) == sorted([a, b])
