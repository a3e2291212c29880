"""MySQL type mapping switches (decimal_handling, binary_handling, bigint_unsigned_handling)."""

from __future__ import annotations

from cdc_bridge.types.mysql import TypeOptions, field_for
from cdc_bridge.types.mysql_columns import ColumnInfo, T


def _conv(col: ColumnInfo, opts: TypeOptions, value: object) -> tuple[dict, object]:
    schema, conv = field_for(col, opts)
    return dict(schema), (conv(value) if conv else value)


def test_decimal_modes() -> None:
    col = ColumnInfo("d", T.NEWDECIMAL, precision=30, scale=10)
    unscaled = 123456789012345678901234567890
    s, v = _conv(col, TypeOptions(decimal="string"), unscaled)
    assert s["type"] == "string" and v == "12345678901234567890.1234567890"
    s, v = _conv(col, TypeOptions(decimal="double"), -12345)
    assert s["type"] == "double" and v == -1.2345e-06
    s, v = _conv(col, TypeOptions(), -1)
    assert s["name"] == "org.apache.kafka.connect.data.Decimal" and v == "/w=="


def test_binary_modes() -> None:
    col = ColumnInfo("b", T.BLOB, length=2, binary=True)
    assert _conv(col, TypeOptions(binary="hex"), b"\x00\xff") == (
        {"type": "string", "optional": True},
        "00ff",
    )
    assert _conv(col, TypeOptions(binary="base64"), b"\x00\xff")[1] == "AP8="
    assert _conv(col, TypeOptions(), b"\x00\xff") == ({"type": "bytes", "optional": True}, "AP8=")


def test_bigint_unsigned_long_mode_wraps_like_debezium() -> None:
    col = ColumnInfo("u", T.LONGLONG, unsigned=True)
    s, v = _conv(col, TypeOptions(bigint_unsigned="long"), 2**64 - 1)
    assert s["type"] == "int64" and v == -1
    assert _conv(col, TypeOptions(bigint_unsigned="long"), 5)[1] == 5


def test_float32_prints_like_java() -> None:
    col = ColumnInfo("f", T.FLOAT)
    import struct

    as_f32 = struct.unpack("<f", struct.pack("<f", 1.1))[0]
    assert as_f32 != 1.1
    assert _conv(col, TypeOptions(), as_f32)[1] == 1.1


def test_zero_dates_null_makes_not_null_columns_optional() -> None:
    col = ColumnInfo("d", T.DATE, nullable=False)
    assert field_for(col, TypeOptions())[0]["optional"] is False
    assert field_for(col, TypeOptions(zero_dates="null"))[0]["optional"] is True


def test_timestamp_fraction_follows_column_precision() -> None:
    us = 1709212455_120000
    for fsp, text in (
        (0, "2024-02-29T13:14:15Z"),
        (3, "2024-02-29T13:14:15.120Z"),
        (6, "2024-02-29T13:14:15.120000Z"),
    ):
        assert _conv(ColumnInfo("t", T.TIMESTAMP2, fsp=fsp), TypeOptions(), us)[1] == text
