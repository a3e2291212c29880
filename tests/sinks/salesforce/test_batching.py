"""Collapsing per key, chunking, parent ordering and the Collections/Bulk mode switch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cdc_bridge.sinks.salesforce.batching import ModeSwitch, chunks, collapse, order_by_parents
from cdc_bridge.sinks.salesforce.mapping import DELETE, UPSERT, SfOp


def up(key: str, **values: object) -> SfOp:
    return SfOp(UPSERT, key, {"Ext__c": key, **values})


def test_collapse_keeps_last_state_per_key_and_all_indexes() -> None:
    plan = collapse(
        [
            (0, up("a", Name="a1")),
            (1, up("b", Name="b1")),
            (2, up("a", Name="a2", City="x")),
            (3, SfOp(DELETE, "b", {})),
            (4, SfOp(DELETE, "c", {})),
            (5, up("c", Name="c1")),
        ]
    )
    assert [(c.op.ext_value, c.op.values, c.indexes) for c in plan.upserts] == [
        ("a", {"Ext__c": "a", "Name": "a2", "City": "x"}, [0, 2]),
        ("c", {"Ext__c": "c", "Name": "c1"}, [4, 5]),
    ]
    assert [(c.op.ext_value, c.indexes) for c in plan.deletes] == [("b", [1, 3])]
    assert len(plan) == 3


def test_collapse_folds_case_when_asked() -> None:
    ops = [(0, up("AB", Name="1")), (1, up("ab", Name="2"))]
    assert len(collapse(ops).upserts) == 2
    folded = collapse(ops, fold_case=True).upserts
    assert [(c.op.values["Name"], c.indexes) for c in folded] == [("2", [0, 1])]


def test_collapse_merges_partial_upserts_field_by_field() -> None:
    plan = collapse([(0, up("a", Name="n", City="c")), (1, up("a", City="d"))])
    assert plan.upserts[0].op.values == {"Ext__c": "a", "Name": "n", "City": "d"}


@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.booleans(), st.integers(0, 9)), max_size=60)
)
def test_collapse_is_the_last_state_of_each_key(events: list[tuple[str, bool, int]]) -> None:
    ops = [(i, SfOp(DELETE, k, {}) if d else up(k, V=v)) for i, (k, d, v) in enumerate(events)]
    plan = collapse(ops)
    expected: dict[str, object] = {}
    for k, d, v in events:
        expected[k] = None if d else v
    got = {c.op.ext_value: c.op.values["V"] for c in plan.upserts}
    got.update({c.op.ext_value: None for c in plan.deletes})
    assert got == expected
    covered = sorted(i for c in [*plan.upserts, *plan.deletes] for i in c.indexes)
    assert covered == list(range(len(events)))


def test_chunks_of_200() -> None:
    plan = collapse((i, up(str(i))) for i in range(450))
    sizes = [len(c) for c in chunks(plan.upserts)]
    assert sizes == [200, 200, 50]


def test_parents_first() -> None:
    deps = {
        "Contact": {"Account"},
        "Case": {"Contact", "Account"},
        "Account": {"Account"},
        "Note": set(),
    }
    order = order_by_parents(deps)
    assert order.index("Account") < order.index("Contact") < order.index("Case")
    assert sorted(order) == sorted(deps)


def test_mode_switch_hysteresis() -> None:
    m = ModeSwitch(enter=5000, leave=1000)
    assert m.choose(4999) is False
    assert m.choose(6000) is True and m.bulk
    assert m.choose(2000) is True  # still catching up: stay in bulk
    assert m.choose(500) is False and not m.bulk
    assert m.choose(100, backlog=50_000) is False  # a tiny batch goes through Collections...
    assert m.bulk  # ...but the backlog keeps bulk mode on for the next big one
    assert ModeSwitch(5000, 1000, forced="bulk").choose(10) is True
    assert ModeSwitch(5000, 1000, forced="collections").choose(10**6) is False
