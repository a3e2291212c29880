"""Table codecs: column defaults as Debezium derives them, NULLs kept or replaced by the default,
columns of types Debezium does not map left out, key-only old tuples."""

from __future__ import annotations

from cdc_bridge.sources.postgres.tables import ColumnDef, TableCodec, TypeCatalog
from cdc_bridge.types.postgres import TypeOptions

COLUMNS = [
    ColumnDef("id", 23, -1, True, "nextval('t_id_seq'::regclass)"),
    ColumnDef("name", 25, -1, True, "'anon'::text"),
    ColumnDef("qty", 23, -1, False, "'-1'::integer"),
    ColumnDef("box", 603, -1, False),  # box: Debezium leaves it out
    ColumnDef("price", 1700, ((8 << 16) | 2) + 4, False, "1.25"),
    ColumnDef("at", 1184, -1, False, "now()"),
    ColumnDef("note", 25, -1, False, "NULL::text"),
    ColumnDef("v", 1043, 14, True),
]


def codec(**opts: object) -> TableCodec:
    options = TypeOptions(**opts)  # type: ignore[arg-type]
    return TableCodec("src", "db", "public", "t", COLUMNS, ("id",), options, TypeCatalog(None))


def test_defaults_in_schema_and_unmapped_columns_left_out() -> None:
    c = codec()
    schema = {col.name: dict(col.schema) for col in c.schema.columns}
    assert list(schema) == ["id", "name", "qty", "price", "at", "note", "v"]  # no `box`
    assert schema["id"]["default"] == 0  # function defaults: Debezium's placeholder
    assert schema["name"]["default"] == "anon"
    assert schema["qty"]["default"] == -1
    assert schema["price"]["default"] == "fQ=="  # 125 at scale 2
    assert schema["at"]["default"] == "1970-01-01T00:00:00.000000Z"
    assert "default" not in schema["note"] and "default" not in schema["v"]
    row = c.row(["1", "n", None, "(1,1),(0,0)", None, None, None, "x"])
    assert row == {"id": 1, "name": "n", "qty": None, "price": None, "at": None, "note": None,
                   "v": "x"}  # fmt: skip
    # a key-only old tuple: defaults, else the NOT NULL fallback, else null
    old = c.key_row(["1", None, None, None, None, None, None, None])
    assert old == {"id": 1, "name": "anon", "qty": -1, "price": "fQ==",
                   "at": "1970-01-01T00:00:00.000000Z", "note": None, "v": ""}  # fmt: skip


def test_replace_null_with_default_and_unknown_types_kept() -> None:
    c = codec(replace_null_with_default=True, include_unknown_types=True)
    row = c.row(["1", "n", None, "(1,1),(0,0)", None, None, None, "x"])
    assert row["qty"] == -1 and row["price"] == "fQ==" and row["note"] is None
    assert row["box"] == "(1,1),(0,0)"
