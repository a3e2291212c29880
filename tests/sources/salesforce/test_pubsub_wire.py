"""The Pub/Sub wire layer alone: bitmaps, Avro change events from byte fixtures, protobuf."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc_bridge.sources.salesforce.pubsub import (
    ChangeEventHeader,
    EventDecoder,
    decode_bitmap,
    encode_bitmap,
)
from cdc_bridge.sources.salesforce.pubsub import pubsub_api_pb2 as pb

_HEADER = {
    "type": "record",
    "name": "ChangeEventHeader",
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {
            "name": "changeType",
            "type": {
                "type": "enum",
                "name": "ChangeType",
                "symbols": [
                    "CREATE",
                    "UPDATE",
                    "DELETE",
                    "UNDELETE",
                    "GAP_CREATE",
                    "GAP_UPDATE",
                    "GAP_DELETE",
                    "GAP_UNDELETE",
                    "GAP_OVERFLOW",
                ],
            },
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "AccountChangeEvent",
    "namespace": "com.sforce.eventbus",
    "fields": [
        {"name": "ChangeEventHeader", "type": _HEADER},
        {"name": "Name", "type": ["null", "string"], "default": None},
        {"name": "Phone", "type": ["null", "string"], "default": None},
        {
            "name": "BillingAddress",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Address",
                    "fields": [
                        {"name": "Street", "type": ["null", "string"], "default": None},
                        {"name": "City", "type": ["null", "string"], "default": None},
                        {"name": "Country", "type": ["null", "string"], "default": None},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "NumberOfEmployees", "type": ["null", "int"], "default": None},
        {"name": "LastModifiedDate", "type": ["null", "long"], "default": None},
    ],
}

# An UPDATE of Account 001000000000001AAA written with SCHEMA: changedFields ["0x24", "3-0x2"]
# (Phone, LastModifiedDate, BillingAddress.City), nulledFields ["0x4"] (Phone).
PAYLOAD = bytes.fromhex(
    "0e4163636f756e74022430303130303030303030303030303141414100025c636f6d2f73616c6573666f7263"
    "652f6170692f726573742f36312e303b636c69656e743d6364632d62726964676510303030312d6162630280"
    "a0abfef9625424303035303030303030303030303031414141020630783400000408307832340a332d307832"
    "000000020002084f736c6f00000280a0abfef962"
)


def test_top_level_bitmap_counts_from_the_least_significant_bit() -> None:
    # 0x24 = bits 2 and 5: the fields at positions 2 and 5 (position 0 is the header)
    assert decode_bitmap(["0x24"], SCHEMA) == ["Phone", "LastModifiedDate"]
    assert decode_bitmap(["0x2"], SCHEMA) == ["Name"]
    assert decode_bitmap([], SCHEMA) == []
    assert decode_bitmap(None, SCHEMA) == []


def test_nested_bitmap_names_components_of_the_compound_field() -> None:
    assert decode_bitmap(["0x0", "3-0x5"], SCHEMA) == [
        "BillingAddress.Street",
        "BillingAddress.Country",
    ]


def test_names_pass_through_and_bad_bitmaps_are_refused() -> None:
    assert decode_bitmap(["Name", "BillingAddress.City"], SCHEMA) == ["Name", "BillingAddress.City"]
    with pytest.raises(ValueError, match="names field #9"):
        decode_bitmap(["0x200"], SCHEMA)
    with pytest.raises(ValueError, match="not compound"):
        decode_bitmap(["2-0x1"], SCHEMA)


_NAMES = ["Name", "Phone", "NumberOfEmployees", "LastModifiedDate"] + [
    f"BillingAddress.{c}" for c in ("Street", "City", "Country")
]


@given(st.sets(st.sampled_from(_NAMES)))
def test_bitmap_round_trip(names: set[str]) -> None:
    order = {n: i for i, n in enumerate(["Name", "Phone", "NumberOfEmployees", "LastModifiedDate"])}
    encoded = encode_bitmap(names, SCHEMA)
    assert set(decode_bitmap(encoded, SCHEMA)) == names
    top = [n for n in decode_bitmap(encoded, SCHEMA) if "." not in n]
    assert top == sorted(top, key=order.__getitem__)


def test_change_event_from_byte_fixture() -> None:
    import json

    asked: list[str] = []

    def fetch(schema_id: str) -> str:
        asked.append(schema_id)
        return json.dumps(SCHEMA)

    decoder = EventDecoder(fetch)
    ev = decoder.decode("sch1", PAYLOAD, b"\x00\x00\x00\x00\x00\x00\x00\x07", "e1")
    decoder.decode("sch1", PAYLOAD, b"\x00" * 8, "e2")
    assert asked == ["sch1"]  # schema fetched once per id
    h = ev.header
    assert isinstance(h, ChangeEventHeader)
    assert h.entity_name == "Account"
    assert h.record_ids == ("001000000000001AAA",)
    assert h.change_type == "UPDATE" and not h.is_gap
    assert h.change_origin == "com/salesforce/api/rest/61.0;client=cdc-bridge"
    assert h.transaction_key == "0001-abc"
    assert h.sequence_number == 1
    assert h.commit_timestamp == 1_700_000_000_000
    assert h.commit_number == 42
    assert h.commit_user == "005000000000001AAA"
    assert h.changed_fields == ("Phone", "LastModifiedDate", "BillingAddress.City")
    assert h.nulled_fields == ("Phone",)
    assert h.diff_fields == ()
    assert "ChangeEventHeader" not in ev.record
    assert ev.record["BillingAddress"] == {"Street": None, "City": "Oslo", "Country": None}
    assert ev.record["LastModifiedDate"] == 1_700_000_000_000


def test_fetch_messages_use_the_documented_field_numbers() -> None:
    req = pb.FetchRequest(
        topic_name="/data/AccountChangeEvent",
        replay_preset=pb.CUSTOM,
        replay_id=b"\x01",
        num_requested=5,
    )
    # field 1 string, field 2 enum (2 = CUSTOM), field 3 bytes, field 4 int32
    assert req.SerializeToString() == (
        b"\x0a\x18/data/AccountChangeEvent" + b"\x10\x02" + b"\x1a\x01\x01" + b"\x20\x05"
    )
    resp = pb.FetchResponse.FromString(
        b"\x0a\x0d\x0a\x07\x0a\x01x\x12\x02s1\x12\x02\x00\x07" + b"\x12\x01\x09" + b"\x20\x03"
    )
    assert resp.events[0].event.id == "x" and resp.events[0].event.schema_id == "s1"
    assert resp.events[0].replay_id == b"\x00\x07"
    assert resp.latest_replay_id == b"\x09" and resp.pending_num_requested == 3


def test_checked_in_pb2_matches_the_proto(tmp_path: Any) -> None:
    """pubsub_api_pb2.py is generated from pubsub_api.proto (see the .proto for the command)."""
    import importlib.util
    from pathlib import Path

    from grpc_tools import protoc

    src = Path(pb.__file__).parent
    rc = protoc.main(
        ["protoc", f"-I{src}", f"--python_out={tmp_path}", str(src / "pubsub_api.proto")]
    )
    assert rc == 0
    fresh = (tmp_path / "pubsub_api_pb2.py").read_text()
    start = fresh.index("AddSerializedFile(")
    ours = Path(pb.__file__).read_text()
    assert ours[ours.index("AddSerializedFile(") :].split("\n")[0] == fresh[start:].split("\n")[0]
    assert importlib.util.find_spec("cdc_bridge.sources.salesforce.pubsub.pubsub_api_pb2")
