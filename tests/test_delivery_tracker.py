"""Delivery tracking without a broker: whatever order reports arrive in, the safe offset never
passes a window that still has an unconfirmed record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc_bridge.errors import FatalError
from cdc_bridge.kafka import DeliveryTracker


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_safe_offset_is_last_offset_of_completed_prefix(data: st.DataObject) -> None:
    sizes = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=30))
    # some windows carry no offset (intermediate chunks of a large transaction)
    offsets = [data.draw(st.one_of(st.none(), st.just(i))) for i in range(len(sizes))]
    tracker = DeliveryTracker()
    windows = [tracker.open_window(off, n) for off, n in zip(offsets, sizes, strict=True)]
    deliveries = [w for w, n in zip(windows, sizes, strict=True) for _ in range(n)]
    order = data.draw(st.permutations(range(len(deliveries))))
    delivered = [0] * len(windows)
    index_of = {id(w): i for i, w in enumerate(windows)}
    for step in order:
        window = deliveries[step]
        window.on_delivery(None, None)
        delivered[index_of[id(window)]] += 1
        expected = None
        for i, n in enumerate(sizes):
            if delivered[i] < n:
                break
            if offsets[i] is not None:
                expected = offsets[i]
        assert tracker.safe_offset() == expected
    assert tracker.in_flight() == 0


def test_failed_delivery_stops_the_safe_offset() -> None:
    tracker = DeliveryTracker()
    w1 = tracker.open_window("a", 1)
    w2 = tracker.open_window("b", 1)
    w1.on_delivery(None, None)
    assert tracker.safe_offset() == "a"

    class Err:
        def str(self) -> str:
            return "broker said no"

    w2.on_delivery(Err(), None)  # type: ignore[arg-type]
    with pytest.raises(FatalError, match="broker said no"):
        tracker.safe_offset()
