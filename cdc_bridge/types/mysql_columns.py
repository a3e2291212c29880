"""What the MySQL / MariaDB adapter knows about a column: the protocol type codes (:class:`T`)
and :class:`ColumnInfo`. Shared by the binlog decoder and the snapshot reader (which fill it
in) and by :mod:`cdc_bridge.types.mysql` (which maps it to a Kafka Connect schema), so that the
types layer does not import a source. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ColumnInfo", "T"]


class T:
    """MySQL protocol column type codes (``enum_field_types``)."""

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


@dataclass(slots=True)
class ColumnInfo:
    """What is known about one column: wire type and metadata, plus SQL-level facts.

    ``type``/``meta`` come from the TableMap event; ``name``, ``unsigned``, ``charset``,
    ``enum_values``/``set_values`` from its optional metadata (``binlog_row_metadata=FULL``) or
    from ``information_schema``. ``sql_type`` is information_schema's ``COLUMN_TYPE`` when known.
    """

    name: str
    type: int
    meta: int = 0
    unsigned: bool = False
    binary: bool = False
    nullable: bool = True
    enum_values: tuple[str, ...] | None = None
    set_values: tuple[str, ...] | None = None
    precision: int = 0
    scale: int = 0
    length: int = 0  # char/binary length, bit count, blob length-prefix size
    fsp: int = 0
    is_json: bool = False
    encoding: str = "utf-8"
    sql_type: str = ""
    # The column default as a canonical value (None: no default, or DEFAULT NULL).
    default: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
