"""Tests for the pgoutput decoder: bytes captured from PostgreSQL 15 and hand-built messages."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc_bridge.sources.postgres.lsn import LSN
from cdc_bridge.sources.postgres.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    PgOutputDecoder,
    PgOutputError,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TypeInfo,
    Update,
    pg_timestamp_to_datetime,
    pg_timestamp_to_unix_us,
)

DATA = Path(__file__).parent / "data"


def _captured(name: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in json.loads((DATA / name).read_text())["messages"]]


def test_captured_v1_sequence() -> None:
    """Session: insert x2, update, pk update, REPLICA IDENTITY FULL update, delete, truncate,
    transactional and non-transactional logical messages."""
    dec = PgOutputDecoder()
    msgs = [dec.decode(b) for b in _captured("pgoutput_v1.json")]
    kinds = [type(m).__name__ for m in msgs]
    assert kinds == [
        "Begin", "Relation", "Insert", "Insert", "Commit",
        "Begin", "Update", "Commit",
        "Begin", "Update", "Commit",
        "Begin", "Relation", "Update", "Commit",
        "Begin", "Delete", "Commit",
        "Begin", "Relation", "Truncate", "Commit",
        "Begin", "LogicalMessage", "Commit",
        "LogicalMessage",
    ]  # fmt: skip
    begin, rel, ins1, ins2, commit = msgs[:5]
    assert isinstance(begin, Begin) and isinstance(commit, Commit)
    assert begin.final_lsn == commit.commit_lsn == LSN("0/157CA40")
    assert commit.end_lsn == LSN("0/157CA70")
    assert begin.xid == 737 and begin.commit_ts == commit.commit_ts
    assert isinstance(rel, Relation)
    assert (rel.namespace, rel.name, rel.replica_identity) == ("public", "cap", "d")
    assert rel.columns == [
        Column("id", 23, -1, True),
        Column("t", 25, -1, False),
        Column("n", 1700, (10 << 16 | 2) + 4, False),
    ]
    assert (
        isinstance(ins1, Insert) and ins1.relid == rel.relid and ins1.new == ["1", "hello", "1.50"]
    )
    assert isinstance(ins2, Insert) and ins2.new == ["2", None, None]
    upd = msgs[6]
    assert isinstance(upd, Update) and upd.old_kind is None and upd.old is None
    assert upd.new == ["1", "x", "1.50"]
    pk = msgs[9]
    assert isinstance(pk, Update) and pk.old_kind == "K" and pk.old == ["2", None, None]
    assert pk.new == ["3", None, None]
    full_rel, full = msgs[12], msgs[13]
    assert isinstance(full_rel, Relation) and full_rel.replica_identity == "f"
    assert isinstance(full, Update) and full.old_kind == "O" and full.old == ["1", "x", "1.50"]
    dele = msgs[16]
    assert isinstance(dele, Delete) and dele.old_kind == "O" and dele.old == ["1", "y", "1.50"]
    trunc = msgs[20]
    assert isinstance(trunc, Truncate) and trunc.relids == [rel.relid]
    assert not trunc.cascade and not trunc.restart_identity
    m1, m2 = msgs[23], msgs[25]
    assert isinstance(m1, LogicalMessage) and m1.transactional and m1.prefix == "pfx"
    assert m1.content == b"hi"
    assert isinstance(m2, LogicalMessage) and not m2.transactional and m2.content == b"nt"


def test_captured_v2_streaming_with_toast_and_abort() -> None:
    dec = PgOutputDecoder(protocol_version=2)
    msgs = [dec.decode(b) for b in _captured("pgoutput_v2_stream.json")]
    ins = msgs[2]
    assert isinstance(ins, Insert) and ins.new[1] == "x" * 10000 and ins.xid is None
    upd = msgs[5]
    assert isinstance(upd, Update) and upd.new == ["1", UNCHANGED_TOAST, "2"]
    start = msgs[7]
    assert isinstance(start, StreamStart) and start.xid == 750 and start.first_segment
    streamed = [m for m in msgs if isinstance(m, Insert) and m.xid == 750]
    assert streamed and streamed[0].new == ["10", "row10", "10"]
    assert any(isinstance(m, StreamStop) for m in msgs)
    commit = next(m for m in msgs if isinstance(m, StreamCommit))
    assert commit.xid == 750 and commit.end_lsn > commit.commit_lsn
    abort = msgs[-1]
    assert isinstance(abort, StreamAbort) and abort.xid == abort.subxid == 751
    assert not dec.in_stream


# -- hand-built messages ------------------------------------------------------------------------


def _cstr(s: str) -> bytes:
    return s.encode() + b"\x00"


def _tuple(values: list[object]) -> bytes:
    out = struct.pack(">h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED_TOAST:
            out += b"u"
        elif isinstance(v, bytes):
            out += b"b" + struct.pack(">i", len(v)) + v
        else:
            raw = str(v).encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def test_type_origin_and_truncate_options() -> None:
    dec = PgOutputDecoder()
    t = dec.decode(b"Y" + struct.pack(">I", 16500) + _cstr("public") + _cstr("mood"))
    assert t == TypeInfo(16500, "public", "mood")
    o = dec.decode(b"O" + struct.pack(">Q", 0x1_0000_0010) + _cstr("node_a"))
    assert o == Origin(LSN("1/10"), "node_a")
    tr = dec.decode(b"T" + struct.pack(">iB", 2, 3) + struct.pack(">II", 5, 6))
    assert tr == Truncate([5, 6], cascade=True, restart_identity=True)


def test_binary_values_and_stream_xid() -> None:
    dec = PgOutputDecoder(protocol_version=2)
    dec.decode(b"S" + struct.pack(">IB", 900, 1))
    ins = dec.decode(b"I" + struct.pack(">II", 900, 42) + b"N" + _tuple([b"\x00\x01", None]))
    assert ins == Insert(42, [b"\x00\x01", None], 900)
    dec.decode(b"E")
    ins2 = dec.decode(b"I" + struct.pack(">I", 42) + b"N" + _tuple(["a"]))
    assert ins2 == Insert(42, ["a"], None)


def test_stream_abort_v4_fields() -> None:
    dec = PgOutputDecoder(protocol_version=4)
    a = dec.decode(b"A" + struct.pack(">IIQq", 7, 8, 0x500, 123))
    assert a == StreamAbort(7, 8, LSN(0x500), 123)


@pytest.mark.parametrize(
    "raw",
    [
        b"Z",
        b"I\x00\x00\x00\x01X",
        b"I\x00\x00\x00\x01N\x00\x01t\x00\x00\x00\x09abc",
        b"I\x00\x00\x00\x01N\x00\x01q",
        b"D\x00\x00\x00\x01N\x00\x00",
        b"B\x00",
        b"R\x00\x00\x00\x01public",
    ],
)
def test_malformed_raises_pgoutput_error(raw: bytes) -> None:
    with pytest.raises(PgOutputError):
        PgOutputDecoder().decode(raw)


def test_timestamps() -> None:
    assert pg_timestamp_to_unix_us(0) == 946_684_800_000_000
    assert pg_timestamp_to_datetime(1_000_000).isoformat() == "2000-01-01T00:00:01+00:00"


_value = st.one_of(
    st.none(),
    st.just(UNCHANGED_TOAST),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    st.binary(),
)


@given(
    relid=st.integers(0, 2**32 - 1),
    new=st.lists(_value, max_size=20),
    old=st.one_of(st.none(), st.tuples(st.sampled_from("KO"), st.lists(_value, max_size=20))),
)
def test_update_roundtrip(
    relid: int, new: list[object], old: tuple[str, list[object]] | None
) -> None:
    raw = b"U" + struct.pack(">I", relid)
    if old is not None:
        raw += old[0].encode() + _tuple(old[1])
    raw += b"N" + _tuple(new)
    msg = PgOutputDecoder().decode(raw)
    assert isinstance(msg, Update)
    assert msg.relid == relid and msg.new == new
    assert (msg.old_kind, msg.old) == ((old[0], old[1]) if old else (None, None))


@given(
    relid=st.integers(0, 2**32 - 1),
    ns=st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    cols=st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                min_size=1,
            ),
            st.integers(0, 2**32 - 1),
            st.integers(-(2**31), 2**31 - 1),
            st.booleans(),
        ),
        max_size=10,
    ),
)
def test_relation_roundtrip(relid: int, ns: str, cols: list[tuple[str, int, int, bool]]) -> None:
    raw = b"R" + struct.pack(">I", relid) + _cstr(ns) + _cstr("tbl") + b"f"
    raw += struct.pack(">h", len(cols))
    for name, oid, typmod, key in cols:
        raw += bytes([1 if key else 0]) + _cstr(name) + struct.pack(">Ii", oid, typmod)
    msg = PgOutputDecoder().decode(raw)
    assert msg == Relation(relid, ns, "tbl", "f", [Column(n, o, t, k) for n, o, t, k in cols])


@given(st.binary(max_size=64))
def test_fuzz_never_crashes_uncontrolled(raw: bytes) -> None:
    try:
        PgOutputDecoder(protocol_version=2).decode(raw)
    except PgOutputError:
        pass
